"""Task kinds by name; a kind's module is imported when the name is first looked up.

A new kind is one module in fashion_jax/tasks/ defining `KIND` (a `base.TaskKind`) and
one line here.
"""

from fashion_jax.registry import Registry

KINDS = Registry("task kind", {
    "softmax": "fashion_jax.tasks.softmax",
    "sigmoid": "fashion_jax.tasks.sigmoid",
    "embedding": "fashion_jax.tasks.embedding",
    "regression": "fashion_jax.tasks.regression",
}, "KIND")
