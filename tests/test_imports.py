"""The package's import graph: no module imports itself back, not even from inside a
function (a cycle there only waits for the wrong call order to break)."""

import ast
import os

from conftest import REPO

PACKAGE = "fashion_jax"


def _modules() -> dict[str, str]:
  """Dotted module name -> file, for every module of the package."""
  found = {}
  root = os.path.join(REPO, PACKAGE)
  for folder, _, files in os.walk(root):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        found[dotted.removesuffix(".__init__")] = path
  return found


def import_graph() -> dict[str, set[str]]:
  """Module -> the package modules it imports anywhere in its file."""
  modules = _modules()
  graph = {}
  for module, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                          + ([base] if base else []))
        # `from a import b`: b is a module of a, or a name defined in a.
        targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names)
    graph[module] = {t for t in targets if t in modules and t != module}
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle (a list of modules, the first repeated last) or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for target in sorted(graph.get(node, ())):
      if state.get(target) == "open":
        return stack[stack.index(target):] + [target]
      if target not in state:
        cycle = visit(target)
        if cycle:
          return cycle
    state[node] = "done"
    stack.pop()
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_find_cycle_finds_one_through_a_function_level_import():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions():
  graph = import_graph()
  assert "fashion_jax.training.train" in graph["fashion_jax.main"]
  assert "fashion_jax.data.pipeline" in graph["fashion_jax.training.train"]


def test_the_package_has_no_import_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)
