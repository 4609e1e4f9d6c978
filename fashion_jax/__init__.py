"""fashion_jax: multi-task fashion image understanding with JAX and Flax NNX."""

__version__ = "0.1.0"
