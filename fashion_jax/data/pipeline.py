"""The input pipeline: grain streams of a run's encoded splits (data/labelled.py).

    grain, per dataset: [process shard] -> shuffle(seed) or P x K identities -> repeat
      -> decode (+ box crop) -> augment;  datasets mixed by weight -> batch

A batch is a dict of numpy arrays: 'image' uint8 [B, H, W, 3], 'labels' {task: ids [B]
or multi-hot [B, C]}, 'masks' {task: float32 [B]} (0 = this sample does not train or
score this task, e.g. it comes from another dataset) and 'roles' int32 [B] (retrieval
role, see data.table.ROLES).
"""

import math
from typing import Iterator, Sequence

import grain
import ml_collections
import numpy as np

from fashion_jax import checks
from fashion_jax.data import bad_samples, transforms
from fashion_jax.data.labelled import SplitData
from fashion_jax.errors import ConfigError, DataError

# Training augmentation (config.augment); this default is a horizontal flip only.
DEFAULT_AUGMENT = ml_collections.ConfigDict(dict(
    flip=True,
    crop_scale=(1.0, 1.0),  # Random resized crop: area fraction range; (1, 1) = off.
    crop_ratio=(3 / 4, 4 / 3),  # ... and aspect ratio range.
    brightness=0.0, contrast=0.0, saturation=0.0,  # Colour jitter strengths; 0 = off.
    hue=0.0,  # Fraction of a hue turn; keep 0 when a task predicts colour.
    erase_probability=0.0,  # Random erasing probability ...
    erase_area=(0.02, 0.2),  # ... and area fraction range.
))


class Examples:
  """grain random-access source over one split: encoded image bytes and labels."""

  def __init__(self, split: SplitData):
    self.split = split

  def __len__(self) -> int:
    return len(self.split)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    split = self.split
    table = split.table
    try:
      encoded, error = table.image(index), None
    except (OSError, ValueError) as e:
      encoded, error = b"", str(e)
    box = table.boxes[index] if split.box_margin is not None else None
    return {"encoded": encoded, "error": error, "where": table.images.describe(table.rows[index]),
            "box": box, "labels": {k: v[index] for k, v in split.labels.items()},
            "masks": {k: v[index] for k, v in split.masks.items()},
            "roles": split.roles[index]}

  def __repr__(self) -> str:  # grain checks the source's repr when restoring an iterator.
    return f"Examples(n={len(self)}, images={self.split.table.images!r})"


class IdentityBatches:
  """P x K sampling: consecutive runs of K images of one identity, P identities per batch.

  Position i of the endless stream belongs to epoch i // epoch_length; an epoch visits
  every identity (with 2+ images) of this process's share once, in an order drawn from
  (seed, process, epoch), with K of its images drawn without replacement (with
  replacement when it has fewer than K). Random access keeps it checkpointable by grain.
  """

  def __init__(self, examples: Examples, identities: np.ndarray, valid: np.ndarray, k: int,
               seed: int, process_index: int = 0, process_count: int = 1):
    self.examples = examples
    self.k = k
    self.seed = (seed, process_index)
    groups = {}
    for row in np.flatnonzero(valid):
      groups.setdefault(int(identities[row]), []).append(row)
    usable = [np.asarray(rows) for _, rows in sorted(groups.items()) if len(rows) >= 2]
    self.groups = usable[process_index::process_count]
    if not self.groups:
      raise DataError(f"P x K sampling of {examples!r} found no identity with 2+ images "
                      "for this process.")
    self.epoch_length = len(self.groups) * k
    self._plans: dict[int, np.ndarray] = {}  # The last epochs' plans (plain dict: picklable
    # for grain's worker processes, unlike an lru_cache wrapper).

  def __len__(self) -> int:
    return 2**62  # Endless; positions map to (epoch, offset).

  def plan(self, epoch: int) -> np.ndarray:
    plan = self._plans.get(epoch)
    if plan is None:
      rng = np.random.default_rng([*self.seed, epoch])
      order = rng.permutation(len(self.groups))
      plan = np.concatenate([
          rng.choice(self.groups[g], self.k, replace=len(self.groups[g]) < self.k)
          for g in order])
      # A new dict, bound at once: grain's reader threads never see a half-updated one.
      self._plans = {**{e: p for e, p in self._plans.items() if e >= epoch - 1}, epoch: plan}
    return plan

  def __getitem__(self, index: int) -> dict:
    epoch, offset = divmod(int(index), self.epoch_length)
    return self.examples[int(self.plan(epoch)[offset])]

  def __repr__(self) -> str:
    return (f"IdentityBatches({self.examples!r}, k={self.k}, seed={self.seed}, "
            f"identities={len(self.groups)})")


