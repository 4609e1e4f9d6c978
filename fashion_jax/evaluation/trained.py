"""A training run loaded back from its workdir: config, vocabularies and model weights.

Shared by the evaluation and inference tools, so they all see the model exactly as
training left it and preprocess images the same way.
"""

import dataclasses
import functools
import os

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from fashion_jax.training import checkpoint as checkpoint_lib
from fashion_jax import hierarchy, parallel
from fashion_jax.training import train_state
from fashion_jax import workdir as workdir_lib
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled
from fashion_jax.data import transforms
from fashion_jax.data import vocab as vocab_lib
from fashion_jax.errors import CheckpointReadError, ConfigError

CHECKPOINT_CHOICES = "best, latest or a step number"


@dataclasses.dataclass
class TrainedRun:
  workdir: str
  config: ml_collections.ConfigDict
  tasks: list  # Datasets resolved, class names bound.
  vocabs: dict
  graphdef: nnx.GraphDef
  state: nnx.State
  mesh: jax.sharding.Mesh
  step: int
  ema: bool = False  # Predict with the EMA weights (config.ema_decay > 0 runs).
  flip: bool = False  # Average each image with its mirror image (config.test_time_flip).
  decode: tuple = ()  # hierarchy.decoding_links of config.hierarchy_decoding.

  @property
  def inference(self) -> dict:
    """How its outputs are computed: the keyword arguments of `activated_outputs` and
    `evaluators.compile_eval_steps`."""
    return dict(use_ema=self.ema, flip=self.flip, decode=self.decode)

  def task(self, name: str):
    for task in self.tasks:
      if task.name == name:
        return task
    raise ConfigError(f"{self.workdir} has no task {name!r}; it has "
                      f"{[t.name for t in self.tasks]}.")


def _pick_step(checkpoints, which: str, workdir: str) -> int:
  latest = checkpoints.latest_step()
  if latest is None:
    raise ConfigError(f"{workdir} has no checkpoint yet.")
  if which == "latest":
    return latest
  if which == "best":
    best = checkpoints.best_step()
    if best is None:
      logging.info("No best checkpoint recorded in %s; using the latest (%d).", workdir, latest)
    return latest if best is None else best
  try:
    step = int(which)
  except ValueError as e:
    raise ConfigError(f"--checkpoint={which!r}: expected {CHECKPOINT_CHOICES}.") from e
  available = checkpoints.all_steps()
  if step not in available:
    raise ConfigError(f"--checkpoint={step}: {workdir} has checkpoints at steps "
                      f"{available}.")
  return step


def load(workdir: str, checkpoint: str = "best", ema: bool = False,
         computed_as: dict | None = None) -> TrainedRun:
  """Restores the model of `workdir` at the chosen checkpoint (best, latest or a step);
  `ema` selects its exponential moving average of the weights instead. `computed_as`
  replaces config.model fields that change how, not what, the model computes (the
  same weights): `conv`, `dtype`."""
  workdir = os.path.abspath(workdir)
  config = workdir_lib.read_config(workdir)
  unknown = set(computed_as or {}) - {"conv", "dtype"}
  if unknown:
    raise ConfigError(f"computed_as: {sorted(unknown)} would change the model itself.")
  config.model.update(computed_as or {})
  if ema and not config.get("ema_decay", 0.0):
    raise ConfigError(f"{workdir} was trained without an EMA (config.ema_decay = 0).")
  tasks = labelled.resolve_datasets(tasks_lib.parse_tasks(config.tasks), config.datasets)
  vocab_path = workdir_lib.path(workdir, workdir_lib.VOCAB)
  if not os.path.exists(vocab_path):
    raise ConfigError(f"{workdir} has no {workdir_lib.VOCAB}: the run stopped before "
                      "reading its data.")
  vocabs = vocab_lib.load_vocabs(vocab_path)
  labelled.check_saved_vocabs(vocabs, tasks, vocab_path)
  tasks = tasks_lib.bind_data(tasks, vocabs)
  # The loss's class weights, for the reported eval loss.
  weights = workdir_lib.read_class_weights(workdir)
  tasks = [dataclasses.replace(t, class_weights=tuple(weights.get(t.name, ()))) for t in tasks]
  mesh = parallel.make_mesh()
  graphdef, state = train_state.create(config, tasks, vocabs, mesh)  # Model (and EMA) only.
  checkpoints = checkpoint_lib.Checkpoints(workdir, config, tasks)
  try:
    step = _pick_step(checkpoints, str(checkpoint), workdir)
    try:
      state = checkpoints.restore(step, state)
    except CheckpointReadError as e:  # A damaged file: say what else there is.
      raise CheckpointReadError(f"{e}; choose another with --checkpoint=<step> "
                                f"(steps: {checkpoints.all_steps()}).") from e
  finally:
    checkpoints.close()
  return TrainedRun(workdir=workdir, config=config, tasks=tasks, vocabs=vocabs,
                    graphdef=graphdef, state=state, mesh=mesh, step=step, ema=ema,
                    flip=bool(config.get("test_time_flip", False)),
                    decode=hierarchy.decoding_links(hierarchy.load(workdir),
                                                    config.get("hierarchy_decoding", "none")))


