"""Label search scored as a retrieval benchmark: a label as the query, products as the
gallery, relevant when the catalog's own label is that label (how fashion embedding
models are compared on fashion-product-images: precision@1, precision@10, MRR).

Per (task, catalog column) pair, each label value that some catalog product carries is
one query: products are ranked by the head's probability for it; the scores are
macro-averaged over those values. Pure numpy over a CatalogIndex.
"""

import numpy as np


def scores(index, task: str, column: str = "", ks=(1, 10)) -> dict:
  """{'precision_at_<k>', 'mrr', 'queries'} for `task` against catalog column `column`
  (default: the task's own name)."""
  column = column or task
  if column not in index.catalog_labels:
    raise ValueError(f"the index's catalog has no column {column!r} (it has "
                     f"{sorted(index.catalog_labels)}); build it from split:NAME.")
  truth = index.catalog_labels[column]
  classes = index.outputs[task]["classes"]
  probabilities = index.scores[task]
  per_query = {f"precision_at_{k}": [] for k in ks}
  per_query["mrr"] = []
  for c, label in enumerate(classes):
    relevant = truth == label
    if not relevant.any():
      continue
    order = np.argsort(-probabilities[:, c], kind="stable")
    hits = relevant[order]
    for k in ks:
      per_query[f"precision_at_{k}"].append(hits[:k].mean())
    per_query["mrr"].append(1.0 / (1 + int(np.argmax(hits))))
  result = {name: round(float(np.mean(v)), 4) if v else None for name, v in per_query.items()}
  result["queries"] = len(per_query["mrr"])
  return result


def all_scores(index, ks=(1, 10)) -> dict:
  """`scores` for every class task whose name is also a catalog column."""
  return {task: scores(index, task, task, ks) for task, spec in index.outputs.items()
          if spec["form"] == "classes" and task in index.catalog_labels}
