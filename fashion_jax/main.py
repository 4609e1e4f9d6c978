r"""Trains and evaluates a multi-task model.

    python -m fashion_jax.main --config=configs/mtl.py --workdir=runs/mtl \
        [--config.some.field=value ...]

This file only parses flags; the work is in `train.train_and_evaluate`.
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fashion_jax import allocator
from fashion_jax import errors

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and vocabularies.")
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
  """Drops INFO records of Orbax, which logs several lines per checkpoint save."""

  def filter(self, record) -> bool:
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  from fashion_jax import parallel, train  # After flag parsing: importing jax is slow.
  import jax
  # Before anything touches a device: multi-host runs must initialise jax.distributed first.
  parallel.maybe_initialize_distributed(FLAGS.config.distributed)
  logging.info("JAX %s, process %d/%d, devices: %s, allocator: %s", jax.__version__,
               jax.process_index(), jax.process_count(), jax.devices(), allocator.current())
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except errors.USER_ERRORS as e:
    # A problem with the config, the data or the workdir: say what and where, no traceback.
    logging.error("%s: %s", type(e).__name__, e)
    print(f"fashion_jax: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)


def run():
  allocator.reexec_with_tcmalloc(["-m", "fashion_jax.main", *sys.argv[1:]])
  app.run(main)


if __name__ == "__main__":
  run()
