r"""fashion_jax on an accelerator, against PyTorch, in one prepared and time-boxed run.

    python scripts/accelerator_check.py --out=docs/results/accelerator --wheels=wheels
    python scripts/accelerator_check.py --dry-run --out=/tmp/check   # every part, CPU, tiny
    python scripts/accelerator_check.py --download_wheels=wheels     # here, for the target

Runs its parts in priority order on whatever accelerator JAX finds, each in a process of
its own, and stops at --time_budget seconds (start-up included): a part that would run
past it is stopped, and those after it are recorded as skipped. Each part's result is
written into summary.json as soon as the part ends, so a run cut short keeps what it
measured. The parts:

  environment     devices, JAX / jaxlib / CUDA / PyTorch versions, device memory;
  resnet50_step   ResNet-50 + the seven heads + embedding of configs/mtl.py, 224 px,
                  batch 256, bfloat16: JAX train and eval images/s against the same
                  PyTorch network (channels_last, bfloat16 autocast) in the same run; MFU
                  (XLA's cost-analysis FLOPs over the device's peak) and the roofline
                  bound (XLA's bytes accessed against the device's memory bandwidth);
  input_pipeline  the grain pipeline's training images/s at 224 px per worker count;
  export          a small model trained on the embedded sample, exported with
                  jax.export and ONNX: jax.export on the device against ONNX Runtime on
                  the CPU, probabilities and normalised embeddings within 1e-3 with
                  jax_default_matmul_precision=highest; the default precision's
                  difference reported;
  tests           a focused subset of the test suite on the device (tests.txt);
  extra           EfficientNet-Lite0 and ViT-S/16 in float32 (JAX and PyTorch), and a
                  short real training of configs/demo.py (configs/mtl.py on the sample).

Files in --out, six at most: summary.json, log.txt (every part's output), tests.txt.
--wheels=DIR installs the wheels of DIR first (pip, no index): the packages the target
machine lacks (--download_wheels=DIR fetches them here, for --python_version).
--dry-run runs every part on the CPU at tiny sizes in about a minute
(tests/test_accelerator_check.py), so that the script cannot rot between GPU visits.
"""

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

PARTS = ("environment", "resnet50_step", "input_pipeline", "export", "tests", "extra")
# Packages beyond jax, flax, optax, orbax and torch that the parts import.
WHEEL_PACKAGES = ("grain", "ml-collections", "clu", "simplejpeg", "tensorboardX", "absl-py",
                  "safetensors", "datasets", "timm", "onnx", "onnxruntime", "jax2onnx",
                  "pytest", "matplotlib", "tqdm")
# Dense bfloat16 peak (FLOP/s) and memory bandwidth (bytes/s), from the makers' data
# sheets, by a substring of jax's device_kind.
DEVICE_PEAKS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12),
                "A100": (312e12, 2.0e12), "L4": (121e12, 0.3e12),
                "TPU v4": (275e12, 1.2e12), "TPU v5 lite": (197e12, 0.82e12),
                "TPU v5p": (459e12, 2.76e12), "TPU v6 lite": (918e12, 1.64e12)}
EXPORT_TOLERANCE = 1e-3


def _sizes(dry_run: bool) -> dict:
  """What each part runs at: the real sizes, or tiny ones on the CPU."""
  if dry_run:
    return {"model": "resnet_tiny", "image_size": 32, "batch": 2, "steps": 1,
            "pipeline_batch": 4, "pipeline_batches": 2, "workers": [0],
            "train_steps": 2, "extra_models": ["efficientnet_lite_test"], "extra_torch": False,
            "export_platforms": ["cpu"], "tests": ["tests/test_imports.py"]}
  return {"model": "resnet50", "image_size": 224, "batch": 256, "steps": 10,
          "pipeline_batch": 256, "pipeline_batches": 10,
          "workers": sorted({0, 4, min(16, os.cpu_count() or 1)}),
          "train_steps": 60, "extra_models": ["tf_efficientnet_lite0", "vit_s16"],
          "extra_torch": True, "export_platforms": ["cpu", "cuda", "tpu"],
          "tests": ["tests/test_backbones.py", "tests/test_train.py", "tests/test_resume.py",
                    "tests/test_export.py::test_every_backbone_family_converts_to_onnx_"
                    "with_the_same_features"]}


