"""scripts/study.py: the table of docs/results.md (mean and std over seeds of each row)."""

import json
import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "scripts"))
import study  # noqa: E402


def _record(folder, row, seed, accuracy, macro_f1):
  metrics = {t: {"accuracy": accuracy, "macro_f1": macro_f1, "n": 10} for t in study.TASKS}
  with open(folder / f"{row}_e8_s{seed}_test.json", "w") as f:
    json.dump({"row": row, "epochs": 8, "seed": seed, "score": "test", "train_seconds": 600,
               "metrics": metrics}, f)


def test_report_gives_mean_and_std_over_seeds_per_row(tmp_path, monkeypatch):
  monkeypatch.setattr(study, "RESULTS", str(tmp_path))
  runs = tmp_path / "runs"
  runs.mkdir()
  _record(runs, "torch_baseline", 0, 0.8, 0.5)
  _record(runs, "torch_baseline", 1, 0.6, 0.3)
  _record(runs, "mtl", 0, 0.9, 0.7)
  with open(runs / "mtl_e2_s0_val.json", "w") as f:  # Another budget and split: not listed.
    json.dump({"row": "mtl", "epochs": 2, "seed": 0, "score": "val"}, f)
  table = study.report(8, "test").splitlines()
  baseline = next(line for line in table if line.startswith("| torch_baseline (0,1) accuracy"))
  assert baseline.count("0.700 ± 0.100") == len(study.TASKS) + 1  # Each task and the mean.
  assert baseline.endswith("| 10 |")  # Training minutes.
  assert any(line.startswith("| mtl (0) macro-F1 | 0.700 ± 0.000") for line in table)
  assert "gender [10]" in table[-1]


def test_every_row_is_a_known_config_override():
  from conftest import load_config
  config = load_config("mtl")
  for row, overrides in study.ROWS.items():
    for path in (overrides or {}):
      node = config
      for key in path.split("."):
        assert key in node, (row, path)
        node = node[key]
  for row, (base, _, _) in study.EVAL_ROWS.items():
    assert base in study.ROWS, row
  with pytest.raises(SystemExit):
    sys.argv = ["study.py", "run", "--rows=nope"]
    study.main()
