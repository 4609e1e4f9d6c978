"""Makes tests/data/checkpoint_v1: a tiny run trained by fashion_jax before the named train state."""
import os, shutil, sys, glob
import numpy as np
sys.path.insert(0, "/work/main/tests"); sys.path.insert(0, "/work/main")
import conftest
from fashion_jax.evaluation import trained
from fashion_jax.training import train
from fashion_jax.data.sources import SAMPLE_DIR
out = sys.argv[1]
shutil.rmtree(out, ignore_errors=True)
config = conftest.tiny_config()
config.num_train_steps = 2
config.checkpoint.keep = 1
config.ema_decay = 0.9
config.loss_balancing.name = "uncertainty"
train.train_and_evaluate(config, out)
for f in glob.glob(os.path.join(out, "events.out.tfevents.*")):
  os.remove(f)
run = trained.load(out, "latest")
paths = sorted(glob.glob(os.path.join(SAMPLE_DIR, "images", "*.jpg")))[:4]
outputs = {}
for ema in (False, True):
  run.ema = ema
  for path, row, err in trained.predict_files(run, paths, batch_size=4):
    for task, value in row.items():
      outputs.setdefault(f"{'ema/' if ema else ''}{task}", []).append(value)
np.savez(os.path.join(out, "expected_outputs.npz"), images=np.asarray([os.path.basename(p) for p in paths]),
         **{k: np.stack(v) for k, v in outputs.items()})
print({k: np.stack(v).shape for k, v in outputs.items()})