def _torch_device() -> str:
  try:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"
  except ImportError:
    return ""


def _peaks():
  import jax
  kind = jax.devices()[0].device_kind
  for name, peaks in DEVICE_PEAKS.items():
    if name.lower() in kind.lower():
      return kind, peaks
  if jax.default_backend() == "cpu":
    import benchmark
    gflops, _ = benchmark.cpu_peak_gflops()
    return kind, (gflops * 1e9, float("nan"))
  return kind, (float("nan"), float("nan"))


# ---------------------------------------------------------------------------- parts


def part_environment(sizes, args) -> dict:
  import jax
  import jax.extend
  import jaxlib
  devices = jax.devices()
  out = {"python": platform.python_version(), "jax": jax.__version__,
         "jaxlib": jaxlib.__version__, "backend": jax.default_backend(),
         "platform_version": jax.extend.backend.get_backend().platform_version,
         "devices": [str(d) for d in devices], "device_kind": devices[0].device_kind,
         "cpu_count": os.cpu_count()}
  stats = devices[0].memory_stats() or {}
  if "bytes_limit" in stats:
    out["device_memory_gib"] = round(stats["bytes_limit"] / 2**30, 1)
  for module in ("flax", "optax", "orbax.checkpoint", "grain", "torch"):
    with contextlib.suppress(ImportError):
      out[module] = __import__(module, fromlist=["_"]).__version__
  with contextlib.suppress(ImportError):
    import torch
    out["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
      out["torch_device"] = torch.cuda.get_device_name(0)
  with contextlib.suppress(OSError, subprocess.SubprocessError):
    out["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=30).stdout.strip()
  return out


def _with_mfu(result: dict, seconds_per_step: float, peaks) -> dict:
  """MFU and the roofline bound of one train step from XLA's cost analysis."""
  peak_flops, bandwidth = peaks
  flops, moved = result["train_flops"], result["train_bytes_accessed"]
  result["mfu"] = flops / seconds_per_step / peak_flops
  intensity = flops / moved
  ridge = peak_flops / bandwidth
  result["arithmetic_intensity"] = intensity
  result["ridge_point"] = ridge
  result["bound"] = ("memory bandwidth" if intensity < ridge else "compute") + (
      f": {intensity:.0f} FLOP/byte against the device's {ridge:.0f} (XLA's estimate of "
      "the bytes every fused kernel reads and writes)")
  return result


def part_resnet50_step(sizes, args) -> dict:
  import benchmark
  kind, peaks = _peaks()
  size, batch, steps = sizes["image_size"], sizes["batch"], sizes["steps"]
  jax_result = benchmark.bench_jax(size, batch, steps, {"model.name": sizes["model"],
                                                        "model.dtype": "bfloat16"})
  out = {"model": sizes["model"], "image_size": size, "batch": batch, "device_kind": kind,
         "peak_bf16_flops": peaks[0], "memory_bandwidth": peaks[1],
         "jax": _with_mfu(jax_result, batch / jax_result["train_ips"], peaks)}
  device = _torch_device()
  if device:
    torch_result = benchmark.bench_torch(sizes["model"], size, batch, steps, True, 0.0,
                                         device=device, amp=True)
    torch_result["mfu"] = jax_result["train_flops"] * torch_result["train_ips"] / batch / peaks[0]
    out["torch_channels_last_amp"] = torch_result
    out["jax_over_torch_train"] = jax_result["train_ips"] / torch_result["train_ips"]
    out["jax_over_torch_eval"] = jax_result["eval_ips"] / torch_result["eval_ips"]
  return out


def part_input_pipeline(sizes, args) -> dict:
  import benchmark
  from fashion_jax.data.product_images import SAMPLE_DIR
  data = args.data or SAMPLE_DIR
  rates = benchmark.bench_pipeline(data, sizes["image_size"], sizes["pipeline_batch"],
                                   sizes["workers"], sizes["pipeline_batches"])
  return {"data": data, "image_size": sizes["image_size"], "batch": sizes["pipeline_batch"],
          "images_per_s": rates}


def _train_small_run(workdir: str, sizes, dry_run: bool) -> None:
  from fashion_jax.training import train
  from fashion_jax.config_lib import load_sibling_config
  config = load_sibling_config(os.path.join(REPO, "configs", "x.py"), "demo")
  config.num_train_steps = sizes["train_steps"]
  config.eval_every_steps = config.checkpoint.every_steps = sizes["train_steps"]
  if dry_run:  # Three of the tasks, scored on val only: the code path, in seconds.
    config.model.name, config.model.width, config.data.image_size = "resnet_tiny", 8, 32
    config.batch_size = 8
    config.tasks = {name: config.tasks[name] for name in ("articleType", "gender", "embedding")}
    config.hierarchy = ""
    config.eval_test = False
  train.train_and_evaluate(config, workdir)


def _largest_differences(got: dict, want: dict, normalized: set) -> dict:
  import numpy as np

  def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

  return {name: float(np.abs((unit(got[name]) - unit(want[name])) if name in normalized
                             else (got[name] - want[name])).max()) for name in want}


def part_export(sizes, args) -> dict:
  import jax
  from fashion_jax.serving import artifact, export, runtimes, served_function
  scratch = tempfile.mkdtemp(prefix="accelerator_export_")
  workdir = os.path.join(scratch, "run")
  _train_small_run(workdir, sizes, args.dry_run)
  out = {"device_kind": jax.devices()[0].device_kind}
  images = None
  for precision in ("highest", "default"):
    folder = os.path.join(scratch, precision)
    with jax.default_matmul_precision(precision) if precision != "default" \
        else contextlib.nullcontext():
      # ONNX Runtime computes in float32 whatever the precision: converted once.
      meta = export.export_run(workdir, folder, checkpoint="latest", onnx=images is None,
                               platforms=sizes["export_platforms"])
      if images is None:
        images = served_function.sample_images(artifact.image_size(meta)).astype("float32")
        on_cpu = runtimes.OnnxModel(folder)(images)
      on_device = runtimes.JaxExportModel(folder)(images)
    normalized = {o["name"] for o in meta["outputs"] if o.get("form") == "embedding"}
    out[precision] = _largest_differences(on_device, on_cpu, normalized)
  out["tolerance"] = EXPORT_TOLERANCE
  out["passed"] = max(out["highest"].values()) <= EXPORT_TOLERANCE
  return out


def part_tests(sizes, args) -> dict:
  tests_file = os.path.join(args.out, "tests.txt")
  started = time.time()
  with open(tests_file, "w") as f:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             *sizes["tests"]], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                            timeout=max(10, args.deadline - time.time() - 5))
  with open(tests_file) as f:
    last = [line for line in f.read().splitlines() if line.strip()][-1:]
  return {"tests": sizes["tests"], "returncode": result.returncode,
          "summary": last[0] if last else "", "seconds": round(time.time() - started)}


