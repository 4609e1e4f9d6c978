"""scripts/accelerator_check.py, the prepared run for a visiting accelerator: its dry run
executes every part on the CPU at tiny sizes, and its time budget stops what would run
past it while keeping what finished."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "accelerator_check.py")


def _run(out, *flags):
  result = subprocess.run([sys.executable, SCRIPT, f"--out={out}", *flags], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(out, "summary.json")) as f:
    return json.load(f)


@pytest.mark.slow
def test_the_dry_run_executes_every_part(tmp_path):
  summary = _run(tmp_path, "--dry-run")
  parts = summary["parts"]
  assert list(parts) == ["environment", "resnet50_step", "input_pipeline", "export", "tests",
                         "extra"]
  assert {p["status"] for p in parts.values()} == {"done"}, parts
  assert parts["environment"]["backend"] == "cpu" and parts["environment"]["jax"]
  step = parts["resnet50_step"]
  assert step["jax"]["train_ips"] > 0 and 0 < step["jax"]["mfu"] < 1
  assert step["torch_channels_last_amp"]["train_ips"] > 0 and step["jax_over_torch_train"] > 0
  assert all(v > 0 for v in parts["input_pipeline"]["images_per_s"].values())
  export = parts["export"]
  assert export["passed"] and set(export["highest"]) == {"articleType", "gender", "embedding"}
  assert parts["tests"]["returncode"] == 0 and "passed" in parts["tests"]["summary"]
  assert parts["extra"]["efficientnet_lite_test"]["jax"]["train_ips"] > 0
  assert "val/articleType/accuracy" in parts["extra"]["demo_training"]
  assert len(os.listdir(tmp_path)) <= 6, os.listdir(tmp_path)


def test_the_time_budget_stops_a_part_and_skips_the_rest(tmp_path):
  summary = _run(tmp_path, "--dry-run", "--parts=environment,resnet50_step,export",
                 "--time_budget=12")
  parts = summary["parts"]
  assert parts["environment"]["status"] == "done"  # Kept: written as it finished.
  assert parts["resnet50_step"]["status"] == "stopped at the time budget"
  assert parts["export"]["status"] == "skipped: out of time"
  assert summary["seconds"] < 20
