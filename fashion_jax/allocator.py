"""Runs the process with tcmalloc when it is installed: XLA:CPU steps get much cheaper.

glibc's malloc hands XLA's large per-step temporaries back to the OS and faults them
in again on the next step; on a 2-core CPU that was a large share of a ResNet-50 step's
time (system time). tcmalloc keeps them. An allocator can only be swapped before the
process starts, so the entry points re-execute themselves once with LD_PRELOAD set.
Install it with `apt-get install libtcmalloc-minimal4`; set FASHION_JAX_ALLOCATOR=system
to opt out.
"""

import ctypes.util
import os
import sys

_ENV = "FASHION_JAX_ALLOCATOR"


def tcmalloc_library() -> str | None:
  return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def reexec_with_tcmalloc(argv: list[str]) -> None:
  """Replaces this process by `python argv...` with tcmalloc preloaded, if possible.

  Returns (doing nothing) when tcmalloc is missing, already loaded, opted out of, or
  not applicable (not Linux); otherwise does not return.
  """
  if sys.platform != "linux" or os.environ.get(_ENV) in ("system", "tcmalloc"):
    return
  preload = os.environ.get("LD_PRELOAD", "")
  library = tcmalloc_library()
  if library is None or "tcmalloc" in preload:
    return
  env = {**os.environ, "LD_PRELOAD": f"{preload} {library}".strip(), _ENV: "tcmalloc"}
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *argv], env)


def current() -> str:
  return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system malloc"
