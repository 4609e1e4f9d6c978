import json, os, shutil, sys, glob
sys.path.insert(0, "/work/main/tests"); sys.path.insert(0, "/work/main")
from fashion_jax.evaluation import trained
from fashion_jax.tools import predict
from fashion_jax.evaluation import scoring
from fashion_jax.data.product_images import SAMPLE_DIR
V1 = "/work/main/tests/data/checkpoint_v1"
work = "/tmp/fx/v1copy"; shutil.rmtree(work, ignore_errors=True); shutil.copytree(V1, work)
run = trained.load(work, "latest")
paths = sorted(glob.glob(os.path.join(SAMPLE_DIR, "images", "*.jpg")))[:4]
with open(os.path.join(V1, "predict_lines.jsonl"), "w") as f:
  for line in predict.predict_lines(run, paths, top_k=2, with_embedding=True):
    line["image"] = os.path.basename(line["image"])
    f.write(json.dumps(line) + "\n")
summary = scoring.evaluate(work, scoring.Options(split="test", checkpoint="latest", grid_images=0))
with open(os.path.join(V1, "evaluate_test_metrics.json"), "w") as f:
  json.dump(summary["metrics"], f, indent=1, sort_keys=True)
