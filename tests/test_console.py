"""What a training run prints: plain lines when stdout is not a terminal (counted here), a
progress bar on a terminal, the same lines in <workdir>/train.log, absl's per-step lines
only with --verbosity=1."""

import io

import pytest

from conftest import run_main
from fashion_jax import console as console_lib


@pytest.mark.slow
def test_a_short_run_prints_one_line_per_log_step_and_a_table_per_evaluation(tmp_path):
  result = run_main(tmp_path / "run", "--config.num_train_steps=8")
  assert result.returncode == 0, result.stderr[-2000:]
  everything = result.stdout.splitlines()
  # First what is trained on what: data, tasks, model, devices, one line per data problem.
  start = next(i for i, line in enumerate(everything) if line.startswith("Training "))
  header, lines = everything[:start], everything[start:]
  assert [line.split(":")[0] for line in header[:4]] == ["Data", "Tasks", "Model", "Devices"]
  assert all(line.startswith("Data warning: ") for line in header[4:])
  assert " train, " in header[0] and " val" in header[0] and "the embedded sample" in header[0]
  # 1 start line, 8/2 log steps, 2 evaluations (header + 1 task), final: header + val + test.
  assert len(lines) == 1 + 4 + 2 * 2 + 3, result.stdout
  assert lines[0].startswith("Training 8 steps")
  steps = [line for line in lines if line.startswith("step ")]
  assert [line.split()[1] for line in steps] == ["2/8", "4/8", "6/8", "8/8"]
  assert all("loss" in line and "img/s" in line and "ETA" in line for line in steps)
  assert "Final metrics at step 8:" in lines
  log = (tmp_path / "run" / "train.log").read_text().splitlines()
  assert log == everything
  # No absl line per step or per scalar on stderr, nor about a TPU library it has no use for.
  assert "libtpu" not in result.stderr
  assert "loss/total" not in result.stderr and "Setting work unit notes" not in result.stderr


@pytest.mark.slow
def test_verbosity_1_adds_absl_lines_of_every_scalar(tmp_path):
  result = run_main(tmp_path / "run", "--config.num_train_steps=4", "--verbosity=1")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "loss/total" in result.stderr


def test_on_a_terminal_a_progress_bar_shows_loss_lr_speed_and_eta(tmp_path):
  stream = io.StringIO()
  console = console_lib.TrainingConsole(str(tmp_path), total_steps=10, start_step=0,
                                        batch_size=8, stream=stream, interactive=True)
  for step in range(1, 11):
    console.advance(step)
    if step % 5 == 0:
      console.log_step(step, {"loss/total": 1.5, "learning_rate": 1e-3, "epoch": step / 10})
  console.evaluation(10, {"val/articleType/accuracy": 0.5})
  console.close()
  shown = stream.getvalue()
  assert "10/10" in shown and "loss 1.5000" in shown and "img/s" in shown
  assert "val   articleType      accuracy=0.5000" in shown
  log = (tmp_path / "train.log").read_text().splitlines()
  assert [line.split()[1] for line in log if line.startswith("step ")] == ["5/10", "10/10"]


def test_only_process_0_prints(tmp_path):
  stream = io.StringIO()
  console = console_lib.TrainingConsole(str(tmp_path), 4, 0, 8, enabled=False, stream=stream)
  console.message("hello")
  console.log_step(2, {"loss/total": 1.0})
  assert stream.getvalue() == "" and not (tmp_path / "train.log").exists()
