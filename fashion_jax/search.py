"""`python -m fashion_jax.search`: indexes a gallery and finds similar items.

The command lives in
fashion_jax/tools/search.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import search

if __name__ == "__main__":
  __doc__ = search.__doc__  # absl's --help shows the running module's docstring.
  search.run()
