"""`python -m fashion_jax.index`: builds and searches the catalog index.

The command lives in fashion_jax/tools/index.py; this module keeps the documented
form working.
"""

from fashion_jax.tools import index

if __name__ == "__main__":
  __doc__ = index.__doc__  # absl's --help shows the running module's docstring.
  index.run()
