r"""HTTP service under load: throughput and latency of /predict and /similar.

    python scripts/benchmark_serving.py --model=runs/demo/export --index=runs/demo/serving_index \
        [--clients=1,8,32] [--requests=40]

Starts `python -m fashion_jax serve` on a loopback port, then for each number of
concurrent clients sends --requests requests per client (real product photos from the
embedded sample, as multipart uploads) and reports requests/s, p50 and p99 latency,
failures, and images per model call (the batching) from /healthz. Stops by itself.
"""

import argparse
import concurrent.futures
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

from fashion_jax.data.product_images import SAMPLE_DIR


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def wait_for(url: str, server, timeout: float = 300) -> None:
  deadline = time.time() + timeout
  while time.time() < deadline:
    if server.poll() is not None:
      raise SystemExit(f"the server exited: {server.stderr.read().decode()[-2000:]}")
    try:
      if httpx.get(url + "/healthz", timeout=2).status_code == 200:
        return
    except httpx.HTTPError:
      time.sleep(0.5)
  raise SystemExit("the server did not start")


def load(url: str, endpoint: str, clients: int, requests: int, photos) -> dict:
  def client(number):
    latencies, failures = [], 0
    with httpx.Client(base_url=url, timeout=120) as http:
      for i in range(requests):
        data = photos[(number * requests + i) % len(photos)]
        start = time.perf_counter()
        response = http.post(endpoint, files={"file": ("photo.jpg", data, "image/jpeg")})
        latencies.append(time.perf_counter() - start)
        failures += response.status_code != 200
    return latencies, failures

  before = httpx.get(url + "/healthz").json()
  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    results = list(pool.map(client, range(clients)))
  elapsed = time.perf_counter() - start
  after = httpx.get(url + "/healthz").json()
  latencies = np.concatenate([r[0] for r in results]) * 1000
  calls = after["model_calls"] - before["model_calls"]
  return {"endpoint": endpoint, "clients": clients, "requests": len(latencies),
          "failed": sum(r[1] for r in results), "rps": len(latencies) / elapsed,
          "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99)),
          "per_call": (after["images"] - before["images"]) / max(calls, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", required=True)
  parser.add_argument("--index", default="")
  parser.add_argument("--backend", default="onnx")
  parser.add_argument("--clients", default="1,8,32")
  parser.add_argument("--requests", type=int, default=40)
  args = parser.parse_args()
  port = free_port()
  command = [sys.executable, "-m", "fashion_jax", "serve", f"--model={args.model}",
             f"--backend={args.backend}", f"--port={port}"]
  if args.index:
    command.append(f"--index={args.index}")
  server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  url = f"http://127.0.0.1:{port}"
  try:
    wait_for(url, server)
    folder = os.path.join(SAMPLE_DIR, "images")
    photos = [open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))[:64]]
    load(url, "/predict", 4, 5, photos)  # Warm-up: compiled shapes, caches.
    rows = []
    for endpoint in ["/predict"] + (["/similar?k=10"] if args.index else []):
      for clients in (int(c) for c in args.clients.split(",")):
        rows.append(load(url, endpoint, clients, args.requests, photos))
        print(rows[-1], flush=True)
  finally:
    server.terminate()
    server.wait(30)
  print(f"\n{os.cpu_count()} CPUs, model {args.model} ({args.backend})\n")
  print("| endpoint | clients | requests | failed | requests/s | p50 ms | p99 ms | images per "
        "model call |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['endpoint']} | {r['clients']} | {r['requests']} | {r['failed']} | "
          f"{r['rps']:.1f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['per_call']:.1f} |")


if __name__ == "__main__":
  main()
