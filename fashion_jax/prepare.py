"""`python -m fashion_jax.prepare`: packs a dataset into ArrayRecord shards.

The command lives in
fashion_jax/tools/prepare.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import prepare

if __name__ == "__main__":
  __doc__ = prepare.__doc__  # absl's --help shows the running module's docstring.
  prepare.run()