def activated_outputs(graphdef, state, images, *, tasks, use_ema, flip, decode=()):
  """The model's inference outputs per task (hierarchy-decoded by `decode`), each through
  its kind's activation."""
  model = nnx.merge(graphdef, state).scored_model(use_ema)
  outputs = hierarchy.decode(model.predict(images, flip), decode)
  return {t.name: t.spec.activate(t, outputs[t.name]) for t in tasks}


def predict_fn(run: TrainedRun):
  """Jitted uint8 images [B, H, W, 3] -> {task: class probabilities, sigmoid scores or
  unit-norm embedding}."""
  fn = jax.jit(functools.partial(activated_outputs, run.graphdef, tasks=tuple(run.tasks),
                                 **run.inference),
               out_shardings=parallel.replicated(run.mesh))
  return lambda images: fn(run.state, parallel.shard_batch(images, run.mesh))


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def list_images(inputs) -> list[str]:
  """Image files named by `inputs`: files as given, folders searched recursively (sorted)."""
  paths = []
  for item in inputs:
    if os.path.isdir(item):
      for root, _, names in sorted(os.walk(item)):
        paths += [os.path.join(root, n) for n in sorted(names)
                  if n.lower().endswith(IMAGE_EXTENSIONS)]
    elif os.path.exists(item):
      paths.append(item)
    else:
      raise ConfigError(f"{item}: no such file or folder.")
  if not paths:
    raise ConfigError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {list(inputs)}.")
  return paths


def predict_files(run: TrainedRun, paths, batch_size: int = 32):
  """Yields (path, {task: output row} or None, error or None) for every path, in order.

  Images go through the evaluation preprocessing (decode, keep aspect, pad white,
  resize); batches are padded to `batch_size` so one compiled step serves them all.
  """
  return predict_items(run, paths, transforms.read_file, batch_size)


def predict_items(run: TrainedRun, items, read, batch_size: int = 32):
  """`predict_files` for any items whose encoded image `read(item)` returns (e.g. the
  rows of a Table: `read=table.image`)."""
  size = run.config.data.image_size
  predict = predict_fn(run)
  batch_size = max(batch_size - batch_size % jax.device_count(), jax.device_count())
  blank = np.full((size, size, 3), 255, np.uint8)  # Holds an unreadable image's place.
  for chunk, images, errors in transforms.decoded_batches(items, read, size, batch_size):
    images = [blank if image is None else image for image in images]
    images += [blank] * (batch_size - len(images))
    outputs = jax.device_get(predict(np.stack(images)))
    for i, (path, error) in enumerate(zip(chunk, errors)):
      if error is not None:
        yield path, None, f"cannot read image: {error}"
      else:
        yield path, {name: value[i] for name, value in outputs.items()}, None
