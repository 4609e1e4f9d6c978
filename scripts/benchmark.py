r"""Speed of fashion_jax on this machine, side by side with a PyTorch peer, in one process.

    python scripts/benchmark.py                      # ResNet-50, batch 32, 96/128/224 px
    python scripts/benchmark.py --sizes=96 --steps=3 --no-torch
    python scripts/benchmark.py --model=convnext_tiny --sizes=96 --pipeline-workers=

Measures, with compilation and warm-up excluded (compile time reported apart):
  * train step images/s: the backbone (`--model`, ResNet-50 by default) + the seven
    softmax heads + embedding of configs/mtl.py, AdamW, the losses of the real run;
  * eval (inference) images/s;
  * input pipeline images/s alone (read + decode + resize + flip + batch) per worker setting;
  * the PyTorch peer (`pip install -e .[bench]`): the same network (torchvision's, or
    timm's for ViT-S/16, EfficientNet-Lite and the tf_ EfficientNets; for ResNets without
    torchvision, the identical scripts/torch_resnet.py), the same heads and
    losses, AdamW, the same threads, NCHW and channels_last;
and prints achieved FLOP/s against an estimate of the machine's peak. The peak is
cores x FP32 lanes (16 with AVX-512, 8 with AVX2) x 2 (FMA) x 2 FMA units x the clock in
/proc/cpuinfo -- an upper bound, as sustained clocks under vector load are lower.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED_DATA = os.path.join(REPO, "..", "shared", "data", "fashion-product-images")


def cpu_peak_gflops() -> tuple[float, str]:
  """Estimated FP32 peak of the visible CPUs, and how it was estimated."""
  flags, mhz = set(), None
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags") and not flags:
          flags = set(line.split(":", 1)[1].split())
        elif line.startswith("cpu MHz") and mhz is None:
          mhz = float(line.split(":", 1)[1])
  except OSError:
    return float("nan"), "unknown (no /proc/cpuinfo)"
  lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
  fma = 2 if "fma" in flags else 1
  cores = os.cpu_count()
  peak = cores * lanes * fma * 2 * (mhz or 0) / 1e3
  how = (f"{cores} cores x {lanes} fp32 lanes x {fma} (FMA) x 2 units x {mhz:.0f} MHz "
         f"= {peak:.0f} GFLOP/s")
  return peak, how


def load_mtl_config():
  from fashion_jax.config_lib import load_sibling_config
  return load_sibling_config(os.path.join(REPO, "configs", "benchmark.py"), "mtl")


def matmul_gflops(n: int = 2048, steps: int = 5) -> float:
  """FLOP/s of a large float32 matrix product in JAX: a measured ceiling for this CPU."""
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), jnp.float32)
  product = jax.jit(jnp.dot)
  product(a, a).block_until_ready()
  return 2 * n**3 / _median_time(lambda: product(a, a).block_until_ready(), steps) / 1e9


def _median_time(fn, steps: int) -> float:
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


# ----------------------------------------------------------------------------- JAX


def _node(config, path):
  for key in path:
    config = config[key]
  return config


def jax_setup(image_size: int, batch: int, config_overrides: dict):
  import numpy as np
  from fashion_jax import parallel
  from fashion_jax.evaluation import evaluators
  from fashion_jax.training import optim, train, train_state
  from fashion_jax import tasks as tasks_lib
  from fashion_jax.data.vocab import Vocab

  config = load_mtl_config()
  config.data.image_size = image_size
  for key, value in config_overrides.items():
    *parents, field = key.split(".")
    _node(config, parents)[field] = value
  tasks = tasks_lib.parse_tasks(config.tasks)
  vocabs = {t.name: Vocab(t.column, [f"c{i}" for i in range(CLASSES[t.name])]) for t in tasks}
  mesh = parallel.make_mesh()
  tx, _ = optim.make_optimizer(config.optimizer, 1000)
  graphdef, state = train_state.create(config, tasks, vocabs, mesh, tx)
  train_fn = train.compile_train_step(graphdef, tasks, mesh,
                                      skip_nonfinite=config.nonfinite_policy == "skip")
  (eval_fn, _), = evaluators.compile_eval_steps(graphdef, tasks, mesh).values()
  rng = np.random.default_rng(0)
  host = {"image": rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8),
          "labels": {t.name: rng.integers(0, CLASSES[t.name], batch).astype(np.int32)
                     for t in tasks},
          "masks": {t.name: np.ones(batch, np.float32) for t in tasks},
          "roles": np.zeros(batch, np.int32)}
  return parallel.shard_batch(host, mesh), state, train_fn, eval_fn


# Class counts of configs/mtl.py on the 6,650-image shared set (min_count=5).
CLASSES = {"articleType": 52, "baseColour": 29, "embedding": 72, "gender": 5,
           "masterCategory": 5, "season": 4, "subCategory": 23, "usage": 6}


def bench_jax(image_size: int, batch: int, steps: int, overrides: dict) -> dict:
  import jax
  batch_arrays, state, train_fn, eval_fn = jax_setup(image_size, batch, overrides)
  lowered = train_fn.lower(state, batch_arrays)
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  bytes_accessed = float(cost.get("bytes accessed", float("nan"))) if cost else float("nan")

  holder = {"state": state}

  def train_once():
    holder["state"], metrics = compiled(holder["state"], batch_arrays)
    jax.block_until_ready(metrics)

  train_once()  # Warm-up: first-run allocations.
  train_s = _median_time(train_once, steps)
  eval_compiled = eval_fn.lower(holder["state"], batch_arrays).compile()
  eval_cost = eval_compiled.cost_analysis()
  eval_cost = eval_cost[0] if isinstance(eval_cost, list) else eval_cost
  eval_flops = float(eval_cost.get("flops", float("nan"))) if eval_cost else float("nan")
  eval_once = lambda: jax.block_until_ready(eval_compiled(holder["state"], batch_arrays))  # noqa: E731
  eval_once()
  eval_s = _median_time(eval_once, steps)
  backbone_params = sum(x.size for x in jax.tree.leaves(state["model"]["backbone"]))
  return {"train_ips": batch / train_s, "eval_ips": batch / eval_s, "compile_s": compile_s,
          "train_flops": flops, "train_bytes_accessed": bytes_accessed,
          "train_gflops_per_s": flops / train_s / 1e9,
          "eval_gflops_per_image": eval_flops / batch / 1e9,
          "backbone_params_m": backbone_params / 1e6}


def bench_pipeline(data_root: str, image_size: int, batch: int, workers: list[int],
                   batches: int, packed: str = "", tfds_dir: str = "") -> dict:
  """Training images/s of the input pipeline alone: from the JPEG folder, and from an
  ArrayRecord pack of it (python -m fashion_jax prepare) when `packed` is given, and from
  its TFDS build (python -m fashion_jax build_tfds) when `tfds_dir` is given."""
  from fashion_jax import tasks as tasks_lib
  from fashion_jax.data import labelled, pipeline

  config = load_mtl_config()
  config.data.image_size = image_size
  tasks = tasks_lib.parse_tasks(config.tasks)
  inputs = {"jpeg folder": ("product_images", data_root)}
  if packed:
    inputs["array_record"] = ("array_record", packed)
  if tfds_dir:
    inputs["tfds"] = ("tfds", tfds_dir)
  out = {}
  for label, (source, root) in inputs.items():
    config.datasets.products.source = source
    config.datasets.products.root = root
    data = labelled.prepare_data(config, tasks, None)
    for n in workers:
      config.data.num_workers = n
      it = pipeline.train_iterator(data.splits["train"], config.data, batch, seed=0)
      for _ in range(3):
        next(it)  # Start-up (worker processes, thread pools) excluded.
      start = time.perf_counter()
      for _ in range(batches):
        next(it)
      out[f"{label}, workers={n}"] = batches * batch / (time.perf_counter() - start)
      del it
  return out


# ------------------------------------------------------------------------- PyTorch


def torch_backbone(name: str, image_size: int, drop_path_rate: float):
  """The PyTorch network of `config.model.name=name` without its classifier, and its
  number of features: torchvision's where it has the network, else timm's; ResNets from
  scripts/torch_resnet.py (torchvision's layout) when torchvision is absent."""
  from torch import nn
  if name == "resnet_tiny":  # One basic block a stage, at its default width 64.
    import torchvision
    model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    features = model.fc.in_features
    model.fc = nn.Identity()
    return model, features, "torchvision ResNet(BasicBlock, [1, 1, 1, 1])"
  if name.startswith("resnet"):
    try:
      import torchvision
      model, source = getattr(torchvision.models, name)(), "torchvision"
    except (ImportError, RuntimeError):
      from scripts.torch_resnet import resnet
      model, source = resnet(name), "torchvision layout (scripts/torch_resnet.py)"
    features = model.fc.in_features
    model.fc = nn.Identity()
    return model, features, source
  import timm
  import torchvision
  if name.startswith("convnext"):
    model = getattr(torchvision.models, name)(stochastic_depth_prob=drop_path_rate)
    features = model.classifier[2].in_features
    model.classifier[2] = nn.Identity()
    return model, features, "torchvision"
  if name == "vit_b16":
    model = torchvision.models.vit_b_16(image_size=image_size)
    model.heads = nn.Identity()
    return model, model.hidden_dim, "torchvision"
  if name.startswith("efficientnet") and "lite" not in name:  # timm has the Lites.
    model = getattr(torchvision.models, name)(stochastic_depth_prob=drop_path_rate)
    features = model.classifier[1].in_features
    model.classifier = nn.Identity()
    return model, features, "torchvision"
  timm_names = {"vit_s16": "vit_small_patch16_224"}
  extra = {"img_size": image_size} if name.startswith("vit") else {}
  model = timm.create_model(timm_names.get(name, name), num_classes=0,
                            drop_path_rate=drop_path_rate, **extra)
  return model, model.num_features, "timm"


def torch_multitask(name: str, image_size: int, drop_path_rate: float, num_outputs: dict):
  """The PyTorch peer: the backbone with one linear head per task, as the JAX model."""
  from torch import nn
  backbone, features, source = torch_backbone(name, image_size, drop_path_rate)

  class MultiTask(nn.Module):
    def __init__(self):
      super().__init__()
      self.backbone = backbone
      self.heads = nn.ModuleDict({k: nn.Linear(features, v) for k, v in num_outputs.items()})

    def forward(self, x):
      features = self.backbone(x)
      return {k: head(features) for k, head in self.heads.items()}

  return MultiTask(), source


def _torch_batch_hard_triplet(torch, emb, labels, margin=0.2):
  dist = torch.cdist(emb, emb)
  same = labels[:, None] == labels[None, :]
  eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
  pos = torch.where(same & ~eye, dist, torch.full_like(dist, -1e9)).amax(1)
  neg = torch.where(~same, dist, torch.full_like(dist, 1e9)).amin(1)
  valid = (same & ~eye).any(1) & (~same).any(1)
  return torch.relu(pos - neg + margin)[valid].mean()


def bench_torch(name: str, image_size: int, batch: int, steps: int, channels_last: bool,
                drop_path_rate: float, device: str = "cpu", amp: bool = False) -> dict:
  """The PyTorch peer's train and eval images/s on `device`; `amp`: bfloat16 autocast
  (PyTorch's mixed precision), as the JAX side's bfloat16 activations."""
  import contextlib
  import torch
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count())
  if device.startswith("cuda"):
    torch.backends.cudnn.benchmark = True
  outputs = {k: (128 if k == "embedding" else v) for k, v in CLASSES.items()}
  model, source = torch_multitask(name, image_size, drop_path_rate, outputs)
  model = model.to(device)
  x = (torch.randint(0, 256, (batch, 3, image_size, image_size)).float() / 255).to(device)
  labels = {k: torch.randint(0, v, (batch,)).to(device) for k, v in CLASSES.items()}
  if channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
  autocast = (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16)) if amp \
      else contextlib.nullcontext
  synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

  def train_once():
    model.train()
    with autocast():
      out = model(x)
      emb = torch.nn.functional.normalize(out["embedding"].float(), dim=1)
      loss = sum(torch.nn.functional.cross_entropy(out[k].float(), labels[k])
                 for k in CLASSES if k != "embedding")
      loss = loss + _torch_batch_hard_triplet(torch, emb, labels["embedding"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    synchronize()

  def eval_once():
    model.eval()
    with torch.inference_mode(), autocast():
      model(x)
    synchronize()

  train_once()
  train_s = _median_time(train_once, steps)
  eval_once()
  eval_s = _median_time(eval_once, steps)
  return {"train_ips": batch / train_s, "eval_ips": batch / eval_s, "source": source,
          "torch": torch.__version__, "threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------- main


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", default="resnet50", help="config.model.name of both sides.")
  parser.add_argument("--sizes", default="96,128,224")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=5, help="Timed steps (median).")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--pipeline-workers", default="0,1,2")
  parser.add_argument("--pipeline-batches", type=int, default=20)
  parser.add_argument("--data", default=SHARED_DATA if os.path.isdir(SHARED_DATA) else "",
                      help="fashion-product-images folder for the pipeline ('' = sample).")
  parser.add_argument("--packed", default="",
                      help="An ArrayRecord pack of --data (python -m fashion_jax prepare), to "
                           "compare the pipeline reading it with reading the JPEG folder.")
  parser.add_argument("--tfds", default="",
                      help="A TFDS data dir holding --data built by python -m "
                           "fashion_jax build_tfds, to compare with the JPEG folder too.")
  parser.add_argument("--set", action="append", default=[],
                      help="Config override for the JAX model, e.g. --set model.dtype=bfloat16 "
                           "or --set nonfinite_policy=skip.")
  parser.add_argument("--json", help="Also write the results to this file.")
  parser.add_argument("--system-malloc", action="store_true",
                      help="Do not re-run under tcmalloc (to measure what it changes).")
  args = parser.parse_args()

  from absl import flags
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags.
  import jax
  from fashion_jax import allocator

  defaults = load_mtl_config()
  overrides = {}
  for item in args.set:
    key, value = item.split("=", 1)
    *parents, field = key.split(".")
    default = _node(defaults, parents)[field]
    overrides[key] = (value.lower() in ("1", "true") if isinstance(default, bool)
                      else type(default)(value))
  overrides["model.name"] = args.model
  drop_path_rate = overrides.get("model.drop_path_rate", defaults.model.drop_path_rate)
  peak, how = cpu_peak_gflops()
  print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, JAX {jax.__version__} on {jax.devices()[0].platform}, "
        f"allocator: {allocator.current()}")
  ceiling = matmul_gflops()
  print(f"# peak estimate: {how}; a 2048^3 float32 matmul in JAX runs at {ceiling:.0f} GFLOP/s "
        "(above the estimate when the CPU boosts past its nominal clock)")
  print(f"# model: {args.model}")
  sizes = [int(s) for s in args.sizes.split(",")]
  results = {"model": args.model, "peak_gflops": peak, "matmul_gflops": ceiling, "sizes": {}}
  for size in sizes:
    row = {"jax": bench_jax(size, args.batch, args.steps, overrides)}
    if not args.no_torch:
      row["torch_nchw"] = bench_torch(args.model, size, args.batch, args.steps, False,
                                      drop_path_rate)
      row["torch_cl"] = bench_torch(args.model, size, args.batch, args.steps, True,
                                    drop_path_rate)
    results["sizes"][size] = row
    print(json.dumps({size: row}), flush=True)

  workers = [int(w) for w in args.pipeline_workers.split(",") if w]
  results["pipeline"] = {size: bench_pipeline(args.data, size, args.batch, workers,
                                              args.pipeline_batches, args.packed, args.tfds)
                         for size in sizes} if workers else {}

  print()
  header = "| size | JAX train img/s | PyTorch train img/s (NCHW / CL) | ratio | JAX eval img/s | " \
           "PyTorch eval img/s (best) | ratio | JAX compile s | JAX train GFLOP/s " \
           "(% est. peak, % matmul) |"
  print(header)
  print("|---" * (header.count("|") - 1) + "|")
  for size, row in results["sizes"].items():
    j = row["jax"]
    if "torch_nchw" in row:
      t_n, t_c = row["torch_nchw"], row["torch_cl"]
      best_train = max(t_n["train_ips"], t_c["train_ips"])
      best_eval = max(t_n["eval_ips"], t_c["eval_ips"])
      torch_cols = (f"{t_n['train_ips']:.1f} / {t_c['train_ips']:.1f} | "
                    f"{j['train_ips'] / best_train:.2f}x | {j['eval_ips']:.1f} | {best_eval:.1f} | "
                    f"{j['eval_ips'] / best_eval:.2f}x")
    else:
      torch_cols = f"- | - | {j['eval_ips']:.1f} | - | -"
    print(f"| {size} | {j['train_ips']:.1f} | {torch_cols} | {j['compile_s']:.1f} | "
          f"{j['train_gflops_per_s']:.0f} ({100 * j['train_gflops_per_s'] / peak:.0f}%, "
          f"{100 * j['train_gflops_per_s'] / ceiling:.0f}%) |")
  if workers:
    print()
    print("| size | " + " | ".join(f"pipeline img/s, {w}" for w in results["pipeline"][sizes[0]])
          + " |")
    print("|---" * (len(results["pipeline"][sizes[0]]) + 1) + "|")
    for size, row in results["pipeline"].items():
      print(f"| {size} | " + " | ".join(f"{v:.0f}" for v in row.values()) + " |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  # Both frameworks run in this one process, so they share the allocator.
  from fashion_jax import allocator
  if "--system-malloc" not in sys.argv:
    allocator.reexec_with_tcmalloc(sys.argv)
  main()
