"""The catalog audit: likely wrong labels, missing labels filled, near-duplicate groups,
for every dataset of a config and each of its tasks whose kind is `audited` (softmax and
sigmoid), written as files a catalog team opens (see the audit command,
tools/audit.py).

    report = catalog_audit.audit(config, catalog_audit.Options(out="runs/audit"))

Features come from the config's pretrained backbone, frozen (audit/features.py); every
labelled row's probabilities from linear heads cross-fitted on the other folds
(audit/cross_fit.py); the rest from cleanlab (audit/labels.py) and FAISS
(audit/near_duplicates.py).
"""

import csv
import dataclasses
import json
import os
import time

import numpy as np

from fashion_jax import validation
from fashion_jax.audit import cross_fit, features as features_lib, labels as labels_lib
from fashion_jax.audit import near_duplicates
from fashion_jax.data import labelled, sources, transforms
from fashion_jax.errors import ConfigError

REPORT = "audit.json"


@dataclasses.dataclass
class Options:
  out: str
  dataset: str = ""  # '' = every configured dataset.
  # The backbone's ImageNet resolution: on the shared images the cross-fitted heads reach
  # 0.880 out-of-sample articleType accuracy at 224 px against 0.831 at 96 px.
  image_size: int = 224
  batch_size: int = 32
  heads: cross_fit.HeadSettings = cross_fit.HeadSettings()
  fill_precision: float = 0.95  # Missing labels are filled where this precision holds.
  # Near-duplicates compare two views of each photo (whole, central 80%) at 160 px: on
  # the shared images resized copies match their originals best at 128-160 px, cropped
  # ones only through the central view (docs/audit.md).
  duplicate_threshold: float = 0.93
  duplicate_image_size: int = 160
  duplicate_crop: float = 0.8
  neighbours: int = 10
  sheet_rows: int = 50  # Top suspects per task in its contact sheet (0: none).
  progress: bool = True


