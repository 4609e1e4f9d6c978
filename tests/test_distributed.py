"""Two processes on this machine, joined by jax.distributed over 127.0.0.1 (gloo on CPU)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, xla_flags

_TINY = ["--config.model.name=resnet_tiny", "--config.model.width=8",
         "--config.data.image_size=32", "--config.batch_size=16", "--config.num_train_steps=4",
         "--config.eval_every_steps=4", "--config.checkpoint.every_steps=2",
         "--config.optimizer.warmup_steps=1", "--config.data.num_threads=2",
         "--config.checkpoint.asynchronous=False",
         "--verbosity=0"]  # Process 1's console goes to its absl log, read below.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(workdir, steps: int, *overrides):
  port = _free_port()
  processes = []
  for index in range(2):
    env = {**os.environ, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(index), "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = xla_flags()  # One device per process.
    args = [sys.executable, "-m", "fashion_jax.main", f"--config={REPO}/configs/demo.py",
            f"--workdir={workdir}", *_TINY, f"--config.num_train_steps={steps}", *overrides]
    processes.append(subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
  return processes


def _finish(processes):
  """(stdout, stderr) of each process, after checking that each exited 0."""
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  return outputs


def _launch(workdir, steps: int):
  """Each process's output: process 0's console lines (stdout) and every log (stderr)."""
  return [out + err for out, err in _finish(_start(workdir, steps))]


@pytest.mark.slow
def test_two_processes_train_checkpoint_and_resume_together(tmp_path):
  workdir = tmp_path / "run"
  logs = _launch(workdir, 4)
  context = "\n---\n".join(log[-2000:] for log in logs)
  assert "process 0/2" in logs[0] and "process 1/2" in logs[1], context
  # Each process feeds its half of the global batch of 16 to the 2 global devices.
  assert "global batch 16 on 2 devices" in logs[0], context
  metrics = json.loads((workdir / "final_metrics.json").read_text())
  assert metrics["step"] == 4 and 0 <= metrics["val/articleType/accuracy"] <= 1
  # Only process 0 writes the TensorBoard events.
  assert len([n for n in os.listdir(workdir) if n.startswith("events.out")]) == 1
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"], context
  # Both processes resume from the collective checkpoint and train on to step 6.
  logs = _launch(workdir, 6)
  assert all("Resuming at step 4 of 6" in log for log in logs)
  assert json.loads((workdir / "final_metrics.json").read_text())["step"] == 6


@pytest.mark.slow
def test_sigterm_to_one_host_stops_both_after_the_same_step_with_a_checkpoint(tmp_path):
  workdir = tmp_path / "run"
  processes = _start(workdir, 400, "--config.eval_every_steps=1000")
  checkpoints = workdir / "checkpoints"
  deadline = time.time() + 300
  while time.time() < deadline and all(p.poll() is None for p in processes):
    if checkpoints.exists() and any(n.isdigit() and int(n) >= 4 for n in os.listdir(checkpoints)):
      processes[1].send_signal(signal.SIGTERM)  # A preemption notice to one host only.
      break
    time.sleep(0.01)
  outputs = _finish(processes)
  # JAX's preemption sync point makes both stop after the same step.
  # Process 0 says it on its console (stdout), process 1 in its log (stderr).
  stops = [re.search(r"Stopped by .* after step (\d+) of 400", out + err)
           for out, err in outputs]
  assert all(stops), [(out + err)[-500:] for out, err in outputs]
  assert stops[0].group(1) == stops[1].group(1)
  assert stops[0].group(1) in os.listdir(checkpoints)  # Written collectively at that step.
