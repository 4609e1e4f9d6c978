"""Names to modules, imported on first lookup: the one registry style of fashion_jax.

Task kinds, backbone families, data sources and commands are each a name -> module
path map; looking a name up imports its module and returns the attribute the registry
names (a kind's `KIND`, a family's `FAMILY`, a command's module; a source's loader as
'module:function'), so that what is registered costs nothing until it is used, and
adding one is one line.
"""

import importlib
from collections.abc import Mapping


def resolve(path: str, attribute: str = ""):
  """'pkg.module' or 'pkg.module:attribute' (which wins over `attribute`) -> that object,
  the module imported now."""
  module_path, _, named = path.partition(":")
  module = importlib.import_module(module_path)
  attribute = named or attribute
  return getattr(module, attribute) if attribute else module


class Registry(Mapping):
  """{name: module path}; `registry[name]` is `getattr(import(path), attribute)`, or the
  module itself when `attribute` is empty."""

  def __init__(self, what: str, modules: dict[str, str], attribute: str = ""):
    self.what = what
    self.modules = dict(modules)
    self.attribute = attribute

  def __getitem__(self, name: str):
    if name not in self.modules:
      raise KeyError(f"{name!r} is not a {self.what}; the {self.what}s are "
                     f"{sorted(self.modules)}.")
    return resolve(self.modules[name], self.attribute)

  def __contains__(self, name) -> bool:  # Without importing anything.
    return name in self.modules

  def __iter__(self):
    return iter(self.modules)

  def __len__(self) -> int:
    return len(self.modules)
