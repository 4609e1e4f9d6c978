"""The entry points' allocator switch (tcmalloc when installed, opt-out by env var)."""

import os
import subprocess
import sys

import pytest

from fashion_jax import allocator

_PROBE = ("from fashion_jax import allocator; "
          "allocator.reexec_with_tcmalloc(['-c', 'import os; "
          "print(os.environ.get(\"LD_PRELOAD\", \"\"))'])")


def _preload_after_reexec(**env):
  environment = {k: v for k, v in os.environ.items()
                 if k not in ("LD_PRELOAD", "FASHION_JAX_ALLOCATOR")}
  environment.update(env)
  result = subprocess.run([sys.executable, "-c", _PROBE], env=environment,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  return result.stdout.strip()


@pytest.mark.slow
def test_reexec_preloads_tcmalloc_exactly_when_it_is_installed():
  library = allocator.tcmalloc_library()
  preload = _preload_after_reexec()
  if library:
    assert library in preload
  else:  # Nothing to preload: the process runs on, unchanged.
    assert preload == ""


def test_opt_out_keeps_the_system_allocator():
  assert _preload_after_reexec(FASHION_JAX_ALLOCATOR="system") == ""
