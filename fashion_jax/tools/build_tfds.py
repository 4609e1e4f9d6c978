r"""Builds the fashion-product-images TFDS dataset (see fashion_jax/data/tfds_builder.py).

    python -m fashion_jax build_tfds --manual_dir=/data/fashion-product-images \
        --data_dir=/data/tensorflow_datasets

Needs the [tfds] extra; not TensorFlow (images are stored as the JPEG files they are).
"""

from absl import flags

from fashion_jax.tools import cli
from fashion_jax.data import tfds_builder


def _define_flags():
  flags.DEFINE_string("manual_dir", None, "Kaggle folder: styles.csv and images/<id>.jpg.")
  flags.DEFINE_string("data_dir", None, "TFDS data dir to build into.")


def main(argv):
  del argv
  print(tfds_builder.build(flags.FLAGS.manual_dir, flags.FLAGS.data_dir))
  return 0


def run():
  cli.run(main, _define_flags, required=["manual_dir", "data_dir"])


if __name__ == "__main__":
  run()
