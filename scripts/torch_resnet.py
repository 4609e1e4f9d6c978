"""ResNets in PyTorch with torchvision's exact module names (the reference for importing
ImageNet weights, and the benchmark's peer). Needs torch (the `[torch]` extra); torchvision
itself is not required, and its `state_dict` keys are the same as these."""

from typing import Sequence

from fashion_jax.errors import ConfigError

STAGES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
          "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3))}


def resnet(name: str, num_classes: int = 1000):
  """torchvision.models.<name>() without torchvision (v1.5: stride on the 3x3 conv)."""
  import torch
  from torch import nn
  if name not in STAGES:
    raise ConfigError(f"No torchvision-layout {name!r}; available: {sorted(STAGES)}.")
  kind, sizes = STAGES[name]
  expansion = 4 if kind == "bottleneck" else 1

  class Block(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int):
      super().__init__()
      out = width * expansion
      if kind == "bottleneck":
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
      else:
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
      self.relu = nn.ReLU(inplace=True)
      self.downsample = (nn.Sequential(nn.Conv2d(in_ch, out, 1, stride, bias=False),
                                       nn.BatchNorm2d(out))
                         if stride != 1 or in_ch != out else None)

    def forward(self, x):
      y = self.relu(self.bn1(self.conv1(x)))
      if kind == "bottleneck":
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
      else:
        y = self.bn2(self.conv2(y))
      return self.relu(y + (x if self.downsample is None else self.downsample(x)))

  class ResNet(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      self.relu = nn.ReLU(inplace=True)
      self.maxpool = nn.MaxPool2d(3, 2, 1)
      in_ch = 64
      for stage, size in enumerate(sizes):
        blocks: Sequence[nn.Module] = []
        for i in range(size):
          blocks.append(Block(in_ch, 64 * 2**stage, 2 if stage and i == 0 else 1))
          in_ch = 64 * 2**stage * expansion
        setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
      self.avgpool = nn.AdaptiveAvgPool2d(1)
      self.fc = nn.Linear(in_ch, num_classes)
      self.num_features = in_ch

    def features(self, x):
      x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
      for stage in range(len(sizes)):
        x = getattr(self, f"layer{stage + 1}")(x)
      return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
      return self.fc(self.features(x))

  return ResNet()
