"""`python -m fashion_jax.evaluate`: scores a trained run on labelled data.

The command lives in
fashion_jax/tools/evaluate.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import evaluate

if __name__ == "__main__":
  __doc__ = evaluate.__doc__  # absl's --help shows the running module's docstring.
  evaluate.run()
