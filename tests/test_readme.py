"""Every training command in the README and docs parses into a valid config, as main
would; the README's demo table is what the demo gives."""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from conftest import REPO, user_env
from fashion_jax import tasks as tasks_lib
from fashion_jax import validation
from fashion_jax.data import labelled, sources

DOCS = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
COMMAND = re.compile(r"python -m fashion_jax(?:\.main| (?:train|prepare|inspect_data|audit)) ([^\"\n]*)")


def _commands():
  """(file, command line) of each `python -m fashion_jax.main` (or `python -m fashion_jax
  train|prepare|inspect_data|audit`) in a code block."""
  found = []
  for path in DOCS:
    with open(path) as f:
      blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", f.read(), flags=re.S)
    for block in blocks:
      joined = re.sub(r"\\\n\s*", " ", block)  # Continuation lines.
      found += [(os.path.relpath(path, REPO), m.group(0)) for m in COMMAND.finditer(joined)]
  return found


def _parse(command: str):
  args = [a for a in shlex.split(COMMAND.match(command).group(1)) if a.startswith("--config")]
  # Config paths in the docs are relative to the repository root.
  argv = ["prog", *(re.sub(r"^--config=", f"--config={REPO}/", a) for a in args)]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config


def test_the_docs_have_training_commands():
  mains = [c for _, c in _commands() if c.startswith("python -m fashion_jax.main")]
  assert len(mains) >= 10
  assert any("--config.datasets.products.source=tfds" in c for c in mains)


@pytest.mark.parametrize("where,command", _commands())
def test_documented_command_gives_a_valid_config(where, command):
  config = _parse(command)
  validation.validate_config(config)
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  assert tasks
  for name in config.datasets:
    sources.resolve_dataset_config(config.datasets[name], f"config.datasets.{name}")


# How far a figure of the README's demo table may move on another CPU or a new version of
# a library: the sample's 48 validation images make each image ~0.02, and runs that differ
# in the last bit of one operation end a few images apart. A broken model, pipeline or
# metric moves them further.
DEMO_TOLERANCE = {"accuracy": 0.09, "macro_f1": 0.12, "recall": 0.09}


def _readme_demo_table() -> dict[str, float]:
  """'val/<task>/<metric>' -> the README's figure, from its demo table."""
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  table = text[text.index("What the demo gives"):].split("\n\n")[1]
  expected = {}
  for line in table.splitlines()[2:]:
    name, accuracy, macro_f1 = [cell.strip() for cell in line.strip("|").split("|")]
    if name.startswith("embedding Recall@1 / @5"):
      at_1, at_5 = accuracy.split(" / ")
      expected.update({"val/embedding/recall_at_1": float(at_1),
                       "val/embedding/recall_at_5": float(at_5)})
      continue
    for task, a, f1 in zip(name.split(" / "), accuracy.split(" / "), macro_f1.split(" / ")):
      expected.update({f"val/{task}/accuracy": float(a), f"val/{task}/macro_f1": float(f1)})
  return expected


@pytest.mark.slow
def test_the_demo_gives_the_readmes_numbers(tmp_path):
  expected = _readme_demo_table()
  assert len(expected) == 16, expected  # Seven tasks twice, and the embedding's two.
  result = subprocess.run([sys.executable, "-m", "fashion_jax.main", "--config=configs/demo.py",
                           f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env=user_env())
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(tmp_path, "final_metrics.json")) as f:
    got = json.load(f)
  off = {key: (value, round(got[key], 3)) for key, value in expected.items()
         if abs(got[key] - value) > DEMO_TOLERANCE[key.split("/")[-1].split("_at_")[0]]}
  assert not off, f"README figure vs this run, beyond {DEMO_TOLERANCE}: {off}"
