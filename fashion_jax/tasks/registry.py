"""Task kinds by name; a kind's module is imported when the name is first looked up.

A new kind is one module in fashion_jax/tasks/ defining `KIND` (a `base.TaskKind`) and
one line here.
"""

import importlib
from collections.abc import Mapping

_MODULES = {
    "softmax": "fashion_jax.tasks.softmax",
    "sigmoid": "fashion_jax.tasks.sigmoid",
    "embedding": "fashion_jax.tasks.embedding",
    "regression": "fashion_jax.tasks.regression",
}


class _Kinds(Mapping):
  def __getitem__(self, name: str):
    if name not in _MODULES:
      raise KeyError(name)
    return importlib.import_module(_MODULES[name]).KIND

  def __iter__(self):
    return iter(_MODULES)

  def __len__(self) -> int:
    return len(_MODULES)


KINDS = _Kinds()
