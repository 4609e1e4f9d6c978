"""Faults and bad input: each gets a clear message naming the file, row or field, the run
goes on where that makes sense, and nothing already written is lost.

docs/reliability.md lists every case tested here with what the program does.
"""

import errno
import io
import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from conftest import run_main, tiny_config, xla_flags
from fashion_jax.training import checkpoint as checkpoint_lib
from fashion_jax import parallel
from fashion_jax.training import experiment, metric_window, train
from fashion_jax import workdir as workdir_lib
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled, pipeline, product_images, sources, transforms
from fashion_jax.errors import CheckpointMismatchError, DataError, WorkdirError

SAMPLE_JPEG = os.path.join(product_images.SAMPLE_DIR, "images", "10007.jpg")


def _encode(image: Image.Image, fmt: str) -> bytes:
  out = io.BytesIO()
  image.save(out, fmt)
  return out.getvalue()


# ----------------------------------------------------------------------------- images

# (encoded image, the pixel expected at the centre after decoding to 32 x 32 RGB)
READABLE = {
    "grayscale JPEG": (lambda: _encode(Image.new("L", (50, 40), 100), "JPEG"), (100,) * 3),
    "grayscale PNG": (lambda: _encode(Image.new("L", (50, 40), 100), "PNG"), (100,) * 3),
    "RGBA PNG, transparent": (lambda: _encode(Image.new("RGBA", (50, 40), (255, 0, 0, 0)),
                                              "PNG"), (255, 255, 255)),
    "RGBA PNG, opaque": (lambda: _encode(Image.new("RGBA", (50, 40), (255, 0, 0, 255)), "PNG"),
                         (255, 0, 0)),
    "palette PNG": (lambda: _encode(Image.new("RGB", (50, 40), (0, 0, 255)).convert("P"),
                                    "PNG"), (0, 0, 255)),
    "CMYK JPEG": (lambda: _encode(Image.new("CMYK", (50, 40), (0, 255, 255, 0)), "JPEG"),
                  (255, 0, 0)),
    "16-bit PNG": (lambda: _encode(Image.fromarray(np.full((40, 50), 30000, np.uint16)), "PNG"),
                   (30000 // 257,) * 3),
    "6000 x 4000 JPEG": (lambda: _encode(Image.new("RGB", (6000, 4000), (10, 200, 30)), "JPEG"),
                         (10, 200, 30)),
}


@pytest.mark.parametrize("name", sorted(READABLE))
def test_unusual_images_decode_to_8_bit_rgb(name):
  make, expected = READABLE[name]
  pixels = transforms.decode_image(make(), 32)
  assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
  np.testing.assert_allclose(pixels[16, 16], expected, atol=3, err_msg=name)


UNREADABLE = {
    "zero-byte file": (lambda: b"", "empty file"),
    "corrupt JPEG": (lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "corrupt"),
    "truncated JPEG": (lambda: open(SAMPLE_JPEG, "rb").read()[:3000], "truncated"),
    "text file": (lambda: b"id,gender\n1,Men\n", "not an image format"),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_images_raise_a_reason(name):
  make, reason = UNREADABLE[name]
  with pytest.raises(transforms.ImageDecodeError, match=reason):
    transforms.decode_image(make(), 32)


def test_decompression_bomb_is_refused(monkeypatch):
  # PIL refuses images over 2 x MAX_IMAGE_PIXELS (about 179 megapixels by default).
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
  with pytest.raises(transforms.ImageDecodeError, match="decompression bomb"):
    transforms.decode_image(_encode(Image.new("L", (100, 100)), "PNG"), 32)


@pytest.fixture
def broken_tree(product_tree):
  """product_tree with three image files broken in three ways."""
  names = sorted(os.listdir(product_tree / "images"))
  broken = {names[10]: b"", names[20]: b"\xff\xd8\xff\xe0garbage" * 50,
            names[30]: (product_tree / "images" / names[30]).read_bytes()[:2000]}
  for name, data in broken.items():
    (product_tree / "images" / name).write_bytes(data)
  return product_tree, broken


@pytest.mark.slow
def test_broken_images_are_skipped_and_listed_in_the_workdir(broken_tree, tmp_path):
  root, broken = broken_tree
  run = run_main(tmp_path / "run", f"--config.datasets.products.root={root}",
                 "--config.num_train_steps=4")
  assert run.returncode == 0, run.stderr[-3000:]
  report = json.loads((tmp_path / "run" / workdir_lib.BAD_SAMPLES).read_text())
  assert report["policy"] == "skip" and report["count"] == 3
  assert {os.path.basename(p) for p in report["samples"]} == set(broken)
  reasons = {os.path.basename(p): s["reason"] for p, s in report["samples"].items()}
  assert "empty file" in reasons[sorted(broken)[0]]
  assert all(s["seen"] >= 1 and s["splits"] for s in report["samples"].values())


@pytest.mark.slow
def test_broken_images_stop_the_run_under_the_fail_policy(broken_tree, tmp_path):
  root, broken = broken_tree
  run = run_main(tmp_path / "run", f"--config.datasets.products.root={root}",
                 "--config.num_train_steps=4", "--config.data.bad_samples=fail")
  assert run.returncode == 2
  assert "Unreadable image" in run.stderr and "config.data.bad_samples=skip" in run.stderr
  assert any(name in run.stderr for name in broken) and "Traceback" not in run.stderr
  policy = run_main(tmp_path / "typo", "--config.data.bad_samples=ignore")
  assert policy.returncode == 2 and "config.data.bad_samples='ignore'" in policy.stderr


# ----------------------------------------------------------------------------- data files


def test_wrong_encoding_names_the_file_and_line(tmp_path):
  (tmp_path / "images").mkdir()
  (tmp_path / "styles.csv").write_bytes("id,gender\n7,Men\n8,Homme \xe9t\xe9\n".encode("latin-1"))
  config = tiny_config(root=str(tmp_path))
  with pytest.raises(DataError, match=r"styles.csv:3: not UTF-8"):
    sources.load_source(config.datasets.products, ["gender"])


def test_dataset_empty_after_filtering_says_so(product_tree):
  for name in os.listdir(product_tree / "images"):
    os.remove(product_tree / "images" / name)
  config = tiny_config(root=str(product_tree))
  with pytest.raises(DataError, match="no usable rows"):
    sources.load_source(config.datasets.products, ["articleType"])


def test_label_never_seen_in_training_is_masked_and_reported(product_tree, tmp_path):
  config = tiny_config(root=str(product_tree))
  tasks = tasks_lib.parse_tasks(config.tasks)
  workdir = str(tmp_path / "run")
  first = labelled.prepare_data(config, tasks, workdir)
  # Relabel one test row with a class the saved (training) vocabulary does not have.
  test_id = first.splits["test"].table.ids[0]
  lines = (product_tree / "styles.csv").read_text().splitlines()
  index = next(i for i, line in enumerate(lines) if line.startswith(f"{test_id},"))
  fields = lines[index].split(",")
  fields[1] = "Robots"  # gender (the split is stratified by articleType: it stays put)
  lines[index] = ",".join(fields)
  (product_tree / "styles.csv").write_text("\n".join(lines) + "\n")
  again = labelled.prepare_data(config, tasks, workdir)
  test = again.splits["test"]
  row = list(test.table.ids).index(test_id)
  assert test.masks["gender"][row] == 0 and test.masks["articleType"][row] == 1
  report = json.loads((tmp_path / "run" / workdir_lib.DATA_REPORT).read_text())
  problems = report["products"]["problems"]
  kind = "test 'gender' labels not in task 'gender's training classes (masked)"
  assert f"'Robots' (id {test_id})" in problems[kind]["first"]


# ----------------------------------------------------------------------------- config


@pytest.mark.slow
def test_batch_not_divisible_by_the_devices_names_the_field(tmp_path):
  run = run_main(tmp_path / "run", "--config.batch_size=18",
                 env={"XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=4")})
  assert run.returncode == 2
  assert "config.batch_size=18 is not divisible by the 4 devices" in run.stderr


# ----------------------------------------------------------------------------- numerics


def _tiny_state(config):
  run = experiment.setup(config)
  return run.data, run.graphdef, run.state, run.mesh


@pytest.mark.slow
def test_skip_policy_leaves_the_state_unchanged_on_a_nan_step():
  config = tiny_config()
  data, graphdef, state, mesh = _tiny_state(config)
  step = train.compile_train_step(graphdef, data.tasks, mesh, skip_nonfinite=True)
  batch = next(pipeline.train_iterator(data.splits["train"], config.data, 16, 0))
  before = [np.asarray(x) for x in jax.tree.leaves(state)]
  poisoned = dict(batch, image=np.full_like(batch["image"], 0).astype(np.float32) * np.nan)
  state, metrics = step(state, parallel.shard_batch(poisoned, mesh))
  assert float(metrics[metric_window.SKIPPED]) == 1.0
  for a, b in zip(before, jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, np.asarray(b))
  state, metrics = step(state, parallel.shard_batch(batch, mesh))
  assert float(metrics[metric_window.SKIPPED]) == 0.0
  assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, jax.tree.leaves(state)))


