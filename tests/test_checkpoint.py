"""Checkpoints (training/checkpoint.py): exact round trips of state and data position, the
best kept beside the last ones, a restore into another model named."""

import os

import jax
import numpy as np
import pytest

from conftest import compiled_setup, tiny_config
from fashion_jax import parallel
from fashion_jax.data import pipeline
from fashion_jax.training import checkpoint as checkpoint_lib

_setup = compiled_setup


@pytest.mark.slow
def test_checkpoint_round_trip_restores_state_and_data_position(tmp_path):
  config = tiny_config()
  tasks, data, state, train_fn, _, mesh = _setup(config)
  it = pipeline.train_iterator(data.splits["train"], config.data, 16, 0)
  for _ in range(2):
    state, _ = train_fn(state, parallel.shard_batch(next(it), mesh))
  ckpts = checkpoint_lib.Checkpoints(str(tmp_path), config, tasks)
  ckpts.save(2, state, it, metrics={"val/articleType/accuracy": 0.5})
  ckpts.wait()
  saved = [np.asarray(x) for x in jax.tree.leaves(state)]
  expected_batch = next(it)
  state, _ = train_fn(state, parallel.shard_batch(expected_batch, mesh))
  expected_after = [np.asarray(x) for x in jax.tree.leaves(state)]

  # A fresh process's view: new state, new iterator, restored from disk.
  _, _, fresh, train_fn2, _, _ = _setup(config)
  fresh_it = pipeline.train_iterator(data.splits["train"], config.data, 16, 0)
  reopened = checkpoint_lib.Checkpoints(str(tmp_path), config, tasks)
  assert reopened.latest_step() == 2
  restored = reopened.restore(2, fresh, fresh_it)
  for a, b in zip(saved, jax.tree.leaves(restored)):
    np.testing.assert_array_equal(a, np.asarray(b))
  batch = next(fresh_it)
  np.testing.assert_array_equal(batch["image"], expected_batch["image"])
  restored, _ = train_fn2(restored, parallel.shard_batch(batch, mesh))
  for a, b in zip(expected_after, jax.tree.leaves(restored)):
    np.testing.assert_allclose(a, np.asarray(b), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_best_checkpoint_survives_the_keep_last_policy(tmp_path):
  config = tiny_config()
  config.checkpoint.keep = 1
  tasks, data, state, _, _, _ = _setup(config)
  it = pipeline.train_iterator(data.splits["train"], config.data, 16, 0)
  ckpts = checkpoint_lib.Checkpoints(str(tmp_path), config, tasks)
  for step, accuracy in [(1, 0.9), (2, 0.1), (3, 0.2)]:
    ckpts.save(step, state, it, metrics={"val/articleType/accuracy": accuracy})
  ckpts.save(4, state, it)  # An interval save without eval metrics.
  ckpts.wait()
  assert ckpts.best_step() == 1
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [1, 4]
  # After a restart the best step is still known and still kept.
  reopened = checkpoint_lib.Checkpoints(str(tmp_path), config, tasks)
  reopened.save(5, state, it, metrics={"val/articleType/accuracy": 0.5})
  reopened.wait()
  assert reopened.best_step() == 1
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [1, 5]


def test_restoring_into_another_model_lists_the_differences(tmp_path):
  from fashion_jax.errors import CheckpointMismatchError
  config = tiny_config()
  tasks, data, state, _, _, _ = _setup(config)
  it = pipeline.train_iterator(data.splits["train"], config.data, 16, 0)
  ckpts = checkpoint_lib.Checkpoints(str(tmp_path), config, tasks)
  ckpts.save(1, state, it)
  ckpts.wait()
  other = tiny_config()
  other.model.width = 16
  with pytest.raises(CheckpointMismatchError, match="'width': {'checkpoint': 8, 'config': 16}"):
    checkpoint_lib.Checkpoints(str(tmp_path), other, tasks).restore(1, state, it)
