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
_distributed_initialized = False
# Launchers that start one process per host set one of these.
# A hand launch sets JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and
# JAX_PROCESS_ID in every process.
_MULTIPROCESS_ENV = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
                     "TPU_WORKER_HOSTNAMES")


def maybe_initialize_distributed(requested: bool) -> None:
  """Starts `jax.distributed` when asked or when the launcher says there are several processes.

  It is never called unconditionally: on a single non-TPU host it would fail.
  """
  global _distributed_initialized
  env = {k: os.environ[k] for k in _MULTIPROCESS_ENV if k in os.environ}
  if _distributed_initialized or not (requested or env):
    return
  _distributed_initialized = True
  logging.info("Initialising jax.distributed (requested=%s, environment=%s)", requested, env)
  kwargs = {}
  if "JAX_COORDINATOR_ADDRESS" in os.environ and "JAX_NUM_PROCESSES" in os.environ:
    # A hand launch (e.g. several processes on one machine, or hosts without a cluster
    # manager): the coordinator comes from the environment, so must the rest.
    kwargs = dict(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                  num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                  process_id=int(os.environ["JAX_PROCESS_ID"]))
  # CPU processes exchange gradients through gloo (XLA:CPU's cross-process collectives);
  # GPU and TPU use their own. Set before initialize(): backends must not exist yet.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)


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
  """Process-local numpy batch -> global jax arrays sharded along the batch axis.

  Text columns (the decoder's per-sample `problem` notes) stay on the host.
  """
  sharding = data_sharded(mesh)
  if isinstance(batch, dict):
    batch = {k: v for k, v in batch.items() if getattr(v, "dtype", None) is None
             or v.dtype.kind not in "US"}
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
