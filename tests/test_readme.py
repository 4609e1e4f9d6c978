"""Every training command in the README and docs parses into a valid config, as main would."""

import glob
import os
import re
import shlex

import pytest
from absl import flags
from ml_collections import config_flags

from conftest import REPO
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