def _step_metrics(article_loss, skipped=None):
  metrics = {"loss/articleType": np.float32(article_loss), "loss/gender": np.float32(1.0),
             "loss/total": np.float32(article_loss + 1.0), "grad_norm": np.float32(2.0)}
  if skipped is not None:
    metrics[metric_window.SKIPPED] = np.float32(skipped)
  return metrics


def test_metric_window_names_the_step_and_task_or_counts_skips():
  window = metric_window.MetricWindow("stop", max_skipped=10)
  window.add(7, _step_metrics(1.0))
  window.add(8, _step_metrics(np.inf))
  with pytest.raises(FloatingPointError, match=r"at step 8: loss of task\(s\) \['articleType'\]"
                                               r".*checkpoint \(step 6\)"):
    window.check(last_checkpoint=6)
  window = metric_window.MetricWindow("skip", max_skipped=1)
  window.add(1, _step_metrics(1.0, skipped=0))
  window.add(2, _step_metrics(np.nan, skipped=1))
  window.check(last_checkpoint=None)
  summary = window.summary()  # The skipped step is left out of the means.
  assert summary["loss/articleType"] == 1.0 and summary["skipped_steps"] == 1.0
  window.add(3, _step_metrics(np.nan, skipped=1))
  with pytest.raises(FloatingPointError, match="more than config.max_skipped_steps=1"):
    window.check(last_checkpoint=None)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_diverging_run_stops_naming_the_step_and_keeps_good_checkpoints(tmp_path, policy):
  workdir = tmp_path / "run"
  run = run_main(workdir, "--config.num_train_steps=8", "--config.optimizer.learning_rate=1e30",
                 "--config.checkpoint.every_steps=1", "--config.log_every_steps=1",
                 f"--config.nonfinite_policy={policy}", "--config.max_skipped_steps=2")
  assert run.returncode == 2 and "Traceback" not in run.stderr
  if policy == "stop":
    assert "Non-finite training values at step" in run.stderr
    assert "loss of task(s) ['articleType']" in run.stderr
  else:
    assert "3 training steps had non-finite values" in run.stderr
  kept = sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())
  assert kept and f"the last checkpoint (step {kept[-1]}) is from a good state" in run.stderr
  with ocp.StandardCheckpointer() as checkpointer:
    for step in kept:
      state = checkpointer.restore(str(workdir / "checkpoints" / str(step) / "state"))
      assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state)), step


