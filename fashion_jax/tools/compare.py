r"""Compares trained runs: a per-task metric table and a grouped bar chart.

    python -m fashion_jax compare runs/mtl runs/mtl_tuned [--split=test] \
        [--baselines=runs/only_gender,runs/only_colour] [--out=comparison]

Metrics come from each run's `eval/<split>/metrics.json` (python -m fashion_jax evaluate)
when present, else from its `final_metrics.json`. Prints a markdown table and writes
`<out>/comparison.csv` and `<out>/comparison.png`. With --baselines (single-task runs),
it adds each run's Δm: the mean relative change of its headline metrics (evaluate's
headline metrics of each task kind) over the baseline run that has that task, in percent, with the
sign flipped for metrics where lower is better (Maninis et al., 2019).
"""

import csv
import json
import os

from absl import flags

from fashion_jax.tools import cli
from fashion_jax import errors
from fashion_jax.evaluation import plots
from fashion_jax import workdir as workdir_lib
from fashion_jax.tasks import KINDS

FLAGS = flags.FLAGS


def _define_flags():
  """Defined when run as a command, so the tools can be imported together."""
  flags.DEFINE_string("split", "test", "Which split's metrics to compare.")
  flags.DEFINE_list("baselines", [], "Single-task runs to compute Δm against.")
  flags.DEFINE_string("out", "comparison", "Folder for comparison.csv and comparison.png.")


def _headline(kind: str) -> tuple[str, ...]:
  return KINDS[kind].headline if kind in KINDS else ()


def read_metrics(workdir: str, split: str) -> dict[str, dict[str, float]]:
  """{task: {metric: value}} of one run and split."""
  workdir_lib.read_config(workdir)  # A clear error if this is not a workdir.
  evaluated = workdir_lib.eval_metrics_path(workdir, split)
  if os.path.exists(evaluated):
    with open(evaluated) as f:
      return {task: {k: v for k, v in values.items() if k != "samples"}
              for task, values in json.load(f)["metrics"].items()}
  flat = workdir_lib.read_final_metrics(workdir)
  if flat is None:
    raise errors.ConfigError(f"{workdir} has neither {evaluated} nor "
                             f"{workdir_lib.FINAL_METRICS}: evaluate it or let training finish.")
  metrics = {}
  for key, value in flat.items():
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == split:
      metrics.setdefault(parts[1], {})[parts[2]] = value
  if not metrics:
    raise errors.ConfigError(f"{workdir_lib.path(workdir, workdir_lib.FINAL_METRICS)} has no '{split}' metrics (config.eval_test off?).")
  return metrics


def task_kinds(workdir: str) -> dict[str, str]:
  return {name: task["kind"] for name, task in workdir_lib.read_config(workdir).tasks.items()}


def delta_m(run: dict, kinds: dict, baselines: list[dict]) -> float | None:
  """Mean signed relative change (%) of the headline metrics over the matching baselines."""
  changes = []
  for task, values in run.items():
    baseline = next((b[task] for b in baselines if task in b), None)
    if baseline is None:
      continue
    for metric in _headline(kinds.get(task, "")):
      if metric in values and baseline.get(metric):
        sign = 1.0 if KINDS[kinds[task]].higher_is_better(metric) else -1.0
        changes.append(sign * (values[metric] - baseline[metric]) / abs(baseline[metric]))
  return 100.0 * sum(changes) / len(changes) if changes else None


def compare(workdirs, split: str = "test", baselines=(), out: str = "comparison") -> dict:
  names = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  if len(set(names)) != len(names):
    names = [os.path.normpath(w) for w in workdirs]
  runs = {n: read_metrics(w, split) for n, w in zip(names, workdirs)}
  kinds = {}
  for w in workdirs:
    kinds.update(task_kinds(w))
  rows = sorted({(task, metric) for r in runs.values() for task, m in r.items() for metric in m})
  table = [{"task": task, "metric": metric,
            **{n: runs[n].get(task, {}).get(metric) for n in names}} for task, metric in rows]
  deltas = {}
  if baselines:
    base = [read_metrics(b, split) for b in baselines]
    deltas = {n: delta_m(runs[n], kinds, base) for n in names}
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "comparison.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["task", "metric", *names])
    writer.writeheader()
    writer.writerows(table)
    if deltas:
      writer.writerow({"task": "(all)", "metric": "delta_m_percent", **deltas})
  headline = {f"{task}/{metric}": {n: runs[n][task][metric] for n in names
                                   if metric in runs[n].get(task, {})}
              for task, kind in sorted(kinds.items()) for metric in _headline(kind)
              if any(metric in runs[n].get(task, {}) for n in names)}
  plots.bar_chart(os.path.join(out, "comparison.png"), headline, f"{split} metrics by run")
  return {"names": names, "table": table, "delta_m": deltas}


def markdown(result: dict) -> str:
  names = result["names"]
  fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
  lines = ["| task | metric | " + " | ".join(names) + " |",
           "|---|---|" + "---|" * len(names)]
  lines += [f"| {r['task']} | {r['metric']} | " + " | ".join(fmt(r[n]) for n in names) + " |"
            for r in result["table"]]
  if result["delta_m"]:
    lines.append("| (all) | Δm % vs baselines | " + " | ".join(
        "" if result["delta_m"][n] is None else f"{result['delta_m'][n]:+.2f}"
        for n in names) + " |")
  return "\n".join(lines)


def main(argv):
  if len(argv) < 2:
    raise errors.ConfigError("name at least one workdir.")
  result = compare(argv[1:], FLAGS.split, FLAGS.baselines, FLAGS.out)
  print(markdown(result))
  print(f"\nWrote {FLAGS.out}/comparison.csv and comparison.png")
  return 0


def run():
  cli.run(main, _define_flags)


if __name__ == "__main__":
  run()
