"""`python -m fashion_jax.serve`: the HTTP service and its web page.

The command lives in fashion_jax/tools/serve.py; this module keeps the documented
form working.
"""

from fashion_jax.tools import serve

if __name__ == "__main__":
  __doc__ = serve.__doc__  # absl's --help shows the running module's docstring.
  serve.run()