# ----------------------------------------------------------------------------- workdir


@pytest.mark.slow
def test_unwritable_workdir_fails_before_training(tmp_path):
  (tmp_path / "a_file").write_text("")
  run = run_main(tmp_path / "a_file" / "run", "--config.num_train_steps=2")
  assert run.returncode == 2 and "is not writable" in run.stderr
  assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_full_disk_is_detected_before_training(tmp_path, monkeypatch):
  config = tiny_config()
  _, _, state, _ = _tiny_state(config)
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=1000))
  with pytest.raises(WorkdirError, match="has 0 MB free, but one checkpoint of this model"):
    checkpoint_lib.check_free_space(str(tmp_path), state, keep=3)


def _checkpoints_with_step_1(tmp_path):
  config = tiny_config()
  data, _, state, _ = _tiny_state(config)
  iterator = pipeline.train_iterator(data.splits["train"], config.data, 16, 0)
  checkpoints = checkpoint_lib.Checkpoints(str(tmp_path), config, data.tasks)
  checkpoints.save(1, state, iterator, metrics={"val/articleType/accuracy": 0.5})
  checkpoints.wait()
  return config, data, state, iterator, checkpoints


@pytest.mark.slow
def test_a_failing_save_names_the_step_and_keeps_earlier_checkpoints(tmp_path, monkeypatch):
  _, _, state, iterator, checkpoints = _checkpoints_with_step_1(tmp_path)

  def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(checkpoints.manager, "save", disk_full)
  with pytest.raises(WorkdirError, match=r"checkpoint of step 2 .*No space left on device.*"
                                         r"kept \(\[1\]\).*resume from step 1"):
    checkpoints.save(2, state, iterator)
  assert checkpoints.all_steps() == [1]


