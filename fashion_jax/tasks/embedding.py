"""embedding: a metric-learning head; samples sharing the label in `column` are positives.

Labels are identities (e.g. an In-shop item id, or articleType for similar products):
they are compared for equality only, so identities unseen in training (query and
gallery items) are fine. The head is L2-normalised and trained with a batch-hard
triplet loss (`margin`); scored by Recall@k; P x K batches group its identities and
`search` searches with it.
"""

import collections

import jax.numpy as jnp
import numpy as np

from fashion_jax import checks, losses
from fashion_jax.evaluation import metrics
from fashion_jax.data.table import ROLES
from fashion_jax.tasks import base


class Embedding(base.TaskKind):
  options = {"dim": 128, "margin": 0.2, "recall_ks": (1, 5, 10)}
  headline = ("recall_at_1",)
  normalize_output = True
  embeds = True

  def metric_names(self, task):
    return ("loss", *(f"recall_at_{k}" for k in task.option("recall_ks")))

  def check_options(self, options, field):
    checks.number(options["dim"], f"{field}.dim", 1, integer=True)
    checks.number(options["margin"], f"{field}.margin", 0)

  def inspect(self, task, values, train_rows, shown):
    # Identities for P x K batches: values shared by 2+ training images.
    counts = collections.Counter(v for v in values[train_rows] if v)
    return {"classes_in_train": len(counts),
            "identities_with_2_plus_images": sum(n >= 2 for n in counts.values())}

  def head_size(self, task, num_classes):
    return task.option("dim")

  def encode(self, task, vocab, values):
    # Identities within the split; '' (no identity) is masked.
    names, ids = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    ids = ids.astype(np.int32)
    mask = (names[ids] != "").astype(np.float32)
    return np.where(mask > 0, ids, -1).astype(np.int32), mask

  def loss(self, task, output, labels, mask):
    return losses.batch_hard_triplet(output, labels, mask, task.option("margin"))

  def eval_stats(self, task, output, labels, mask, roles):
    stats = base.loss_stats(self.loss(task, output, labels, mask), mask)
    stats.update({base.ROWS + "embeddings": output.astype(jnp.float32),
                  base.ROWS + "labels": labels, base.ROWS + "mask": mask,
                  base.ROWS + "roles": roles})
    return stats

  def summarize(self, task, total):
    embeddings, labels = base.rows_of(total, "embeddings"), base.rows_of(total, "labels")
    valid, roles = base.rows_of(total, "mask") > 0, base.rows_of(total, "roles")
    queries = valid & (roles == ROLES["query"])
    if queries.any():  # Query set against gallery set (In-shop protocol).
      gallery = valid & (roles == ROLES["gallery"])
      recalls = metrics.retrieval_recall(embeddings[queries], labels[queries],
                                         embeddings[gallery], labels[gallery],
                                         task.option("recall_ks"))
    else:  # Every sample against all the others.
      recalls = metrics.retrieval_recall(embeddings[valid], labels[valid], embeddings[valid],
                                         labels[valid], task.option("recall_ks"),
                                         leave_one_out=True)
    return {"loss": base.mean_loss(total), **{f"recall_at_{k}": v for k, v in recalls.items()}}

  def activate(self, task, output):
    return output.astype(jnp.float32)

  def served_output(self, task):
    return {"form": "embedding", "dim": int(task.option("dim"))}
KIND = Embedding()
