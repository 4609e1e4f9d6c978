"""`python -m fashion_jax.compare`: tables runs side by side.

The command lives in
fashion_jax/tools/compare.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import compare

if __name__ == "__main__":
  __doc__ = compare.__doc__  # absl's --help shows the running module's docstring.
  compare.run()
