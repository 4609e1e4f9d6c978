r"""Exports a trained run for serving: jax.export and ONNX, with what reading them needs.

    python -m fashion_jax export --workdir=runs/demo --out=exports/demo [--checkpoint=best]

The folder holds model.onnx (ONNX Runtime: no JAX needed), model.jax_export (a
serialized, batch-polymorphic `jax.export` function for cpu, cuda and tpu) and
metadata.json (input size and preprocessing, per task its output form, classes and
thresholds, the source run, and the exports' measured differences from the live model).
Serve it with `python -m fashion_jax serve --model=exports/demo`.
"""

import json

from absl import flags

from fashion_jax.evaluation import trained
from fashion_jax.tools import cli

FLAGS = flags.FLAGS


def _define_flags():
  flags.DEFINE_string("workdir", None, "The training workdir to export.")
  flags.DEFINE_string("out", None, "The export folder to write (replaced if it is one).")
  flags.DEFINE_string("checkpoint", "best", f"Which checkpoint: {trained.CHECKPOINT_CHOICES}.")
  flags.DEFINE_bool("ema", False, "Export the EMA weights (runs with config.ema_decay > 0).")
  flags.DEFINE_bool("onnx", True, "Also write model.onnx.")
  flags.DEFINE_enum("dtype", "float32", ["float32", "model"], "What the exported network "
                    "computes in: float32 whatever it trained in (every runtime), or the "
                    "training dtype ('model'; with bfloat16, jax.export only).")
  flags.DEFINE_list("platforms", ["cpu", "cuda", "tpu"], "jax.export target platforms.")


def main(argv):
  del argv
  from fashion_jax.serving import export  # jax2onnx loads only when exporting.
  meta = export.export_run(FLAGS.workdir, FLAGS.out, FLAGS.checkpoint, FLAGS.ema, FLAGS.onnx,
                           FLAGS.platforms, FLAGS.dtype)
  print(json.dumps({"out": FLAGS.out, "files": meta["files"], "parity": meta["parity"],
                    "seconds": meta["export_seconds"]}))
  return 0


def run():
  cli.run(main, _define_flags, required=["workdir", "out"])


if __name__ == "__main__":
  run()
