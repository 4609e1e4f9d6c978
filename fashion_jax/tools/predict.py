r"""Tags images with a trained model: one JSON line per image.

    python -m fashion_jax predict --workdir=runs/demo photo.jpg more_photos/ [--top_k=3]

Each line: {"image": path, "predictions": {task: [{"label", "probability"}, ...]}} with
the top-k classes of every softmax task and the attributes above threshold of every
sigmoid task (with "score"); `--embedding` adds {"embeddings": {task: [floats]}};
`--hierarchy=predicted|joint` makes child tasks agree with config.hierarchy. Any
image size and format PIL reads (JPEG, PNG, grayscale, RGBA on white) goes through the
evaluation preprocessing. An unreadable image gets {"image", "error"} and exit status 1.
"""

import contextlib
import json
import sys

import numpy as np
from absl import flags

from fashion_jax.tools import cli
from fashion_jax import errors, hierarchy
from fashion_jax.evaluation import trained
from fashion_jax import workdir as workdir_lib

FLAGS = flags.FLAGS


def _define_flags():
  """Defined when run as a command, so the tools can be imported together."""
  flags.DEFINE_string("workdir", None, "A training workdir.")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_integer("top_k", 3, "Classes per softmax task.")
  flags.DEFINE_bool("embedding", False, "Include the embedding of every embedding task.")
  flags.DEFINE_integer("batch_size", 32, "Images per model call.")
  flags.DEFINE_string("out", "", "Write the JSON lines here instead of stdout.")
  flags.DEFINE_enum("hierarchy", "none", ["none", "predicted", "joint"],
                    "Make child predictions consistent with config.hierarchy: masked by "
                    "the predicted parent, or the best joint (parent, child) pair.")
  flags.DEFINE_bool("ema", False, "Use the EMA weights (runs with config.ema_decay > 0).")


def make_consistent(outputs: dict, learned: dict, mode: str) -> dict:
  """Softmax outputs of one image with each child task restricted to its parent (top-down
  along config.hierarchy); in 'joint' mode the parent becomes the best pair's."""
  outputs = dict(outputs)
  for child, h in learned.items():
    parent = h["parent"]
    masked, chosen = hierarchy.consistent(outputs[parent][None], outputs[child][None],
                                          h["parents"], mode)
    outputs[child] = masked[0]
    if mode == "joint":
      outputs[parent] = np.eye(len(outputs[parent]), dtype=np.float32)[chosen[0]]
  return outputs


def predict_lines(run, paths, top_k: int = 3, with_embedding: bool = False,
                  batch_size: int = 32, hierarchy_mode: str = "none"):
  """Yields one JSON-ready dict per image."""
  learned = {}
  if hierarchy_mode != "none":
    learned = hierarchy.load(run.workdir)
    if not learned:
      raise errors.ConfigError(f"{run.workdir} has no {workdir_lib.HIERARCHY}: it was "
                               "trained without config.hierarchy.")
  for path, outputs, error in trained.predict_files(run, paths, batch_size):
    if error:
      yield {"image": path, "error": error}
      continue
    if learned:
      outputs = make_consistent(outputs, learned, hierarchy_mode)
    line = {"image": path, "predictions": {}}
    for task in run.tasks:
      fields = task.spec.predict_fields(task, outputs[task.name], top_k, with_embedding)
      for section, value in fields.items():
        line.setdefault(section, {})[task.name] = value
    yield line


def main(argv):
  if len(argv) < 2:
    raise errors.ConfigError("name at least one image or folder after the flags.")
  run = trained.load(FLAGS.workdir, FLAGS.checkpoint, FLAGS.ema)
  paths = trained.list_images(argv[1:])
  failed = 0
  with open(FLAGS.out, "w") if FLAGS.out else contextlib.nullcontext(sys.stdout) as out:
    for line in predict_lines(run, paths, FLAGS.top_k, FLAGS.embedding, FLAGS.batch_size,
                              FLAGS.hierarchy):
      failed += "error" in line
      out.write(json.dumps(line) + "\n")
  if failed:
    print(f"error: {failed} of {len(paths)} images could not be read (see their lines).",
          file=sys.stderr)
  return 1 if failed else 0


def run():
  cli.run(main, _define_flags, required=["workdir"])


if __name__ == "__main__":
  run()
