"""Two processes on this machine, joined by jax.distributed over 127.0.0.1 (gloo on CPU)."""

import json
import os
import socket
import subprocess
import sys

from conftest import REPO

_TINY = ["--config.model.name=resnet_tiny", "--config.model.width=8",
         "--config.data.image_size=32", "--config.batch_size=16", "--config.num_train_steps=4",
         "--config.eval_every_steps=4", "--config.checkpoint.every_steps=2",
         "--config.optimizer.warmup_steps=1", "--config.data.num_threads=2",
         "--config.checkpoint.asynchronous=False"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, steps: int):
  port = _free_port()
  processes = []
  for index in range(2):
    env = {**os.environ, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(index), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    args = [sys.executable, "-m", "fashion_jax.main", f"--config={REPO}/configs/demo.py",
            f"--workdir={workdir}", *_TINY, f"--config.num_train_steps={steps}"]
    processes.append(subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  return [err for _, err in outputs]


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
