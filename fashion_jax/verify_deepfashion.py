"""`python -m fashion_jax.verify_deepfashion`: checks a DeepFashion folder against the release.

The command lives in
fashion_jax/tools/verify_deepfashion.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import verify_deepfashion

if __name__ == "__main__":
  __doc__ = verify_deepfashion.__doc__  # absl's --help shows the running module's docstring.
  verify_deepfashion.run()
