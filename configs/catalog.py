r"""Your own catalog: a product table (CSV, TSV, JSON lines or Parquet) with image paths,
the tasks named on the command line, fine-tuned from the ImageNet EfficientNet-Lite0 that
pip installs (configs/mtl_pretrained.py's recipe, 96 px: every layer from the first step
at one learning rate, so no stage has a step count that a small shop's run could be
shorter than; predictions average each photo with its mirror image, at twice the
inference cost: --config.test_time_flip=false turns that off): a shop's few thousand
photos need pretrained features most.

    python -m fashion_jax.main --config=configs/catalog.py --workdir=runs/shop \
        --config.datasets.catalog.root=/data/shop/products.csv \
        --config.catalog.softmax=category,colour --config.catalog.multilabel=tags \
        --config.catalog.identity=sku

    # A folder per class (root/<class>/<image>) instead of a table:
    python -m fashion_jax.main --config=configs/catalog.py:image_folder --workdir=runs/folders \
        --config.datasets.catalog.root=/data/shop/by_class --config.catalog.softmax=label

Columns: `image_column` (default 'image'), `id_column`, `split_column` (train/val/test;
without one the split is stratified on the first softmax column) under
`config.datasets.catalog`; see fashion_jax/data/catalog.py. From scratch instead (a
large catalog, or photos far from ImageNet's): --config.model.name=resnet50
--config.model.pretrained= (configs/mtl.py's ResNet-50). The tasks are expanded from
`config.catalog` when the run starts (fashion_jax/catalog_tasks.py) and stored in the
run's config.json.
"""

import ml_collections

from fashion_jax.config_lib import load_sibling_config
from fashion_jax.data.sources import dataset_config


def get_config(source: str = "catalog"):
  """`source`: catalog (a table) or image_folder."""
  config = load_sibling_config(__file__, "mtl_pretrained")
  config.datasets = {"catalog": dataset_config(source)}
  config.datasets.catalog.sampler = "auto"  # P x K identities when catalog.identity is set.
  config.catalog = ml_collections.ConfigDict(dict(softmax="", multilabel="", identity="",
                                                  dataset="catalog"))
  config.tasks = {}
  config.hierarchy = ""
  config.num_epochs = 10
  config.checkpoint.best_metric = ""  # The tasks are the shop's: the final weights are kept.
  config.early_stopping.patience = 0  # Nor is there a metric to stop on.
  return config
