"""Preemption: a run killed (SIGKILL) or stopped (SIGTERM) and resumed ends exactly as one
that was never interrupted: parameters and logged metrics bit for bit.

Everything that carries state across steps is on: augmentation (grain RNG), a warm-up
cosine schedule, a stage switch (frozen backbone -> all, other weights), DWA loss
balancing (host state), EMA weights and a log window that a stop can cut mid-way.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import REPO
from fashion_jax.evaluation import events

STEPS = 36
CONFIG = textwrap.dedent(f"""
    import os
    from fashion_jax.config_lib import load_sibling_config
    from fashion_jax.tasks import task_config

    def get_config():
      config = load_sibling_config({os.path.join(REPO, "configs", "x.py")!r}, "default")
      config.tasks.gender = task_config("softmax", "gender")
      config.model.name = "resnet_tiny"
      config.model.width = 8
      config.data.image_size = 48
      config.data.num_threads = 2
      config.batch_size = 16
      config.num_train_steps = {STEPS}
      config.log_every_steps = 4
      config.eval_every_steps = 12
      config.eval_test = False
      config.checkpoint.every_steps = 3
      config.checkpoint.keep = 20
      config.optimizer.warmup_steps = 5
      config.augment.crop_scale = (0.5, 1.0)
      config.augment.brightness = 0.2
      config.augment.erase_probability = 0.5
      config.loss_balancing.name = "dwa"
      config.ema_decay = 0.9
      config.model.pretrained = "random"  # Its frozen stage freezes a random backbone.
      config.stages = {{
          "heads": {{"until_step": 10, "tasks": "", "frozen_backbone": True}},
          "all": {{"until_step": -1, "tasks": "articleType:1.0,gender:0.5",
                  "frozen_backbone": False}},
      }}
      return config
    """)
# Wall-clock figures differ between runs by nature.
_TIMING_TAGS = ("steps_per_sec", "uptime")


def _command(tmp_path, workdir):
  config = tmp_path / "resume_config.py"
  config.write_text(CONFIG)
  return [sys.executable, "-m", "fashion_jax.main", f"--config={config}", f"--workdir={workdir}"]


def _run(tmp_path, workdir):
  done = subprocess.run(_command(tmp_path, workdir), capture_output=True, text=True,
                        timeout=600, cwd=REPO)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def _start_and_signal(tmp_path, workdir, sig, after_checkpoint: int):
  """Starts a run and sends `sig` once its checkpoint of step >= after_checkpoint exists."""
  process = subprocess.Popen(_command(tmp_path, workdir), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
  checkpoints = workdir / "checkpoints"
  deadline = time.time() + 600
  while time.time() < deadline and process.poll() is None:
    # Finished checkpoints only (Orbax writes '<step>.orbax-checkpoint-tmp' first).
    names = os.listdir(checkpoints) if checkpoints.exists() else []
    if any(int(n) >= after_checkpoint for n in names if n.isdigit()):
      process.send_signal(sig)
      break
    time.sleep(0.005)
  out, err = process.communicate(timeout=600)
  return process.returncode, out, err


def _final_state(workdir):
  with ocp.StandardCheckpointer() as checkpointer:
    restored = checkpointer.restore(str(workdir / "checkpoints" / str(STEPS) / "state"))
  import jax
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(restored)}


def _logged(workdir):
  """{(tag, step): value}, the last value written for each (a resumed run rewrites)."""
  logged = {}
  for tag, values in events.read_scalars(str(workdir)).items():
    if tag not in _TIMING_TAGS:
      for step, value in values:
        logged[(tag, step)] = value
  return logged


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("uninterrupted")
  _run(tmp_path, tmp_path / "run")
  return tmp_path / "run"


def _assert_same_run(resumed, reference):
  reference_state, resumed_state = _final_state(reference), _final_state(resumed)
  assert reference_state.keys() == resumed_state.keys()
  for key, value in reference_state.items():
    np.testing.assert_array_equal(resumed_state[key], value, err_msg=key)
  reference_logs, resumed_logs = _logged(reference), _logged(resumed)
  assert {tag for tag, _ in reference_logs} >= {"loss/total", "loss_weight/gender",
                                                "val/articleType/accuracy", "learning_rate"}
  assert resumed_logs == reference_logs
  assert (json.loads((resumed / "final_metrics.json").read_text())
          == json.loads((reference / "final_metrics.json").read_text()))


@pytest.mark.slow
def test_sigkill_then_rerun_ends_bitwise_equal(uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  code, _, err = _start_and_signal(tmp_path, workdir, signal.SIGKILL, after_checkpoint=6)
  assert code == -signal.SIGKILL, f"the run ended before it was killed: {err[-2000:]}"
  assert not (workdir / "final_metrics.json").exists()
  resumed = _run(tmp_path, workdir)
  assert "Resuming at step" in resumed.stdout
  _assert_same_run(workdir, uninterrupted)


@pytest.mark.slow
def test_sigterm_checkpoints_exits_0_and_resumes_bitwise_equal(uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  code, out, err = _start_and_signal(tmp_path, workdir, signal.SIGTERM, after_checkpoint=3)
  assert code == 0, err[-3000:]
  assert "Stopped by SIGTERM after step" in out and "Run the same command again" in out
  stopped_at = int(out.split("Stopped by SIGTERM after step ")[1].split()[0])
  assert stopped_at < STEPS
  saved = sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())
  assert saved[-1] == stopped_at  # The stop itself wrote a checkpoint.
  resumed = _run(tmp_path, workdir)
  assert f"Resuming at step {stopped_at} of {STEPS}" in resumed.stdout
  _assert_same_run(workdir, uninterrupted)
