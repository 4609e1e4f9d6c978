"""Devices, mesh and data sharding: one code path for 1 CPU, N devices and many hosts.

The model state is replicated and the batch is split over a 1-D 'data' mesh axis;
`jax.jit` inserts the gradient all-reduce, and BatchNorm statistics are computed over
the global batch.
"""

import os

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from fashion_jax.errors import ConfigError

DATA_AXIS = "data"
# Launchers that start one process per host set one of these.
_MULTIPROCESS_ENV = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
                     "TPU_WORKER_HOSTNAMES")


def maybe_initialize_distributed(requested: bool) -> None:
  """Starts `jax.distributed` when asked or when the launcher says there are several processes.

  It is never called unconditionally: on a single non-TPU host it would fail.
  """
  env = {k: os.environ[k] for k in _MULTIPROCESS_ENV if k in os.environ}
  if not (requested or env):
    return
  logging.info("Initialising jax.distributed (requested=%s, environment=%s)", requested, env)
  jax.distributed.initialize()


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D 'data' mesh over `devices` (default: every device of every process)."""
  # Auto axes: the compiler propagates shardings (GSPMD). With Explicit axes (the
  # default of recent jax.make_mesh) every batch x batch op, such as the triplet
  # loss's distance matrix, would need a hand-written sharding.
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def per_process_batch_size(global_batch_size: int) -> int:
  """The batch each process loads; fails early, naming the field, if it cannot split evenly."""
  devices = jax.device_count()
  if global_batch_size % devices:
    raise ConfigError(
        f"config.batch_size={global_batch_size} is not divisible by the {devices} devices "
        f"({jax.devices()[0].platform}); use a multiple of {devices}.")
  return global_batch_size // jax.process_count()


def shard_batch(batch, mesh):
  """Process-local numpy batch -> global jax arrays sharded along the batch axis."""
  sharding = data_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
