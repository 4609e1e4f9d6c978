"""The train state: a checkpoint written before the state had named fields
(tests/data/checkpoint_v1, made by tests/data/checkpoint_v1_make.py at commit 54f1a29:
model, optimizer and EMA stored as parts 0, 1 and 2) still serves and still resumes; a
new state's unoptimised initialisation (models/initialise.py) equals the optimised one."""

import os
import shutil

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_config
from fashion_jax import parallel, tasks as tasks_lib
from fashion_jax.data import labelled
from fashion_jax.evaluation import trained
from fashion_jax.models import initialise
from fashion_jax.training import optim, train, train_state
from fashion_jax import workdir as workdir_lib
from fashion_jax.data.product_images import SAMPLE_DIR

V1 = os.path.join(REPO, "tests", "data", "checkpoint_v1")


@pytest.fixture
def v1_workdir(tmp_path):
  workdir = tmp_path / "v1"
  shutil.copytree(V1, workdir)
  return str(workdir)


@pytest.mark.parametrize("ema", [False, True])
def test_a_v1_checkpoint_predicts_what_it_predicted_when_written(v1_workdir, ema):
  expected = np.load(os.path.join(V1, "expected_outputs.npz"))
  run = trained.load(v1_workdir, "latest", ema=ema)
  paths = [os.path.join(SAMPLE_DIR, "images", name) for name in expected["images"]]
  rows = [row for _, row, _ in trained.predict_files(run, paths, batch_size=4)]
  for task in ("articleType", "gender", "embedding"):
    got = np.stack([row[task] for row in rows])
    # The stored outputs were computed on another machine: XLA:CPU picks its kernels (and
    # so the order of float32 sums) by CPU, so the same model differs there by ~1e-8
    # (7.5e-9 seen between an AMD EPYC and an Intel Xeon). A changed model, weight layout
    # or preprocessing moves these outputs by far more than the tolerance.
    np.testing.assert_allclose(got, expected[("ema/" if ema else "") + task],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_v1_checkpoint_resumes_training(v1_workdir):
  config = workdir_lib.read_config(v1_workdir)
  config.num_train_steps = 4
  results = train.train_and_evaluate(config, v1_workdir)
  assert np.isfinite(results["val/articleType/loss"])
  assert sorted(os.listdir(os.path.join(v1_workdir, "checkpoints")))[-1] == "4"


@pytest.mark.parametrize("name", ["resnet_tiny", *(pytest.param(n, marks=pytest.mark.slow) for n in
                                  ("efficientnet_lite_test", "vit_test", "convnext_test"))])
def test_the_unoptimised_init_compile_gives_the_optimised_state(monkeypatch, name):
  config = tiny_config()
  config.model.name = name
  config.ema_decay = 0.9
  data = labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)
  tasks, vocabs = data.tasks, data.vocabs
  mesh = parallel.make_mesh()
  tx, _ = optim.make_optimizer(config.optimizer, 100)
  assert initialise.compiler_options(jax.devices()[0].platform)  # This CPU: unoptimised.
  _, fast = train_state.create(config, tasks, vocabs, mesh, tx)
  # XLA's own default level, whatever XLA_FLAGS says (the suite compiles unoptimised).
  monkeypatch.setattr(initialise, "compiler_options",
                      lambda platform: {"xla_backend_optimization_level": 3})
  _, optimised = train_state.create(config, tasks, vocabs, mesh, tx)
  leaves, reference = jax.tree.leaves(fast), jax.tree.leaves(optimised)
  assert len(leaves) == len(reference) > 10
  for a, b in zip(leaves, reference):
    # Equal to float32 rounding: the optimised code fuses some multiply-adds (FMA).
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