def part_extra(sizes, args) -> dict:
  import benchmark
  out = {}
  size, batch, steps = sizes["image_size"], sizes["batch"], sizes["steps"]
  device = _torch_device() if sizes["extra_torch"] else ""
  for name in sizes["extra_models"]:
    row = {"jax": benchmark.bench_jax(size, batch, steps, {"model.name": name})}
    if device:
      row["torch_channels_last"] = benchmark.bench_torch(name, size, batch, steps, True, 0.0,
                                                         device=device)
      row["jax_over_torch_train"] = row["jax"]["train_ips"] / row["torch_channels_last"]["train_ips"]
    out[name] = row
    _write_partial(args, "extra", out)
  started = time.time()
  workdir = tempfile.mkdtemp(prefix="accelerator_demo_")
  _train_small_run(workdir, sizes, args.dry_run)
  with open(os.path.join(workdir, "final_metrics.json")) as f:
    final = json.load(f)
  out["demo_training"] = {"steps": sizes["train_steps"], "seconds": round(time.time() - started),
                          **{k: v for k, v in final.items() if k.endswith("/accuracy")}}
  return out


# ----------------------------------------------------------------------- the driver


def _summary_path(args) -> str:
  return os.path.join(args.out, "summary.json")


def _read_summary(args) -> dict:
  with open(_summary_path(args)) as f:
    return json.load(f)


def _write_summary(args, summary: dict) -> None:
  staging = _summary_path(args) + ".tmp"
  with open(staging, "w") as f:
    json.dump(summary, f, indent=1, default=str)
  os.replace(staging, _summary_path(args))


