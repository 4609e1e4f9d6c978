r"""Reading a large shop catalog: time and peak memory of the catalog source on a
synthetic table of N rows (CSV, TSV, JSON lines or Parquet), side by side.

    python scripts/benchmark_catalog.py --rows=1000000 --formats=csv,parquet

Rows point at the embedded sample's images (paths repeat; the source checks each one
exists) and carry a softmax label, a multi-valued tag column with some empty lists and
some missing values, and a split column. Each format is read in a fresh process, so the
peak resident memory (ru_maxrss) is that read's alone.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def write_table(folder: str, rows: int, form: str) -> str:
  import numpy as np
  from fashion_jax.data.product_images import SAMPLE_DIR
  images = sorted(os.listdir(os.path.join(SAMPLE_DIR, "images")))
  rng = np.random.default_rng(0)
  picks = rng.integers(0, len(images), rows)
  classes = [f"class_{i}" for i in range(50)]
  tags = ["cotton", "striped", "long sleeve", "slim", "printed"]
  path = os.path.join(folder, f"catalog.{form}")
  image_paths = [os.path.join(SAMPLE_DIR, "images", images[i]) for i in picks]
  labels = [classes[i] for i in rng.integers(0, len(classes), rows)]
  tag_lists = [[tags[j] for j in range(len(tags)) if rng.random() < 0.3] for _ in range(rows)]
  splits = rng.choice(["train", "val", "test"], rows, p=[0.8, 0.1, 0.1])
  if form == "parquet":
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"sku": [f"sku{i}" for i in range(rows)], "image": image_paths,
                             "category": labels, "tags": tag_lists, "split": splits}), path)
    return path
  with open(path, "w") as f:
    if form == "jsonl":
      for i in range(rows):
        f.write(json.dumps({"sku": f"sku{i}", "image": image_paths[i], "category": labels[i],
                            "tags": tag_lists[i], "split": str(splits[i])}) + "\n")
      return path
    sep = "\t" if form == "tsv" else ","
    f.write(sep.join(["sku", "image", "category", "tags", "split"]) + "\n")
    for i in range(rows):
      f.write(sep.join([f"sku{i}", image_paths[i], labels[i], "|".join(tag_lists[i]),
                        str(splits[i])]) + "\n")
  return path


def read_once(path: str) -> None:
  """Child process: reads the table as a run would and prints time and peak memory."""
  from fashion_jax.data import sources
  start = time.perf_counter()
  table, _ = sources.load_source(
      sources.dataset_config("catalog", root=path, id_column="sku", split_column="split",
                             multi_valued_columns="tags"), ["category", "tags"])
  seconds = time.perf_counter() - start
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps({"rows": len(table), "seconds": seconds, "peak_mib": peak_mib}))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rows", type=int, default=1_000_000)
  parser.add_argument("--formats", default="csv,tsv,jsonl,parquet")
  parser.add_argument("--read", help=argparse.SUPPRESS)  # The child's table.
  args = parser.parse_args()
  if args.read:
    read_once(args.read)
    return
  print(f"# {time.strftime('%Y-%m-%d')}, {args.rows:,} rows")
  print("| format | file MiB | read s | rows/s | peak memory MiB |")
  print("|---|---|---|---|---|")
  with tempfile.TemporaryDirectory() as folder:
    for form in args.formats.split(","):
      path = write_table(folder, args.rows, form)
      result = subprocess.run([sys.executable, __file__, f"--read={path}"], check=True,
                              capture_output=True, text=True)
      measured = json.loads(result.stdout.strip().splitlines()[-1])
      print(f"| {form} | {os.path.getsize(path) / 2**20:.0f} | {measured['seconds']:.1f} | "
            f"{measured['rows'] / measured['seconds']:,.0f} | {measured['peak_mib']:.0f} |",
            flush=True)
      os.remove(path)


if __name__ == "__main__":
  main()
