r"""Converts ImageNet weights of a torchvision / timm backbone into a folder for
`config.model.pretrained`.

    python -m fashion_jax pretrained --weights=resnet50-11ad3fa6.pth --model=resnet50 \
        --out=weights/resnet50_imagenet
    python -m fashion_jax pretrained --weights=convnext_tiny.safetensors \
        --model=convnext_tiny --out=weights/convnext_tiny_imagenet   # timm's file, found by its names
    python -m fashion_jax.main --config=configs/mtl.py --workdir=runs/mtl_pretrained \
        --config.model.pretrained=weights/resnet50_imagenet

`.pth`/`.pt` files need torch; `.safetensors` and `.npz` do not (models/weights.py).
"""

from absl import flags

from fashion_jax.models import backbones, weights
from fashion_jax.tools import cli


def _define_flags():
  flags.DEFINE_string("weights", None, "A torchvision/timm .pth, .safetensors or .npz.")
  flags.DEFINE_string("model", "resnet50", f"One of {sorted(backbones.NAMES)}.")
  flags.DEFINE_string("out", None, "Folder for the Orbax checkpoint of the backbone.")


def main(argv):
  del argv
  FLAGS = flags.FLAGS
  converted = weights.convert(weights.read_weights_file(FLAGS.weights), FLAGS.model,
                              FLAGS.weights)
  weights.save_backbone(converted, FLAGS.out, FLAGS.model)
  print(f"Wrote {len(converted)} backbone arrays of {FLAGS.model} to {FLAGS.out}")
  return 0


def run():
  cli.run(main, _define_flags, required=["weights", "out"])


if __name__ == "__main__":
  run()
