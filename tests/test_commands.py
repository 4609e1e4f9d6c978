"""The command line (tools/commands.py): `python -m fashion_jax <command>`."""

import importlib
import os
import subprocess
import sys

import pytest

from conftest import REPO
from fashion_jax.tools import commands


def _run(*args):
  return subprocess.run([sys.executable, "-m", "fashion_jax", *args], cwd=REPO,
                        capture_output=True, text=True)


@pytest.mark.slow
def test_help_lists_every_command_with_one_line():
  result = _run("--help")
  assert result.returncode == 0
  listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
  assert listed == list(commands.COMMANDS)


def test_every_command_is_a_module_with_run_and_a_main_guard_of_its_own():
  for name, (module, _) in commands.COMMANDS.items():
    tool = importlib.import_module(module)
    assert callable(tool.run), name
    with open(tool.__file__) as f:
      assert 'if __name__ == "__main__":' in f.read(), name


@pytest.mark.slow
def test_a_command_shows_its_own_flags_and_an_unknown_one_lists_the_commands():
  result = _run("evaluate", "--help")
  assert "--checkpoint" in result.stdout
  assert "Evaluates a trained workdir" in result.stdout  # Its docstring, not the package's.
  unknown = _run("evalute")
  assert unknown.returncode == 2 and "unknown command 'evalute'" in unknown.stderr
  assert "inspect_data" in unknown.stderr


def test_no_module_of_the_package_root_only_forwards_to_a_tool():
  root = os.path.join(REPO, "fashion_jax")
  for name in os.listdir(root):
    if name.endswith(".py") and name not in ("__init__.py", "__main__.py"):
      with open(os.path.join(root, name)) as f:
        text = f.read()
      assert "from fashion_jax.tools import" not in text or "def " in text, name


@pytest.mark.slow
def test_a_user_error_is_one_line_and_exit_status_2_through_the_dispatcher(tmp_path):
  result = _run("evaluate", f"--workdir={tmp_path / 'nothing'}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("fashion_jax: ")