def _write_csv(path: str, rows: list[dict], fields: list[str]) -> str:
  staging = path + ".partial"
  with open(staging, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
  os.replace(staging, path)
  return path


def _names(classes, row: np.ndarray) -> str:
  return "|".join(classes[i] for i in np.flatnonzero(row))


def _suspects(task, classes, table, labels, probabilities, quality, flagged) -> list[dict]:
  multi = labels.ndim == 2
  out = []
  for rank, row in enumerate(flagged, 1):
    p = probabilities[row]
    if multi:
      given, suggested = _names(classes, labels[row]), _names(classes, p >= 0.5)
      given_p = float(np.mean(p[labels[row] > 0])) if labels[row].any() else 0.0
      suggested_p = float(np.mean(p[p >= 0.5])) if (p >= 0.5).any() else 0.0
    else:
      given, suggested = classes[labels[row]], classes[int(np.argmax(p))]
      given_p, suggested_p = float(p[labels[row]]), float(p.max())
    out.append({"rank": rank, "row": int(row), "id": str(table.ids[row]),
                "image": table.images.describe(int(table.rows[row])), "task": task.name,
                "given": given, "suggested": suggested,
                "given_probability": round(given_p, 4),
                "suggested_probability": round(suggested_p, 4),
                "label_quality": round(float(quality[row]), 4)})
  return out


def _audit_task(task, table, feats: features_lib.Features, options: Options, seed: int):
  values = table.columns[task.column]
  folds = options.heads.folds
  # A class needs a row in every fold to be learned out of sample.
  audited_task = dataclasses.replace(task, min_count=max(task.min_count, folds))
  vocab = task.spec.build_vocab(audited_task, values, "drop")
  labels, mask = task.spec.encode(audited_task, vocab, values)
  known = (mask > 0) & feats.readable
  missing = np.asarray([not v for v in values]) & feats.readable
  rare = np.asarray([bool(v) for v in values]) & (mask == 0)
  classes = list(vocab.classes)
  settings = dataclasses.replace(options.heads, seed=seed)
  probabilities, _ = cross_fit.out_of_sample_probabilities(
      feats.values, labels, known, len(classes), settings)
  known_rows = np.flatnonzero(known)
  quality = np.full(len(table), np.nan)
  quality[known_rows] = labels_lib.label_quality(labels[known_rows], probabilities[known_rows])
  flagged = known_rows[labels_lib.find_label_issues(labels[known_rows],
                                                    probabilities[known_rows])]
  suspects = _suspects(task, classes, table, labels, probabilities, quality, flagged)
  multi = labels.ndim == 2
  if multi:
    precision, recall = labels_lib.multi_label_fill_quality(
        labels[known_rows], probabilities[known_rows], 0.5)
    rule = {"threshold": 0.5, "precision_on_known": round(precision, 4),
            "recall_on_known": round(recall, 4)}
    confident = lambda p: bool((p >= 0.5).any())  # noqa: E731
  else:
    fill = labels_lib.fill_rule(labels[known_rows], probabilities[known_rows],
                                options.fill_precision)
    rule = {"target_precision": fill.target_precision, "threshold": fill.threshold,
            "precision_on_known": round(fill.precision, 4),
            "coverage_on_known": round(fill.coverage, 4)}
    confident = lambda p: fill.threshold is not None and p.max() >= fill.threshold  # noqa
  fills = []
  for row in np.flatnonzero(missing):
    p = probabilities[row]
    fills.append({"row": int(row), "id": str(table.ids[row]),
                  "image": table.images.describe(int(table.rows[row])), "task": task.name,
                  "suggested": _names(classes, p >= 0.5) if multi else classes[int(p.argmax())],
                  "probability": round(float(p[p >= 0.5].mean() if multi and (p >= 0.5).any()
                                             else p.max()), 4),
                  "filled": confident(p)})
  summary = {
      "column": task.column, "kind": task.kind, "classes": len(classes),
      "rows_labelled": int(known.sum()), "rows_missing": int(missing.sum()),
      "rows_not_audited": int(rare.sum()),
      "not_audited_why": f"classes with fewer than {audited_task.min_count} rows "
                         f"(one per fold of {folds})",
      "suspects": len(suspects), "suspect_rate": round(len(suspects) / max(known.sum(), 1), 4),
      "missing_filled": int(sum(f["filled"] for f in fills)), "fill_rule": rule,
      "out_of_sample_accuracy": (None if multi else round(float(np.mean(
          probabilities[known_rows].argmax(1) == labels[known_rows])), 4)),
  }
  return summary, suspects, fills, probabilities


def _contact_sheet(path: str, table, suspects: list[dict], title: str, size: int = 128):
  from fashion_jax.evaluation import plots
  images, captions = [], []
  for s in suspects:
    try:
      images.append(transforms.decode_image(table.image(s["row"]), size))
    except (OSError, ValueError):
      continue
    captions.append([(f"#{s['rank']} id {s['id']}", False),
                     (f"given: {s['given']}"[:38], True),
                     (f"suggested: {s['suggested']} ({s['suggested_probability']:.2f})"[:38],
                      False)])
  if images:
    plots.image_grid(path, images, captions, title, columns=5)


def audit_dataset(config, name: str, tasks, options: Options) -> dict:
  """Audits one configured dataset; writes its CSV and PNG files into options.out."""
  where = f"config.datasets.{name}"
  resolved = sources.resolve_dataset_config(config.datasets[name], where)
  own = [t for t in tasks if t.dataset == name and t.spec.audited]
  table, data_report = labelled.read_table(config, name, resolved, tasks)
  image_size = options.image_size
  feats = features_lib.extract(table, config.model, image_size, options.batch_size,
                               cache_dir=os.path.join(options.out, name),
                               progress=options.progress)
  out = {"rows": len(table), "unreadable_images": [feats.errors[r] for r in sorted(feats.errors)],
         "skipped_rows": data_report.to_dict()["problems"], "tasks": {}, "files": []}
  suspect_fields = ["rank", "row", "id", "image", "task", "given", "suggested",
                    "given_probability", "suggested_probability", "label_quality"]
  fill_fields = ["row", "id", "image", "task", "suggested", "probability", "filled"]
  for task in own:
    summary, suspects, fills, _ = _audit_task(task, table, feats, options, int(config.seed))
    out["tasks"][task.name] = summary
    out["files"].append(_write_csv(os.path.join(options.out, f"{task.name}_label_issues.csv"),
                                   suspects, suspect_fields))
    if fills:
      out["files"].append(_write_csv(
          os.path.join(options.out, f"{task.name}_missing_labels.csv"), fills, fill_fields))
    if options.sheet_rows and suspects:
      sheet = os.path.join(options.out, f"{task.name}_label_issues.png")
      _contact_sheet(sheet, table, suspects[:options.sheet_rows],
                     f"{name} / {task.name}: top {min(len(suspects), options.sheet_rows)} "
                     "suspected wrong labels (given in red)")
      out["files"].append(sheet)
  cache = os.path.join(options.out, name)
  views = [features_lib.extract(table, config.model, options.duplicate_image_size,
                                options.batch_size, cache, options.progress, crop).values
           for crop in (1.0, options.duplicate_crop)]
  found = near_duplicates.groups(views, feats.readable, feats.digests,
                                 options.duplicate_threshold, options.neighbours)
  columns = {t.name: table.columns[t.column] for t in tasks if t.dataset == name}
  for group in found:
    group["conflicting"] = near_duplicates.conflicting_tasks(group["rows"], columns)
  found.sort(key=lambda g: (-len(g["conflicting"]), -len(g["rows"]), -g["min_similarity"]))
  rows = [{"group": g, "size": len(group["rows"]), "exact": group["exact"],
           "min_similarity": round(group["min_similarity"], 4),
           "conflicting": "|".join(group["conflicting"]), "row": int(r),
           "id": str(table.ids[r]), "image": table.images.describe(int(table.rows[r])),
           **{t: columns[t][r] for t in columns}}
          for g, group in enumerate(found, 1) for r in group["rows"]]
  out["near_duplicates"] = {
      "threshold": options.duplicate_threshold, "groups": len(found),
      "rows": int(sum(len(g["rows"]) for g in found)),
      "groups_with_conflicting_labels": int(sum(bool(g["conflicting"]) for g in found))}
  out["files"].append(_write_csv(
      os.path.join(options.out, f"{name}_near_duplicates.csv"), rows,
      ["group", "size", "exact", "min_similarity", "conflicting", "row", "id", "image",
       *columns]))
  return out


def audit(config, options: Options) -> dict:
  """Audits the configured datasets (options.dataset: one of them); writes
  `options.out`/audit.json beside the per-task files and returns its content."""
  started = time.time()
  tasks = labelled.resolve_datasets(validation.validate_config(config), config.datasets)
  names = [options.dataset] if options.dataset else list(config.datasets)
  for name in names:
    if name not in config.datasets:
      raise ConfigError(f"--dataset={name!r}: the config's datasets are {list(config.datasets)}.")
  if not any(t.spec.audited for t in tasks if t.dataset in names):
    raise ConfigError("Nothing to audit: the audit looks at softmax and sigmoid tasks, and "
                      f"{names} has none (config.tasks).")
  features_lib.check_pretrained(config.model)
  os.makedirs(options.out, exist_ok=True)
  report = {"features": {"model": config.model.name,
                         "pretrained": config.model.get("pretrained", ""),
                         "image_size": options.image_size,
                         "never_saw_these_labels": True},
            "heads": dataclasses.asdict(options.heads), "fill_precision": options.fill_precision,
            "datasets": {}}
  for name in names:
    report["datasets"][name] = audit_dataset(config, name, tasks, options)
  report["seconds"] = round(time.time() - started, 1)
  staging = os.path.join(options.out, REPORT + ".partial")
  with open(staging, "w") as f:
    json.dump(report, f, indent=1)
  os.replace(staging, os.path.join(options.out, REPORT))
  return report