class Decode(grain.transforms.Map):
  """Decodes, optionally crops to the box, and resizes; an unreadable image becomes a
  blank, fully masked sample whose `problem` names the file and the reason.

  Masking keeps batch shapes static (no recompilation); what happens next is the
  run's `config.data.bad_samples` policy (see data/bad_samples.py).
  """

  def __init__(self, image_size: int, box_margin: float | None = None):
    self.image_size = image_size
    self.box_margin = box_margin

  def map(self, element: dict) -> dict:
    masks = element["masks"]
    problem = ""
    try:
      if element["error"]:
        raise transforms.ImageDecodeError(element["error"])
      image = transforms.decode_image(element["encoded"], self.image_size, element["box"],
                                      self.box_margin or 0.0)
    except transforms.ImageDecodeError as e:
      problem = f"{element['where']}: {e}"
      image = np.full((self.image_size, self.image_size, 3), 255, np.uint8)
      masks = {k: np.float32(0.0) for k in masks}
    return {"image": image, "labels": element["labels"], "masks": masks,
            "roles": element["roles"], bad_samples.PROBLEM: problem}


class Augment(grain.transforms.RandomMap):
  """Training augmentation from `config.augment`; randomness from grain's per-element
  generator, so it is fixed by the seed and the position in the stream."""

  def __init__(self, augment_config):
    self.config = augment_config

  def random_map(self, element: dict, rng: np.random.Generator) -> dict:
    c, image = self.config, element["image"]
    if tuple(c.crop_scale) != (1.0, 1.0):
      image = transforms.random_resized_crop(image, rng, c.crop_scale, c.crop_ratio)
    if c.flip:
      image = transforms.random_flip(image, rng)
    if c.brightness or c.contrast or c.saturation or c.hue:
      image = transforms.colour_jitter(image, rng, c.brightness, c.contrast, c.saturation, c.hue)
    if c.erase_probability:
      image = transforms.random_erasing(image, rng, c.erase_probability, c.erase_area)
    return {**element, "image": image}


def check_augment_config(c) -> None:
  checks.fraction_range(c.crop_scale, "augment.crop_scale")
  if not 0 < c.crop_ratio[0] <= c.crop_ratio[1]:
    raise ConfigError(f"config.augment.crop_ratio={tuple(c.crop_ratio)}: need 0 < min <= max.")
  for field in ("brightness", "contrast", "saturation"):
    checks.number(c[field], f"augment.{field}", 0, 1, high_open=True)
  checks.number(c.hue, "augment.hue", 0, 0.5)
  checks.number(c.erase_probability, "augment.erase_probability", 0, 1)
  checks.fraction_range(c.erase_area, "augment.erase_area")


def check_data_config(c) -> None:
  """`config.data`, less image_size (checked against the backbone, see models)."""
  checks.number(c.num_workers, "data.num_workers", 0, integer=True)
  checks.number(c.num_threads, "data.num_threads", 1, integer=True)
  checks.number(c.prefetch_buffer_size, "data.prefetch_buffer_size", 0, integer=True)
  bad_samples.check_policy(c.bad_samples)


def _read_options(data_config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=data_config.num_threads,
                           prefetch_buffer_size=data_config.prefetch_buffer_size)


def _train_stream(split: SplitData, data_config, seed: int, process_index: int,
                  process_count: int) -> grain.MapDataset:
  """One dataset's endless, decoded, augmented training samples for this process."""
  if split.identity_task:
    ds = grain.MapDataset.source(IdentityBatches(
        Examples(split), split.labels[split.identity_task],
        split.masks[split.identity_task] > 0, split.images_per_identity, seed,
        process_index, process_count))
  else:
    if len(split) // process_count < 1:
      raise ConfigError(f"config.datasets.{split.dataset}: its training split has "
                        f"{len(split)} samples, fewer than one per process.")
    ds = grain.MapDataset.source(Examples(split))[process_index::process_count]
    ds = ds.shuffle(seed=seed).repeat(None)
  return ds.map(Decode(data_config.image_size, split.box_margin))


