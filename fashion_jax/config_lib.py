"""Helpers for the experiment configs in `configs/`."""

import importlib.util
import os


def load_sibling_config(config_file: str, name: str, *args):
  """Returns `get_config(*args)` of `<name>.py` next to `config_file`.

  Experiment configs derive from each other (demo -> mtl -> default). They are loaded
  by path by `config_flags`, not imported as a package, so they load each other the
  same way.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"fashion_jax_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*args)
