"""PNG figures of evaluation results (matplotlib, non-interactive backend, imported lazily).

Each function writes one figure and returns its path. Sizes are fixed so a figure
reads the same in a README, a notebook or a report.
"""

import os
from typing import Sequence

import numpy as np

DPI = 100
_WRONG, _RIGHT = "#c0392b", "#1e8449"


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # No display needed; must precede the pyplot import.
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=DPI)
  _pyplot().close(fig)
  return path


def fold_confusion(confusion: np.ndarray, names: Sequence[str],
                   max_classes: int) -> tuple[np.ndarray, list[str]]:
  """Keeps the `max_classes - 1` most frequent true classes; the rest become 'other'."""
  confusion = np.asarray(confusion)
  if len(names) <= max_classes:
    return confusion, list(names)
  keep = np.sort(np.argsort(-confusion.sum(1), kind="stable")[:max_classes - 1])
  group = np.full(len(names), len(keep))  # Folded row/column of each class.
  group[keep] = np.arange(len(keep))
  folded = np.zeros((len(keep) + 1, len(keep) + 1))
  np.add.at(folded, (group[:, None], group[None, :]), confusion)
  return folded, [names[i] for i in keep] + ["(other)"]


def confusion_matrix(path: str, confusion: np.ndarray, names: Sequence[str], title: str,
                     max_classes: int = 20) -> str:
  """Row-normalised confusion matrix (each true class sums to 1), counts on the side."""
  plt = _pyplot()
  folded, labels = fold_confusion(confusion, names, max_classes)
  support = folded.sum(1, keepdims=True)
  normalised = np.divide(folded, support, out=np.zeros_like(folded, float), where=support > 0)
  n = len(labels)
  fig, ax = plt.subplots(figsize=(8, 7))
  image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
  ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
  ax.set_yticks(range(n), [f"{name} ({int(s)})" for name, s in zip(labels, support[:, 0])],
                fontsize=8)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true (samples)")
  if n <= 12:
    for i in range(n):
      for j in range(n):
        if normalised[i, j] >= 0.01:
          ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if normalised[i, j] > 0.5 else "black")
  ax.set_title(title)
  fig.colorbar(image, ax=ax, fraction=0.046)
  fig.tight_layout()
  return _save(fig, path)


def roc_curves(path: str, curves: dict[str, tuple[np.ndarray, np.ndarray, float]],
               title: str, max_curves: int = 10) -> str:
  """One-vs-rest ROC curves, the `max_curves` classes with most samples, AUC in the legend."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 6))
  for name, (fpr, tpr, auc) in list(curves.items())[:max_curves]:
    ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC {auc:.3f})")
  ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.01)
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.set_title(title)
  ax.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  return _save(fig, path)


def bar_chart(path: str, groups: dict[str, dict[str, float]], title: str,
              ylabel: str = "") -> str:
  """Grouped bars: one group per key of `groups`, one bar per series inside it."""
  plt = _pyplot()
  series = list(dict.fromkeys(s for values in groups.values() for s in values))
  width = 0.8 / max(len(series), 1)
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) + 2), 5))
  x = np.arange(len(groups))
  for i, name in enumerate(series):
    heights = [groups[g].get(name, np.nan) for g in groups]
    bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
  ax.set_xticks(x, list(groups), rotation=30, ha="right")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  if len(series) > 1:
    ax.legend(fontsize=8)
  fig.tight_layout()
  return _save(fig, path)


def training_curves(path: str, scalars: dict[str, list[tuple[int, float]]],
                    task_names: Sequence[str], title: str) -> str:
  """Per task: training loss, and validation loss/metrics, over steps."""
  plt = _pyplot()
  n = max(len(task_names), 1)
  columns = min(n, 3)
  rows = -(-n // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.5 * rows), squeeze=False)
  for ax, task in zip(axes.flat, task_names):
    for tag, style in ((f"loss/{task}", "-"), (f"val/{task}/loss", "o-")):
      if tag in scalars:
        steps, values = zip(*scalars[tag])
        ax.plot(steps, values, style, markersize=3, label=tag.replace(f"/{task}", ""))
    ax.set_title(task)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    metric_tags = [t for t in scalars if t.startswith(f"val/{task}/") and not t.endswith("/loss")]
    if metric_tags:
      twin = ax.twinx()
      for i, tag in enumerate(metric_tags[:3]):
        steps, values = zip(*scalars[tag])
        twin.plot(steps, values, linestyle="--", marker=".", color=f"C{i + 2}",
                  label=tag.split("/")[-1])
      twin.set_ylabel("validation metric")
      twin.legend(fontsize=7, loc="upper right")
    ax.legend(fontsize=7, loc="upper left")
  for ax in list(axes.flat)[len(task_names):]:
    ax.axis("off")
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def image_grid(path: str, images: Sequence[np.ndarray],
               captions: Sequence[Sequence[tuple[str, bool]]], title: str,
               columns: int = 4) -> str:
  """Images with caption lines; a line whose flag is True (a mistake) is shown in red."""
  plt = _pyplot()
  rows = max(1, -(-len(images) // columns))
  fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.8 * rows), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for ax, image, lines in zip(axes.flat, images, captions):
    ax.imshow(image)
    wrong = any(flag for _, flag in lines)
    for spine in ax.spines.values():
      spine.set_visible(True)
      spine.set_color(_WRONG if wrong else _RIGHT)
      spine.set_linewidth(3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.axis("on")
    for i, (text, flag) in enumerate(lines):
      ax.text(0.0, -0.04 - 0.085 * i, text, transform=ax.transAxes, fontsize=7.5, va="top",
              color=_WRONG if flag else "black")
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def contact_sheet(path: str, rows: Sequence[tuple], title: str) -> str:
  """One row per query: (query image, its caption, [(result image, caption), ...])."""
  plt = _pyplot()
  columns = 1 + max(len(results) for _, _, results in rows)
  fig, axes = plt.subplots(len(rows), columns, figsize=(2.2 * columns, 2.6 * len(rows)),
                           squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for row, (query, caption, results) in zip(axes, rows):
    row[0].imshow(query)
    row[0].set_title(caption, fontsize=8, color=_WRONG)
    for ax, (image, text) in zip(row[1:], results):
      ax.imshow(image)
      ax.set_title(text, fontsize=7)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)
