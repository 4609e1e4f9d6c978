r"""Checks an unpacked DeepFashion folder against the official release before training.

    python -m fashion_jax verify_deepfashion --root=/data/DeepFashion/Category_and_Attribute_Prediction_Benchmark
    python -m fashion_jax verify_deepfashion --benchmark=inshop --root=/data/DeepFashion/In-shop_Clothes_Retrieval_Benchmark

Reads the annotation files, compares their counts with the release's and counts the
listed images that are missing on disk. Prints one line per check and exits 1 if any
fails, so that nobody spends hours training on half a download.
"""

import os

import numpy as np
from absl import flags

from fashion_jax.data import deepfashion
from fashion_jax.errors import DataError
from fashion_jax.tools import cli

EXPECTED = {
    "category": {"images": 289_222, "categories": 50, "attributes": 1_000,
                 "train": 209_222, "val": 40_000, "test": 40_000},
    "fine": {"images": 20_000, "attributes": 26, "train": 14_000, "val": 2_000, "test": 4_000},
    "inshop": {"images": 52_712, "items": 7_982, "train": 25_882, "query": 14_218,
               "gallery": 12_612},
}


def measure(benchmark: str, root: str) -> tuple[dict[str, int], list[str]]:
  """Counts in the folder, and the listed image paths (relative to root)."""
  if benchmark == "inshop":
    data = deepfashion.load_inshop(root, check_images=False)
    counts = {"images": len(data.image_names), "items": len(set(data.item_ids.tolist()))}
    splits = deepfashion.INSHOP_SPLITS
  else:
    loader = deepfashion.load_fine if benchmark == "fine" else deepfashion.load_category_attribute
    data = loader(root, check_images=False)
    counts = {"images": len(data.image_names), "categories": len(data.categories),
              "attributes": len(data.attributes)}
    splits = deepfashion.SPLITS
  counts.update({s: int(np.sum(data.splits == s)) for s in splits})
  return counts, data.image_names


def verify(benchmark: str, root: str) -> list[str]:
  """Returns the problems found (empty when the folder matches the release)."""
  try:
    counts, names = measure(benchmark, root)
  except DataError as e:
    return [str(e)]
  problems = [f"{key}: {counts.get(key)} (release: {value:,})"
              for key, value in EXPECTED[benchmark].items() if counts.get(key) != value]
  missing = [n for n in names if not os.path.exists(os.path.join(root, n))]
  if missing:
    problems.append(f"images missing on disk: {len(missing)} of {len(names)}, e.g. {missing[0]}")
  return problems


def report(benchmark: str, root: str) -> int:
  """Prints one line per failed check and a verdict; returns the exit status (1: problems)."""
  problems = verify(benchmark, root)
  for line in problems:
    print(f"MISMATCH {line}")
  print(f"{root}: {'OK, matches the release' if not problems else f'{len(problems)} problem(s)'}")
  return 1 if problems else 0


def _define_flags():
  flags.DEFINE_string("root", None, "The unpacked benchmark folder.")
  flags.DEFINE_enum("benchmark", "category", sorted(EXPECTED), "Which DeepFashion benchmark.")


def main(argv):
  del argv
  return report(flags.FLAGS.benchmark, flags.FLAGS.root)


def run():
  cli.run(main, _define_flags, required=["root"])


if __name__ == "__main__":
  run()
