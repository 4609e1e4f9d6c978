r"""Backbones side by side under configs/mtl.py's tasks, at one budget: per-task accuracy
and macro-F1 (mean over seeds), parameters, FLOPs per image, train and eval images/s on
this machine, and wall time; plus `python -m fashion_jax.compare`'s bar chart.

    # Train and score each backbone (resumable: finished rows are skipped), then time it:
    python scripts/compare_backbones.py run --models=resnet50,convnext_tiny,vit_s16,efficientnet_b0 \
        --seeds=0 --epochs=2 --score=val --data=../shared/data/fashion-product-images
    # The table (markdown, for docs/results.md) and docs/results/backbones/comparison.png:
    python scripts/compare_backbones.py report --epochs=2 --score=val --workdirs=runs/study

Training and scoring are scripts/study.py's rows `backbone_<name>` (configs/mtl.py with
`model.name=<name>`, on the study's split file; records in docs/results/runs/); speed is
scripts/benchmark.py's (JAX only, the run's image size and batch; records in
docs/results/backbones/<name>_speed.json). On an accelerator the same command runs the
full-size comparison: add `--set=data.image_size=224 --set=batch_size=256` and more epochs.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study  # noqa: E402

SPEED = os.path.join(study.RESULTS, "backbones")


def _speed_path(model: str) -> str:
  return os.path.join(SPEED, f"{model}_speed.json")


def measure_speed(model: str, image_size: int, batch: int) -> None:
  path = _speed_path(model)
  if os.path.exists(path):
    print(f"{model} speed: done ({path})", flush=True)
    return
  os.makedirs(SPEED, exist_ok=True)
  command = [sys.executable, "scripts/benchmark.py", f"--model={model}",
             f"--sizes={image_size}", f"--batch={batch}", "--steps=3", "--no-torch",
             "--pipeline-workers=", f"--json={path}"]
  print(f"{model} speed: {' '.join(command)}", flush=True)
  subprocess.run(command, cwd=study.REPO, check=True, stdout=subprocess.DEVNULL)


def report(models: list[str], epochs: int, score: str, workdirs: str) -> str:
  lines = ["| backbone (seeds) | " + " | ".join(study.TASKS) + " | mean | params (M) | "
           "GFLOPs/img | train img/s | eval img/s | train min |",
           "|---|" + "---|" * (len(study.TASKS) + 6)]
  runs = []
  for model in models:
    records = study.read_records(f"backbone_{model}", epochs, score)
    if not records:
      continue
    speed = {}
    if os.path.exists(_speed_path(model)):
      with open(_speed_path(model)) as f:
        speed = next(iter(json.load(f)["sizes"].values()))["jax"]
    seeds = ",".join(str(r["seed"]) for r in records)
    minutes = np.mean([r["train_seconds"] for r in records]) / 60
    for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
      values = np.asarray([[r["metrics"][t][metric] for t in study.TASKS] for r in records])
      cells = [f"{v:.3f}" for v in values.mean(0)] + [f"{values.mean():.3f}"]
      extra = (f"{speed.get('backbone_params_m', float('nan')):.1f} | "
               f"{speed.get('eval_gflops_per_image', float('nan')):.2f} | "
               f"{speed.get('train_ips', float('nan')):.1f} | "
               f"{speed.get('eval_ips', float('nan')):.1f} | {minutes:.0f}"
               if metric == "accuracy" else " | | | | ")
      lines.append(f"| {model} ({seeds}) {label} | " + " | ".join(cells) + f" | {extra} |")
    runs += [os.path.join(workdirs, f"backbone_{model}_e{epochs}_s{r['seed']}") for r in records
             if os.path.isdir(os.path.join(workdirs, f"backbone_{model}_e{epochs}_s{r['seed']}"))]
  if runs:  # The chart needs the workdirs (scratch), the table only the records.
    subprocess.run([sys.executable, "-m", "fashion_jax.compare", *runs, f"--split={score}",
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
  args = parser.parse_args()
  models = args.models.split(",")
  unknown = [m for m in models if m not in study.BACKBONES]
  if unknown:
    raise SystemExit(f"--models: {unknown} have no study row; rows exist for {study.BACKBONES}.")
  if args.command == "report":
    print(report(models, args.epochs, args.score, os.path.abspath(args.workdirs)))
    return
  config = study.load_mtl_config()
  for seed in (int(s) for s in args.seeds.split(",")):
    for model in models:
      study.run_row(f"backbone_{model}", os.path.abspath(args.data),
                    os.path.abspath(args.workdirs), args.epochs, seed, args.score)
  for model in models:
    measure_speed(model, config.data.image_size, config.batch_size)


if __name__ == "__main__":
  main()
