"""The quick tier (`python -m pytest -m "not slow" tests`) keeps a test of every test
module, so that daily runs still touch every part of the package."""

import ast
import glob
import os

from conftest import REPO

# Test modules every test of which needs what only a slow test has.
ALL_SLOW = {
    "test_app.py": "every test talks to a trained model served over HTTP",
    "test_distributed.py": "every test joins two training processes",
    "test_resume.py": "every test kills and resumes a whole run",
}


def _is_slow(node) -> bool:
  """Marked slow as a whole (a parametrized test with some slow cases keeps the rest)."""
  return any(ast.unparse(d) == "pytest.mark.slow" for d in node.decorator_list)


def _quick_tests(path: str) -> int:
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  for node in tree.body:  # A module-wide `pytestmark = pytest.mark.slow`.
    if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark"
                                            for t in node.targets):
      if "slow" in ast.unparse(node.value):
        return 0
  return sum(1 for node in tree.body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
             and not _is_slow(node))


def test_every_test_module_keeps_a_quick_test():
  paths = sorted(glob.glob(os.path.join(REPO, "tests", "test_*.py")))
  assert len(paths) > 40
  without = [os.path.basename(p) for p in paths
             if _quick_tests(p) == 0 and os.path.basename(p) not in ALL_SLOW]
  assert not without, f"only slow tests in {without}: keep one quick test in each"


def test_the_readme_gives_both_tiers():
  with open(os.path.join(REPO, "README.md")) as f:
    readme = f.read()
  assert "python -m pytest -q tests" in readme
  assert 'python -m pytest -q -m "not slow" tests' in readme
