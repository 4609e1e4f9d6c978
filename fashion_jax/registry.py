"""Names to modules, imported on first lookup: the one registry style of fashion_jax.

Task kinds, backbone families and commands are each a `Registry` of name -> module
path; looking a name up imports its module and returns the attribute the registry
names (a kind's `KIND`, a family's `FAMILY`, a command's module), so that what is
registered costs nothing until it is used, and adding one is one line.
"""

import importlib
from collections.abc import Mapping


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
    module = importlib.import_module(self.modules[name])
    return getattr(module, self.attribute) if self.attribute else module

  def __iter__(self):
    return iter(self.modules)

  def __len__(self) -> int:
    return len(self.modules)
