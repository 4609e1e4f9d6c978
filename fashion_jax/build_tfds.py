"""`python -m fashion_jax.build_tfds`: builds the TFDS dataset.

The command lives in
fashion_jax/tools/build_tfds.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import build_tfds

if __name__ == "__main__":
  __doc__ = build_tfds.__doc__  # absl's --help shows the running module's docstring.
  build_tfds.run()
