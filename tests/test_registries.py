"""Every registered task kind, backbone, data source and command is documented."""

import glob
import os
import re

from conftest import REPO
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import sources
from fashion_jax.models import backbones
from fashion_jax.tools import commands


def _read(*patterns) -> str:
  return "\n".join(open(path).read() for pattern in patterns
                   for path in sorted(glob.glob(os.path.join(REPO, pattern))))


def _named(name: str, text: str) -> bool:
  """`name` as a word, or inside a range such as `efficientnet_b0` ... `efficientnet_b5`,
  `tf_efficientnet_b0` ... `_b5` or efficientnet_lite0..4."""
  if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text):
    return True
  stem, number = re.match(r"(.*?)(\d*)$", name).groups()
  if not number:
    return False
  ranges = re.findall(rf"(?<!\w){re.escape(stem)}(\d+)`?\s*\.\.\.?\s*`?(?:{re.escape(stem)}"
                      rf"|_?[a-z]*)(\d+)", text)
  return any(int(low) <= int(number) <= int(high) for low, high in ranges)


def test_docs_name_every_kind_source_and_command():
  docs = _read("docs/*.md")
  for name in [*tasks_lib.KINDS, *sources.SOURCES, *commands.COMMANDS]:
    assert _named(name, docs), f"docs/ never names {name!r}"


def test_the_readme_names_every_family_and_source_and_the_default_config_every_backbone():
  readme, default = _read("README.md"), _read("configs/default.py")
  families = {module.rsplit(".", 1)[1] for module in backbones.FAMILIES.modules.values()}
  for name in families:
    assert _named(name, readme), f"README.md never names the backbone family {name!r}"
  for name in backbones.NAMES:
    assert _named(name, default), f"configs/default.py never names backbone {name!r}"
  for name in sources.SOURCES:
    for text, where in ((readme, "README.md"), (default, "configs/default.py")):
      assert _named(name, text), f"{where} never names source {name!r}"


def test_a_registry_lookup_imports_only_what_it_names_and_says_what_exists():
  import pytest
  with pytest.raises(KeyError, match="the task kinds are"):
    tasks_lib.KINDS["softmaxx"]
  assert "softmax" in tasks_lib.KINDS and "softmaxx" not in tasks_lib.KINDS


def test_the_readme_map_names_every_package_and_every_path_the_docs_name_exists():
  readme = _read("README.md")
  packages = [name for name in sorted(os.listdir(os.path.join(REPO, "fashion_jax")))
              if os.path.isfile(os.path.join(REPO, "fashion_jax", name, "__init__.py"))]
  for package in packages:
    assert f"  {package}/" in readme, f"README.md's map leaves out fashion_jax/{package}/"
  text = _read("README.md", "docs/*.md", "configs/*.py")
  for path in sorted(set(re.findall(r"\bfashion_jax/[\w/]+\.py\b", text))):
    assert os.path.exists(os.path.join(REPO, path)), f"the docs name {path}, which is gone"


def test_no_module_outside_tasks_decides_by_a_task_kind_name():
  kinds = "|".join(tasks_lib.KINDS)
  decision = re.compile(rf"kind\s*(==|!=|in|not in)\s*[(\[{{]?\s*[\"']({kinds})[\"']")
  for path in sorted(glob.glob(os.path.join(REPO, "fashion_jax", "**", "*.py"), recursive=True)):
    if os.sep + "tasks" + os.sep in path:
      continue
    with open(path) as f:
      for number, line in enumerate(f, 1):
        assert not decision.search(line), f"{path}:{number} tests a kind's name: {line.strip()}"
