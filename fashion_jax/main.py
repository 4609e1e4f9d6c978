r"""Trains and evaluates a multi-task model.

    python -m fashion_jax.main --config=configs/mtl.py --workdir=runs/mtl \
        [--config.some.field=value ...]

(the same as `python -m fashion_jax train ...`). This file only parses flags; the work
is in `train.train_and_evaluate`.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fashion_jax import allocator
from fashion_jax.tools import cli

FLAGS = flags.FLAGS


def _define_flags():
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and vocabularies.")
  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                  lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Imported after flag parsing: importing jax is slow, and --help should not wait for it.
  import jax
  from fashion_jax import parallel
  from fashion_jax.training import train
  # Before anything touches a device: multi-host runs must initialise jax.distributed first.
  parallel.maybe_initialize_distributed(FLAGS.config.distributed)
  logging.info("JAX %s, process %d/%d, devices: %s, allocator: %s", jax.__version__,
               jax.process_index(), jax.process_count(), jax.devices(), allocator.current())
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  return 0


def run():
  allocator.reexec_with_tcmalloc(["-m", "fashion_jax.main", *sys.argv[1:]])
  # absl's lines (every module's INFO) only with --verbosity=0 or more: the console says
  # what matters (training.experiment.describe, then one line per logged step).
  cli.run(main, _define_flags, required=["config", "workdir"], verbosity=logging.WARNING)


if __name__ == "__main__":
  run()
