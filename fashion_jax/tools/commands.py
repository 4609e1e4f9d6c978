r"""The command line: `python -m fashion_jax <command> [flags]`, or `fashion-jax <command>`.

    python -m fashion_jax --help              every command, one line each
    python -m fashion_jax evaluate --help     one command's flags

Training is also `python -m fashion_jax.main --config=... --workdir=...`. A command is a
module in fashion_jax/tools/ with a `run()` that parses its flags, calls the library and
prints; adding one is that module and one line in `COMMANDS`.
"""

import sys

from fashion_jax import registry

# name -> (module, what it does in one line).
COMMANDS = {
    "train": ("fashion_jax.main", "Train and evaluate a model from a config file."),
    "evaluate": ("fashion_jax.tools.evaluate",
                 "Score a trained run on a split or any labelled data: metrics, reports, plots."),
    "predict": ("fashion_jax.tools.predict", "Tag images with a trained run: one JSON line each."),
    "compare": ("fashion_jax.tools.compare", "Compare trained runs: a metric table and a chart."),
    "inspect_data": ("fashion_jax.tools.inspect_data",
                     "Check a dataset before training: every problem, row by row."),
    "prepare": ("fashion_jax.tools.prepare",
                "Pack a dataset into ArrayRecord shards, or download a catalog's image URLs."),
    "build_tfds": ("fashion_jax.tools.build_tfds", "Build the TFDS dataset of the product images."),
    "verify_deepfashion": ("fashion_jax.tools.verify_deepfashion",
                           "Check an unpacked DeepFashion folder against the release."),
    "pretrained": ("fashion_jax.tools.pretrained",
                   "Convert torchvision / timm ImageNet weights for config.model.pretrained."),
    "export": ("fashion_jax.tools.export", "Export a run for serving: jax.export and ONNX."),
    "audit": ("fashion_jax.tools.audit",
              "Audit a catalog: likely wrong labels, missing labels, near-duplicates."),
    "index": ("fashion_jax.tools.index",
              "Build, inspect and search a catalog index (FAISS) of a model's outputs."),
    "search": ("fashion_jax.tools.search", "Visual search over a folder of product images."),
    "serve": ("fashion_jax.tools.serve", "Serve a model over HTTP with a catalog and a web page."),
}
TOOLS = registry.Registry("command", {name: module for name, (module, _) in COMMANDS.items()})
PROGRAM = "python -m fashion_jax"


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = [f"usage: {PROGRAM} <command> [flags]   ({PROGRAM} <command> --help: its flags)",
           "", "commands:"]
  lines += [f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
  return "\n".join(lines)


def main(argv=None) -> None:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(usage())
    sys.exit(0 if len(argv) >= 2 else 2)
  name = argv[1]
  if name not in COMMANDS:
    print(f"fashion_jax: unknown command {name!r}.\n\n{usage()}", file=sys.stderr)
    sys.exit(2)
  tool = TOOLS[name]
  # absl's --help shows the __main__ module's docstring and the flags that the module
  # named by argv[0] defined: the tool's.
  sys.modules["__main__"].__doc__ = tool.__doc__
  sys.argv = [tool.__name__, *argv[2:]]
  tool.run()
