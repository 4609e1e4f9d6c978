"""`python -m fashion_jax.predict`: tags images with a trained run.

The command lives in
fashion_jax/tools/predict.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import predict

if __name__ == "__main__":
  __doc__ = predict.__doc__  # absl's --help shows the running module's docstring.
  predict.run()
