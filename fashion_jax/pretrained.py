"""`python -m fashion_jax.pretrained`: converts torchvision/timm weights for config.model.pretrained.

The command lives in
fashion_jax/tools/pretrained.py; this module keeps
the documented form working.
"""

from fashion_jax.tools import pretrained

if __name__ == "__main__":
  __doc__ = pretrained.__doc__  # absl's --help shows the running module's docstring.
  pretrained.run()