@pytest.mark.slow
def test_half_written_checkpoint_is_never_the_latest(tmp_path):
  config, data, state, iterator, checkpoints = _checkpoints_with_step_1(tmp_path)
  checkpoints.close()
  # What a save killed mid-way leaves: Orbax renames the folder to '2' only when complete.
  partial = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-1764000000"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "manifest.ocdbt").write_bytes(b"half")
  reopened = checkpoint_lib.Checkpoints(str(tmp_path), config, data.tasks)
  assert reopened.latest_step() == 1
  step, _, _ = reopened.restore_latest(state, iterator)
  assert step == 1


@pytest.mark.slow
def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path):
  workdir = tmp_path / "run"
  assert run_main(workdir, "--config.num_train_steps=4").returncode == 0
  state_dir = workdir / "checkpoints" / "4" / "state"
  for dirpath, _, files in os.walk(state_dir):  # Damage every array file of step 4.
    for name in files:
      if "ocdbt" in dirpath or name.startswith("d"):
        (state_dir / os.path.relpath(os.path.join(dirpath, name), state_dir)).write_bytes(b"x")
  # The tools name the damaged checkpoint and the others instead of falling back silently.
  from fashion_jax.evaluation import trained
  with pytest.raises(CheckpointMismatchError, match=r"Cannot read the checkpoint of step 4 .*"
                                                    r"--checkpoint=<step> \(steps: \[2, 4\]\)"):
    trained.load(str(workdir), "latest")
  run = run_main(workdir, "--config.num_train_steps=6")
  assert run.returncode == 0, run.stderr[-3000:]
  assert "Cannot restore checkpoint" in run.stderr and "Resuming at step 2 of 6" in run.stdout
  names = os.listdir(workdir / "checkpoints")
  assert any(n.startswith("4.unreadable-") for n in names)  # Set aside, not deleted.
  assert json.loads((workdir / "final_metrics.json").read_text())["step"] == 6


@pytest.mark.slow
def test_checkpoint_of_another_program_is_named(tmp_path):
  workdir = tmp_path / "run"
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(str(workdir / "checkpoints" / "7" / "default"), {"w": np.ones(3)})
  run = run_main(workdir, "--config.num_train_steps=2")
  assert run.returncode == 2 and "is not a fashion_jax checkpoint" in run.stderr
  assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_other_tasks_list_the_differences_and_backbone_init_is_the_way(tmp_path):
  config, data, _, _, checkpoints = _checkpoints_with_step_1(tmp_path)
  other = tiny_config(tasks={"colour": tasks_lib.task_config("softmax", "baseColour")})
  other.checkpoint.best_metric = "val/colour/accuracy"
  other_tasks = tasks_lib.parse_tasks(other.tasks)
  other_data, _, other_state, _ = _tiny_state(other)
  with pytest.raises(CheckpointMismatchError, match=r"'tasks': .*'colour'.*"
                                                    r"--config.model.pretrained="):
    checkpoint_lib.Checkpoints(str(tmp_path), other, other_tasks).restore(1, other_state)
  # Partial initialisation: the backbone (only) of that run.
  workdir_lib.write_config(str(tmp_path), config)
  other.model.pretrained = str(tmp_path)
  _, _, initialised, _ = _tiny_state(other)
  with ocp.StandardCheckpointer() as checkpointer:
    saved = checkpointer.restore(str(tmp_path / "checkpoints" / "1" / "state"))
  saved_backbone = _by_path(saved["model"]["backbone"])
  new_backbone = _by_path(initialised["model"]["backbone"])
  assert saved_backbone.keys() == new_backbone.keys() and len(new_backbone) > 20
  for path, value in saved_backbone.items():
    np.testing.assert_array_equal(new_backbone[path], value, err_msg=str(path))


def _by_path(tree) -> dict:
  """{path as strings: numpy leaf}, the same for a restored dict and an nnx.State."""
  def name(key):
    return str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))))
  return {tuple(name(k) for k in path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


# ----------------------------------------------------------------------------- signals


def test_ctrl_c_requests_a_stop_and_a_second_one_stops_at_once():
  import signal
  from fashion_jax.training import preemption
  before = signal.getsignal(signal.SIGINT)  # Background jobs start with SIGINT ignored.
  with preemption.StopRequest() as request:
    assert not request.should_stop(1)
    os.kill(os.getpid(), signal.SIGINT)
    assert request.should_stop(2) and request.signal_name == "SIGINT"
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  # Leaving the block restores the previous handlers.
  assert signal.getsignal(signal.SIGINT) is before
