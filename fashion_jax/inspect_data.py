"""`python -m fashion_jax.inspect_data`: checks a configured dataset before training.

The command lives in fashion_jax/tools/inspect_data.py; this module keeps the documented
form working.
"""

from fashion_jax.tools import inspect_data

if __name__ == "__main__":
  __doc__ = inspect_data.__doc__  # absl's --help shows the running module's docstring.
  inspect_data.run()
