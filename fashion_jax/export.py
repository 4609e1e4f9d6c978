"""`python -m fashion_jax.export`: writes a trained run as ONNX and jax.export files.

The command lives in fashion_jax/tools/export.py; this module keeps the documented
form working.
"""

from fashion_jax.tools import export

if __name__ == "__main__":
  __doc__ = export.__doc__  # absl's --help shows the running module's docstring.
  export.run()
