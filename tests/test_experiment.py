"""experiment.setup: the shared start of a run (checked config, data, optimizer, state)."""

import jax
import pytest

from conftest import tiny_config
from fashion_jax.training import experiment
from fashion_jax.errors import ConfigError, DataError


@pytest.mark.slow
def test_setup_sizes_the_run_from_the_data():
  config = tiny_config()
  config.num_train_steps = -1
  config.num_epochs = 2
  run = experiment.setup(config)
  train_rows = sum(len(s) for s in run.data.split("train"))
  assert run.steps_per_epoch == train_rows // config.batch_size
  assert run.total_steps == 2 * run.steps_per_epoch
  assert {t.name for t in run.tasks} == set(config.tasks)
  assert set(run.state) == {"model", "optimizer"}  # No EMA part unless ema_decay > 0.
  assert run.schedule(run.total_steps - 1) < config.optimizer.learning_rate
  assert run.local_batch * jax.process_count() == config.batch_size


def test_setup_stops_on_a_bad_field_or_a_batch_larger_than_the_data():
  config = tiny_config()
  config.data.image_size = 16
  with pytest.raises(ConfigError, match="config.data.image_size=16"):
    experiment.setup(config)
  config = tiny_config()
  config.batch_size = 4096
  with pytest.raises(DataError, match="smaller than config.batch_size=4096"):
    experiment.setup(config)
