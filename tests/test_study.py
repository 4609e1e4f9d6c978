"""scripts/study.py: the table of docs/results.md (mean and std over seeds of each row)."""

import json
import os
import sys

import pytest

from scripts import study


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
  from conftest import REPO
  from fashion_jax.config_lib import load_sibling_config
  for row, overrides in study.ROWS.items():
    overrides = dict(overrides or {})
    # Its config file, with the variant after ':' (configs/mtl_pretrained.py:joint).
    path, _, variant = overrides.pop(study.CONFIG, "configs/mtl.py").partition(":")
    config = load_sibling_config(os.path.join(REPO, path), os.path.basename(path)[:-3],
                                 *([variant] if variant else []))
    for path in overrides:
      node = config
      for key in path.split("."):
        assert key in node, (row, path)
        node = node[key]
  for row, (base, _, _) in study.EVAL_ROWS.items():
    assert base in study.ROWS, row
  with pytest.raises(SystemExit):
    sys.argv = ["study.py", "run", "--rows=nope"]
    study.main()


def _fake_runs(monkeypatch):
  """study.subprocess.run replaced: the commands it was given; evaluate and the baseline
  write their metrics where study.py reads them."""
  commands, real_run = [], study.subprocess.run

  def fake_run(command, **kwargs):
    if command[0] == "git":  # The record's commit.
      return real_run(command, **kwargs)
    commands.append(command)
    scores = {"metrics": {t: {"accuracy": 0.5, "macro_f1": 0.25, "n": 7} for t in study.TASKS}}
    if "evaluate" in command:
      flags = dict(a.split("=", 1) for a in command if a.startswith("--"))
      out = flags.get("--out", os.path.join(flags["--workdir"], "eval", flags["--split"]))
      os.makedirs(out, exist_ok=True)
      with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(scores, f)
    if "scripts/torch_baseline.py" in command:
      out = next(a.split("=", 1)[1] for a in command if a.startswith("--out="))
      with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(scores, f)
    return study.subprocess.CompletedProcess(command, 0)

  monkeypatch.setattr(study.subprocess, "run", fake_run)
  return commands


def test_a_row_with_set_overrides_runs_and_reports_as_its_own_variant(tmp_path, monkeypatch):
  """`--set data.image_size=224` reaches the training command; the record, workdir and
  table row are `<row>@data.image_size=224`, beside the row itself."""
  monkeypatch.setattr(study, "RESULTS", str(tmp_path))
  commands = _fake_runs(monkeypatch)
  extra = study.parse_sets(["config.data.image_size=224", "batch_size=256"])
  assert study.variant(extra) == "@batch_size=256,data.image_size=224"
  assert study.variant({"model.pretrained": "w/r50"}) == "@model.pretrained=w_r50"
  study.run_row("mtl", "/data", str(tmp_path / "work"), 8, 0, "test", extra)
  train = next(c for c in commands if "fashion_jax.main" in c)
  assert "--config.data.image_size=224" in train and "--config.batch_size=256" in train
  assert f"--workdir={tmp_path}/work/mtl@batch_size=256,data.image_size=224_e8_s0" in train
  _record(tmp_path / "runs", "mtl", 0, 0.9, 0.7)
  table = study.report(8, "test")
  assert "| mtl (0) accuracy | 0.900" in table
  assert "| mtl@batch_size=256,data.image_size=224 (0) accuracy | 0.500" in table
  with pytest.raises(SystemExit, match="expected KEY=VALUE"):
    study.parse_sets(["image_size"])
  with pytest.raises(SystemExit, match="baseline row takes no"):
    study.run_row("torch_baseline", "/data", str(tmp_path / "work"), 8, 0, "test", extra)
  # A baseline row: its own flags, and the image size that --set gives it.
  study.run_row("torch_lite0_pretrained", "/data", str(tmp_path / "work"), 8, 0, "test",
                {"data.image_size": "128"})
  baseline = commands[-1]
  assert baseline[1] == "scripts/torch_baseline.py"
  assert {"--model=efficientnet_lite0", "--pretrained", "--image_size=128"} <= set(baseline)
  # A row of another config file trains from it.
  study.run_row("pt_linear_probe", "/data", str(tmp_path / "work"), 8, 0, "test")
  train = next(c for c in reversed(commands) if "fashion_jax.main" in c)
  assert "--config=configs/mtl_pretrained.py:linear_probe" in train
  assert not any(a.startswith("--config.config") for a in train)


def test_a_run_recorded_on_one_split_is_scored_on_the_other_without_training(
    tmp_path, monkeypatch):
  monkeypatch.setattr(study, "RESULTS", str(tmp_path))
  commands = _fake_runs(monkeypatch)
  work = str(tmp_path / "work")
  study.run_row("pt_one_rate", "/data", work, 8, 1, "val")
  assert [c[2] for c in commands] == ["fashion_jax.main", "fashion_jax"]
  with open(tmp_path / "runs" / "pt_one_rate_e8_s1_val.json") as f:
    val = json.load(f)
  del commands[:]
  study.run_row("pt_one_rate", "/data", work, 8, 1, "test")
  study.run_row("pt_one_rate_flip", "/data", work, 8, 1, "test")
  # Two evaluations of the one workdir, the second flipped into its own folder.
  assert [c[2] for c in commands] == ["fashion_jax", "fashion_jax"]
  assert "--split=test" in commands[0] and "--flip=true" in commands[1]
  assert f"--workdir={work}/pt_one_rate_e8_s1" in commands[1]
  for name in ("pt_one_rate_e8_s1_test.json", "pt_one_rate_flip_e8_s1_test.json"):
    with open(tmp_path / "runs" / name) as f:
      record = json.load(f)
    assert (record["command"], record["train_seconds"]) == (val["command"],
                                                            val["train_seconds"])
    assert record["trained_at"] == val["commit"]
