"""Shared fixtures: tiny configs and small real datasets made from the embedded sample."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# grain reads absl flags; under pytest nobody parses them.
flags.FLAGS.mark_as_parsed()

# The suite is dominated by compiling the same tiny steps again in each test and
# subprocess: share compiled executables through JAX's persistent cache (one per run,
# so no stale entries are ever read).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="fashion_jax_xla_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The rest is compiling: without LLVM's optimisations XLA compiles a step 2-3x faster,
# which outweighs the slower code on the suite's tiny steps (docs/performance.md); values
# change by float rounding only (as fashion_jax.models.initialise explains). Runs whose
# figures a test compares with the docs (`user_env()`) or across device counts compile
# as users do.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def xla_flags(*flags: str) -> str:
  """XLA_FLAGS for a subprocess of the suite: `flags` and the suite's fast compile (once,
  also for a pytest that a test starts)."""
  return " ".join((*(f for f in flags if f != FAST_COMPILE), FAST_COMPILE))


def user_env() -> dict:
  """This environment as a user's run has it: XLA's optimisations on."""
  env = dict(os.environ)
  flags = env.pop("XLA_FLAGS", "").replace(FAST_COMPILE, "").strip()
  return {**env, "XLA_FLAGS": flags} if flags else env


def pytest_configure(config):
  # Here rather than at import: scripts that tests start import this module for its
  # helpers, and those run as `user_env()` made them.
  del config
  os.environ["XLA_FLAGS"] = xla_flags(*os.environ.get("XLA_FLAGS", "").split())


from fashion_jax.config_lib import load_sibling_config  # noqa: E402
from fashion_jax.data.product_images import SAMPLE_DIR  # noqa: E402
from fashion_jax.tasks import task_config  # noqa: E402

SAMPLE_COLUMNS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour",
                  "season", "year", "usage")


def load_config(name: str):
  return load_sibling_config(os.path.join(REPO, "configs", "x.py"), name)


def tiny_config(tasks=None, root: str = ""):
  """configs/default.py shrunk to a model and images that train in seconds on CPU."""
  config = load_config("default")
  config.datasets.products.root = root
  config.data.image_size = 32
  config.data.num_threads = 2
  config.model.name = "resnet_tiny"
  config.model.width = 8
  config.batch_size = 16
  config.num_train_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint.every_steps = 2
  config.checkpoint.asynchronous = False
  config.optimizer.warmup_steps = 1
  if tasks and "articleType" not in tasks:  # The default best metric would not exist.
    config.checkpoint.best_metric = ""
  config.tasks = tasks or {
      "articleType": task_config("softmax", "articleType"),
      "gender": task_config("softmax", "gender", weight=0.5, label_smoothing=0.1),
      "embedding": task_config("embedding", "articleType", dim=16),
  }
  return config


def train_tool_run(path: str, hierarchy_decoding: str = "none") -> str:
  """A tiny trained workdir with every output form the tools and the service read: class
  tasks (one a hierarchy child), an attribute task and an embedding."""
  from fashion_jax.training import train
  config = tiny_config(tasks={
      "articleType": task_config("softmax", "articleType"),
      "gender": task_config("softmax", "gender"),
      "subCategory": task_config("softmax", "subCategory"),
      "season": task_config("sigmoid", "season"),
      "embedding": task_config("embedding", "articleType", dim=16),
  })
  config.hierarchy = "subCategory>articleType"
  config.hierarchy_decoding = hierarchy_decoding
  train.train_and_evaluate(config, path)
  return path


def compiled_setup(config, mesh=None):
  """(tasks, data, state, train step, eval step, mesh) of a run of `config`, compiled."""
  from fashion_jax.training import experiment, train
  run = experiment.setup(config, mesh=mesh)
  train_fn, eval_steps = train.compile_steps(run.graphdef, run.tasks, run.mesh)
  (eval_fn, _), = eval_steps.values()
  return run.tasks, run.data, run.state, train_fn, eval_fn, run.mesh


def run_main(workdir, *overrides, env=None):
  """`python -m fashion_jax.main` on configs/default.py shrunk as tiny_config, in a subprocess."""
  args = [sys.executable, "-m", "fashion_jax.main", f"--config={REPO}/configs/default.py",
          f"--workdir={workdir}", "--config.model.name=resnet_tiny", "--config.model.width=8",
          "--config.data.image_size=32", "--config.batch_size=16",
          "--config.log_every_steps=2", "--config.eval_every_steps=4",
          "--config.checkpoint.every_steps=2", "--config.optimizer.warmup_steps=1", *overrides]
  environment = None if env is None else {**os.environ, **env}
  return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO,
                        env=environment)


def snapshot(folder) -> dict[str, bytes]:
  """Every file under `folder` and its bytes (to check that a failed run wrote nothing)."""
  return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
          for d, _, files in os.walk(folder) for f in files}


def read_sample_rows():
  with open(os.path.join(SAMPLE_DIR, "styles.csv")) as f:
    return list(csv.DictReader(f))


def sample_image_paths(count):
  return [os.path.join(SAMPLE_DIR, "images", f"{r['id']}.jpg") for r in read_sample_rows()[:count]]


# One trained run, its export and its catalog index, shared by the serving tests
# (test_export, test_catalog_index, test_app): trained once a session.
@pytest.fixture(scope="session")
def served_workdir(tmp_path_factory):
  # Decoded like configs/mtl.py: exports must carry hierarchy.decode too.
  return train_tool_run(str(tmp_path_factory.mktemp("run")), hierarchy_decoding="bottom_up")


@pytest.fixture(scope="session")
def exported(served_workdir, tmp_path_factory):
  from fashion_jax.serving import export
  out = str(tmp_path_factory.mktemp("export") / "model")
  export.export_run(served_workdir, out, checkpoint="latest")
  return out


@pytest.fixture(scope="session")
def index_dir(exported, served_workdir, tmp_path_factory):
  from fashion_jax.serving import index_build, runtimes
  out = str(tmp_path_factory.mktemp("index") / "test_split")
  model = runtimes.OnnxModel(exported)
  table = index_build.read_catalog("split:test", served_workdir)
  index_build.build(model, table, out, catalog="split:test", model_path=exported,
                    shard_size=16)
  return out


@pytest.fixture
def product_tree(tmp_path):
  """A Kaggle-layout folder of 80 real images with the mess found in the real styles.csv.

  Columns add a multi-label 'tags' column and a free-text productDisplayName last, as
  in the full Kaggle file. Planted problems, by CSV line number:
    line 3: productDisplayName with unquoted commas (kept, rejoined)
    line 4: empty baseColour (kept, masked for that task)
    line 5: id without an image file (skipped)
    line 6: too few fields (skipped)
  """
  rows = read_sample_rows()[:80]
  os.makedirs(tmp_path / "images")
  for row in rows:
    shutil.copy(os.path.join(SAMPLE_DIR, "images", f"{row['id']}.jpg"), tmp_path / "images")
  header = ["id", *SAMPLE_COLUMNS, "tags", "productDisplayName"]
  lines = [",".join(header)]
  for row in rows:
    tags = f"{row['season']}|{row['usage']}"
    lines.append(",".join([row["id"], *(row[c] for c in SAMPLE_COLUMNS), tags,
                           f"{row['gender']} {row['articleType']}"]))
  lines[2] = lines[2] + ", Pack of 2, Blue"
  fields = lines[3].split(",")
  fields[header.index("baseColour")] = ""
  lines[3] = ",".join(fields)
  os.remove(tmp_path / "images" / f"{rows[3]['id']}.jpg")
  lines[5] = ",".join(lines[5].split(",")[:4])
  (tmp_path / "styles.csv").write_text("\n".join(lines) + "\n")
  return tmp_path


def randomize_batch_norms(torch_model, seed: int = 0):
  """Random BatchNorm statistics and affine terms (eval mode), so that every imported
  tensor matters in a parity test."""
  import torch
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in torch_model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5, generator=generator)
        module.bias.normal_(0, 0.1, generator=generator)
        module.running_mean.normal_(0, 0.1, generator=generator)
        module.running_var.uniform_(0.5, 1.5, generator=generator)
  return torch_model.eval()


def imported_features(name: str, torch_model, images_nchw, image_size: int, conv: str = "xla",
                      **model_fields):
  """Features of our `name` backbone for `image_size` with `torch_model`'s weights
  imported (through the family's layouts), on the same images; `conv`: the
  convolution implementation (models/conv.py)."""
  import jax
  import ml_collections
  import numpy as np
  from flax import nnx

  from fashion_jax.models import backbones, weights
  family = backbones.family(name)
  state_dict = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
  converted = family.convert_foreign(name, state_dict, "torch_model")
  model_config = ml_collections.ConfigDict(model_fields)
  # Built abstractly and run jitted: every array comes from the import, and one compiled
  # program is much faster than op-by-op on CPU.
  graphdef, state = nnx.split(nnx.eval_shape(lambda: family.build(
      name, model_config, image_size=image_size, dtype=jax.numpy.float32,
      conv_implementation=conv, rngs=nnx.Rngs(0))))
  state = weights.apply_to_model({"backbone": state}, converted, "torch_model", name)["backbone"]
  forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x, train=False))
  return np.asarray(forward(state, images_nchw.transpose(0, 2, 3, 1)))
