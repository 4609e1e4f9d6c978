"""A run's setup, shared by training, the benchmark and the tests: the config checked,
the data read and split, the schedule's length, the optimizer and a new train state.

Nothing here writes to a workdir: `train.train_and_evaluate` writes once everything
has been checked and built, so a run that fails to start leaves its workdir as it was.
"""

import dataclasses
import os

import jax
import ml_collections
import optax
from flax import nnx

from fashion_jax import allocator, parallel, validation
from fashion_jax import workdir as workdir_lib
from fashion_jax.training import optim, train_state
from fashion_jax.data import labelled
from fashion_jax.errors import DataError


@dataclasses.dataclass
class Run:
  config: ml_collections.ConfigDict
  tasks: list  # Datasets resolved, classes and class weights bound.
  data: labelled.Data
  mesh: object  # jax.sharding.Mesh
  local_batch: int  # This process's share of config.batch_size.
  steps_per_epoch: int
  total_steps: int
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  graphdef: nnx.GraphDef
  state: nnx.State  # A new TrainState (a checkpoint may replace it).


def setup(config: ml_collections.ConfigDict, workdir: str | None = None,
          mesh=None, tasks=None) -> Run:
  """Checks `config`, reads its data (reusing `workdir`'s vocabularies when it has them)
  and builds the optimizer and a train state for the whole run, replicated over `mesh`
  (default: every device). `tasks`: those `validation.validate_config(config)` returned,
  when the caller has already checked the config."""
  tasks = tasks if tasks is not None else validation.validate_config(config)
  mesh = mesh or parallel.make_mesh()
  local_batch = parallel.per_process_batch_size(config.batch_size)
  data = labelled.prepare_data(config, tasks, workdir, write_files=False)
  # With several datasets an "epoch" is one pass over their summed training splits.
  num_train = sum(len(s) for s in data.split("train"))
  steps_per_epoch = num_train // config.batch_size
  if steps_per_epoch == 0:
    raise DataError(f"The training split ({num_train} samples) is smaller than "
                    f"config.batch_size={config.batch_size}.")
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else config.num_epochs * steps_per_epoch)
  tx, schedule = optim.make_optimizer(config.optimizer, total_steps)
  graphdef, state = train_state.create(config, data.tasks, data.vocabs, mesh, tx)
  return Run(config=config, tasks=data.tasks, data=data, mesh=mesh, local_batch=local_batch,
             steps_per_epoch=steps_per_epoch, total_steps=total_steps, tx=tx,
             schedule=schedule, graphdef=graphdef, state=state)


def describe(run: Run, workdir: str) -> list[str]:
  """What a run trains on what, for the first lines of its console: per dataset its rows
  per split, the tasks with their class counts, the model and its parameters, the
  devices and allocator, and one line per kind of data problem, naming the report."""
  config, data = run.config, run.data
  lines = []
  for name, splits in data.datasets.items():
    dataset = config.datasets[name]
    where = dataset.root or "the embedded sample"
    sizes = ", ".join(f"{len(split):,} {split_name}" for split_name, split in splits.items())
    lines.append(f"Data: {name} ({dataset.source}, {where}): {sizes}")
  lines.append("Tasks: " + ", ".join(
      f"{t.name} ({t.kind}" + (f", {len(t.classes)} classes)" if t.classes else ")")
      for t in run.tasks))
  model_state = run.state["model"]
  parameters = sum(leaf.size for leaf in jax.tree.leaves(nnx.filter_state(model_state,
                                                                            nnx.Param)))
  weights = config.model.get("pretrained", "") or "random initialisation"
  lines.append(f"Model: {config.model.name}, {parameters / 1e6:.2f} M parameters; "
               f"backbone weights: {weights}")
  lines.append(f"Devices: {jax.device_count()} x {jax.devices()[0].platform} in "
               f"{jax.process_count()} process(es); JAX {jax.__version__}; allocator: "
               f"{allocator.current()}")
  report = os.path.join(workdir, workdir_lib.DATA_REPORT)
  for name, problems in data.reports.items():
    for kind, count in sorted(problems.counts.items()):
      lines.append(f"Data warning: {name}: {count} {kind}; every row in {report}")
  return lines
