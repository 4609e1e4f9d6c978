"""`python -m fashion_jax.main`: trains and evaluates a multi-task model.

The command lives in
fashion_jax/tools/train.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import train

if __name__ == "__main__":
  __doc__ = train.__doc__  # absl's --help shows the running module's docstring.
  train.run()
