"""`python -m fashion_jax <command> [flags]` (and the `fashion-jax` console script)."""

from fashion_jax.tools import commands

if __name__ == "__main__":
  commands.main()
