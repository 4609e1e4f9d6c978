"""notebooks/colab_tpu.ipynb: a valid notebook whose training overrides parse as main would."""

import ast
import json
import os

from conftest import REPO
from fashion_jax import tasks as tasks_lib
from fashion_jax.config_lib import load_sibling_config
from fashion_jax import validation
from fashion_jax.data import labelled, sources

NOTEBOOK = os.path.join(REPO, "notebooks", "colab_tpu.ipynb")


def _cells():
  with open(NOTEBOOK) as f:
    notebook = json.load(f)
  assert notebook["nbformat"] == 4 and notebook["metadata"]["accelerator"] == "TPU"
  for cell in notebook["cells"]:
    assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
    if cell["cell_type"] == "code":
      assert cell["outputs"] == [] and "execution_count" in cell
  return notebook["cells"]


def test_notebook_overrides_parse_into_a_valid_config():
  code = ["".join(c["source"]) for c in _cells() if c["cell_type"] == "code"]
  train_cell = next(c for c in code if "OVERRIDES = [" in c)
  overrides = ast.literal_eval(train_cell.split("OVERRIDES = ", 1)[1].split("]", 1)[0] + "]")
  assert "configs/mtl.py:hugging_face" in train_cell
  config = load_sibling_config(os.path.join(REPO, "configs", "x.py"), "mtl", "hugging_face")
  config.lock()
  for override in overrides:
    # As config_flags applies --config.a.b=value: an existing field, converted to its type.
    path, value = override.removeprefix("--config.").split("=", 1)
    *parents, field = path.split(".")
    node = config
    for key in parents:
      node = node[key]
    current = node[field]
    node[field] = (value.lower() == "true" if isinstance(current, bool)
                   else type(current)(value))
  assert config.batch_size == 256 and config.model.dtype == "bfloat16"
  assert config.datasets.products.source == "hugging_face"
  validation.validate_config(config)
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  assert len(tasks) == 8
  sources.resolve_dataset_config(config.datasets.products, "config.datasets.products")
  # Every python cell that is not a shell escape compiles.
  for cell in code:
    python = "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("!", "%")))
    compile(python, NOTEBOOK, "exec")