def train_iterator(splits: SplitData | Sequence[SplitData], data_config, batch_size: int,
                   seed: int, process_index: int = 0, process_count: int = 1,
                   augment_config=None):
  """Endless, checkpointable iterator of training batches for this process.

  Each process reads a disjoint shard. Several datasets are mixed by their weights
  (grain's MapDataset.mix: a fixed interleaving, so each batch has about those
  shares). Order and augmentation depend only on `seed` and the position in the
  stream, so a restored iterator continues exactly.
  """
  splits = [splits] if isinstance(splits, SplitData) else [s for s in splits if s.weight > 0]
  if not splits:
    raise ConfigError("Every configured dataset has weight 0: nothing to train on.")
  total = sum(len(s) for s in splits)
  if total // process_count < batch_size:
    raise ConfigError(f"The training split has {total} samples, fewer than one batch "
                      f"per process ({batch_size}); lower config.batch_size.")
  if len(splits) == 1 and splits[0].identity_task and batch_size % splits[0].images_per_identity:
    raise ConfigError(f"The per-process batch size {batch_size} is not a multiple of "
                      f"config.datasets.{splits[0].dataset}.images_per_identity="
                      f"{splits[0].images_per_identity} (P x K sampling).")
  streams = [_train_stream(s, data_config, seed + i, process_index, process_count)
             for i, s in enumerate(splits)]
  ds = streams[0] if len(streams) == 1 else grain.MapDataset.mix(
      streams, weights=[s.weight for s in splits])
  augment_config = augment_config or DEFAULT_AUGMENT
  check_augment_config(augment_config)
  ds = ds.random_map(Augment(augment_config), seed=seed + 1)
  iter_ds = ds.to_iter_dataset(_read_options(data_config))
  iter_ds = iter_ds.batch(batch_size, drop_remainder=True)
  if data_config.num_workers > 0:
    iter_ds = iter_ds.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=data_config.num_workers))
  return iter(iter_ds)


def _pad(batch: dict, batch_size: int) -> dict:
  def pad(x):
    missing = batch_size - x.shape[0]
    return x if missing == 0 else np.concatenate([x, np.zeros((missing, *x.shape[1:]), x.dtype)])
  # Padded rows get mask 0 (zeros), so they count in no metric; 'valid' marks real rows.
  return {"image": pad(batch["image"]),
          "labels": {k: pad(v) for k, v in batch["labels"].items()},
          "masks": {k: pad(v) for k, v in batch["masks"].items()},
          "roles": pad(batch["roles"]),
          "valid": pad(np.ones(batch["roles"].shape[0], bool)),
          bad_samples.PROBLEM: pad(batch[bad_samples.PROBLEM])}


def eval_batches(split: SplitData, data_config, batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict]:
  """Every sample of this process's shard once, in order, in full (padded) batches.

  All processes yield the same number of batches, as the sharded eval step needs;
  `batch["valid"]` is False on padding rows.
  """
  ds = grain.MapDataset.source(Examples(split))[process_index::process_count]
  ds = ds.map(Decode(data_config.image_size, split.box_margin))
  num_batches = math.ceil(math.ceil(len(split) / process_count) / batch_size)
  iterator = iter(ds.to_iter_dataset(_read_options(data_config)).batch(batch_size))
  empty = None
  for _ in range(num_batches):
    batch = next(iterator, None)
    if batch is None:  # This shard ran out before the others.
      batch = empty
    empty = _empty_like(batch)
    yield _pad(batch, batch_size)


def _empty_like(batch: dict) -> dict:
  """A batch of zero rows with the same structure (what a finished shard contributes)."""
  return {"image": np.zeros_like(batch["image"][:0]),
          "labels": {k: np.zeros_like(v[:0]) for k, v in batch["labels"].items()},
          "masks": {k: np.zeros_like(v[:0]) for k, v in batch["masks"].items()},
          "roles": np.zeros_like(batch["roles"][:0]),
          bad_samples.PROBLEM: np.zeros_like(batch[bad_samples.PROBLEM][:0])}
