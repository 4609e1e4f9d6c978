r"""Backbones side by side under configs/mtl.py's tasks, at one budget: per-task accuracy
and macro-F1 (mean over seeds), parameters, FLOPs per image, train and eval images/s on
this machine, and wall time; plus `python -m fashion_jax compare`'s bar chart.

    # Train and score each backbone (resumable: finished rows are skipped), then time it:
    python scripts/compare_backbones.py run --models=resnet50,convnext_tiny,vit_s16,efficientnet_b0 \
        --seeds=0 --epochs=2 --score=val --data=../shared/data/fashion-product-images
    # The table (markdown, for docs/results.md) and docs/results/backbones/comparison.png:
    python scripts/compare_backbones.py report --epochs=2 --score=val --workdirs=runs/study

Training and scoring are scripts/study.py's rows `backbone_<name>` (configs/mtl.py with
`model.name=<name>`, on the study's split file; records in docs/results/runs/); speed is
scripts/benchmark.py's (JAX only, the run's image size and batch; records in
docs/results/backbones/<name>_<size>px_b<batch>_speed.json). On an accelerator the same
command runs the full-size comparison, e.g. (the rows then are `backbone_<name>@...`):

    python scripts/compare_backbones.py run --seeds=0,1,2 --epochs=30 --score=test \
        --set=data.image_size=224 --set=batch_size=256 --data=...
    python scripts/compare_backbones.py report --epochs=30 --score=test \
        --set=data.image_size=224 --set=batch_size=256
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scripts import study  # noqa: E402

SPEED = os.path.join(study.RESULTS, "backbones")


def _speed_path(model: str, image_size: int, batch: int) -> str:
  return os.path.join(SPEED, f"{model}_{image_size}px_b{batch}_speed.json")


def _size_and_batch(extra: dict) -> tuple[int, int]:
  config = study.load_mtl_config()
  return (int(extra.get("data.image_size", config.data.image_size)),
          int(extra.get("batch_size", config.batch_size)))


def measure_speed(model: str, image_size: int, batch: int) -> None:
  path = _speed_path(model, image_size, batch)
  if os.path.exists(path):
    print(f"{model} speed: done ({path})", flush=True)
    return
  os.makedirs(SPEED, exist_ok=True)
  command = [sys.executable, "scripts/benchmark.py", f"--model={model}",
             f"--sizes={image_size}", f"--batch={batch}", "--steps=3", "--no-torch",
             "--pipeline-workers=", f"--json={path}"]
  print(f"{model} speed: {' '.join(command)}", flush=True)
  subprocess.run(command, cwd=study.REPO, check=True, stdout=subprocess.DEVNULL)


def report(models: list[str], epochs: int, score: str, workdirs: str,
           overrides: dict | None = None) -> str:
  lines = ["| backbone (seeds) | " + " | ".join(study.TASKS) + " | mean | params (M) | "
           "GFLOPs/img | train img/s | eval img/s | train min |",
           "|---|" + "---|" * (len(study.TASKS) + 6)]
  runs = []
  size, batch = _size_and_batch(overrides or {})
  for model in models:
    row = f"backbone_{model}{study.variant(overrides)}"
    records = study.read_records(row, epochs, score)
    if not records:
      continue
    speed = {}
    if os.path.exists(_speed_path(model, size, batch)):
      with open(_speed_path(model, size, batch)) as f:
        speed = next(iter(json.load(f)["sizes"].values()))["jax"]
    seeds = ",".join(str(r["seed"]) for r in records)
    minutes = np.mean([r["train_seconds"] for r in records]) / 60
    for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
      values = np.asarray([[r["metrics"][t][metric] for t in study.TASKS] for r in records])
      # Per task the mean over seeds; the mean over tasks with its spread over seeds.
      cells = [f"{v:.3f}" for v in values.mean(0)] + [
          f"{values.mean():.3f} ± {values.mean(1).std():.3f}"]
      extra = (f"{speed.get('backbone_params_m', float('nan')):.1f} | "
               f"{speed.get('eval_gflops_per_image', float('nan')):.2f} | "
               f"{speed.get('train_ips', float('nan')):.1f} | "
               f"{speed.get('eval_ips', float('nan')):.1f} | {minutes:.0f}"
               if metric == "accuracy" else " | | | | ")
      lines.append(f"| {model} ({seeds}) {label} | " + " | ".join(cells) + f" | {extra} |")
    folders = [os.path.join(workdirs, f"{row}_e{epochs}_s{r['seed']}") for r in records]
    runs += [f for f in folders if os.path.isdir(f)]
  if runs:  # The chart needs the workdirs (scratch), the table only the records.
    subprocess.run([sys.executable, "-m", "fashion_jax", "compare", *runs, f"--split={score}",
                    f"--out={SPEED}"], cwd=study.REPO, check=True, stdout=subprocess.DEVNULL)
    lines += ["", f"Chart: {os.path.relpath(os.path.join(SPEED, 'comparison.png'), study.REPO)}"]
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("command", choices=["run", "report"])
  parser.add_argument("--models", default=",".join(study.BACKBONES))
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--score", default="val", choices=["val", "test"])
  parser.add_argument("--data", default=os.path.join(study.REPO, "..", "shared", "data",
                                                     "fashion-product-images"))
  parser.add_argument("--workdirs", default=os.path.join(study.REPO, "runs", "study"))
  parser.add_argument("--set", action="append", default=[],
                      help="KEY=VALUE config override for every backbone, e.g. "
                           "data.image_size=224 (rows become backbone_<name>@KEY=VALUE).")
  args = parser.parse_args()
  extra = study.parse_sets(args.set)
  models = args.models.split(",")
  unknown = [m for m in models if m not in study.BACKBONES]
  if unknown:
    raise SystemExit(f"--models: {unknown} have no study row; rows exist for {study.BACKBONES}.")
  if args.command == "report":
    print(report(models, args.epochs, args.score, os.path.abspath(args.workdirs), extra))
    return
  for seed in (int(s) for s in args.seeds.split(",")):
    for model in models:
      study.run_row(f"backbone_{model}", os.path.abspath(args.data),
                    os.path.abspath(args.workdirs), args.epochs, seed, args.score, extra)
  size, batch = _size_and_batch(extra)
  for model in models:
    measure_speed(model, size, batch)


if __name__ == "__main__":
  main()
