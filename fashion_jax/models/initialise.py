"""A new module's state, computed inside one `jit`.

Compiled initialisation is much faster than op-by-op eager initialisation of a large
network and lands directly with its sharding. It runs once, so on the CPU it is compiled
without LLVM's optimisations: they make its many small random-number computations ~6x
slower to compile (20 s of a tiny model's 24 s) and change its values by float32
rounding only (the optimised code fuses some multiply-adds; tests/test_train_state.py).
"""

import jax
from flax import nnx


def compiler_options(platform: str) -> dict:
  return {"xla_backend_optimization_level": 0} if platform == "cpu" else {}


def initialised_state(build, sharding=None):
  """`nnx.state(build())`, computed in one compiled call; `sharding`: of every output
  (e.g. replicated over a mesh), or None for the default device."""
  init = jax.jit(lambda: nnx.state(build()),
                 **({} if sharding is None else {"out_shardings": sharding}))
  platform = (jax.devices()[0] if sharding is None else
              next(iter(sharding.device_set))).platform
  return init.lower().compile(compiler_options=compiler_options(platform))()