def _write_partial(args, part: str, result: dict) -> None:
  """A part's results so far, for a part stopped at the deadline (its later models)."""
  summary = _read_summary(args)
  summary["parts"][part] = {"status": "partial", **result}
  _write_summary(args, summary)


def run_part(args) -> None:
  """One part, in this process: its result into summary.json."""
  if args.dry_run:
    os.environ["JAX_PLATFORMS"] = "cpu"
  from absl import flags
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags; nobody parses them here.
  started = time.time()
  result = globals()[f"part_{args.part}"](_sizes(args.dry_run), args)
  summary = _read_summary(args)
  summary["parts"][args.part] = {"status": "done", "seconds": round(time.time() - started, 1),
                                 **result}
  _write_summary(args, summary)


def install_wheels(folder: str, log) -> None:
  wheels = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".whl"))
  if wheels:
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
                    folder, "--no-deps", *wheels], stdout=log, stderr=subprocess.STDOUT,
                   check=True)


def download_wheels(folder: str, python_version: str) -> None:
  subprocess.run([sys.executable, "-m", "pip", "download", "--dest", folder, "--only-binary",
                  ":all:", "--python-version", python_version, "--platform",
                  "manylinux2014_x86_64", *WHEEL_PACKAGES], check=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", help="Folder for summary.json, log.txt, tests.txt.")
  parser.add_argument("--time_budget", type=float, default=360.0,
                      help="Seconds for the whole run, start-up included.")
  parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                      help="Every part on the CPU at tiny sizes.")
  parser.add_argument("--wheels", default="", help="Install these wheels first.")
  parser.add_argument("--data", default="", help="Images for the pipeline part "
                      "(Kaggle layout); default: the embedded sample.")
  parser.add_argument("--parts", default=",".join(PARTS), help="Which parts, in this order.")
  parser.add_argument("--download_wheels", default="", help="Fetch the wheels into this "
                      "folder here, for the target machine, and stop.")
  parser.add_argument("--python_version", default="3.11", help="With --download_wheels.")
  parser.add_argument("--part", help=argparse.SUPPRESS)  # One part (the driver's child).
  parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.download_wheels:
    download_wheels(args.download_wheels, args.python_version)
    return 0
  if not args.out:
    parser.error("--out is required.")
  if args.part:
    run_part(args)
    return 0
  parts = [p for p in args.parts.split(",") if p]
  unknown = sorted(set(parts) - set(PARTS))
  if unknown:
    parser.error(f"--parts: unknown {unknown}; the parts are {list(PARTS)}.")
  started = time.time()
  deadline = started + args.time_budget
  os.makedirs(args.out, exist_ok=True)
  if args.dry_run:  # Its parts compile the same tiny steps: compile each once.
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="accel_xla_"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  _write_summary(args, {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                        "dry_run": args.dry_run, "time_budget_s": args.time_budget,
                        "command": " ".join(sys.argv), "parts": {}})
  with open(os.path.join(args.out, "log.txt"), "a") as log:
    if args.wheels:
      install_wheels(args.wheels, log)
    for part in parts:
      left = deadline - time.time()
      summary = _read_summary(args)
      if left < 5:
        summary["parts"][part] = {"status": "skipped: out of time"}
        _write_summary(args, summary)
        continue
      print(f"== {part} ({left:.0f} s left)", file=log, flush=True)
      command = [sys.executable, os.path.abspath(__file__), f"--part={part}",
                 f"--out={args.out}", f"--deadline={deadline}", f"--data={args.data}",
                 *(["--dry-run"] if args.dry_run else [])]
      try:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=left,
                                cwd=REPO)
        failed = result.returncode != 0 and f"failed: exit {result.returncode} (log.txt)"
      except subprocess.TimeoutExpired:
        failed = "stopped at the time budget"
      if failed:
        summary = _read_summary(args)
        summary["parts"][part] = {**summary["parts"].get(part, {}), "status": failed}
        _write_summary(args, summary)
      print(f"== {part}: {_read_summary(args)['parts'][part]['status']}", file=log, flush=True)
  summary = _read_summary(args)
  summary["seconds"] = round(time.time() - started, 1)
  _write_summary(args, summary)
  print(json.dumps({part: value["status"] for part, value in summary["parts"].items()}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
