r"""Everything on one backbone (the packaged ImageNet EfficientNet-Lite0, as
deepfashion_mtl.py): the seven product labels, DeepFashion category and attributes, and
In-shop retrieval.

    python -m fashion_jax.main --config=configs/mtl_all.py --workdir=runs/mtl_all \
        --config.datasets.products.root=/path/to/fashion-product-images \
        --config.datasets.deepfashion.root=/path/to/Category_and_Attribute_Prediction_Benchmark \
        --config.datasets.inshop.root=/path/to/In-shop_Clothes_Retrieval_Benchmark

Three datasets mixed by weight (grain's dataset mixing); each sample carries only its
own dataset's labels and the per-task masks keep every loss to its own samples. The
product images train the seven softmax heads and the product embedding, DeepFashion
the category softmax and attribute sigmoids, In-shop the item embedding (its share of
each batch comes in runs of 4 images per item, so batch-hard triplets find positives).
"""

from fashion_jax.config_lib import load_sibling_config


def get_config():
  config = load_sibling_config(__file__, "default")
  products = load_sibling_config(__file__, "mtl")
  deepfashion = load_sibling_config(__file__, "deepfashion_mtl")
  config.datasets = {"products": products.datasets.products, **deepfashion.datasets}
  config.datasets.products.weight = 2.0
  config.datasets.deepfashion.weight = 2.0
  config.datasets.inshop.weight = 1.0
  config.tasks = {**{name: {**task, "dataset": "products"}
                     for name, task in products.tasks.items() if name != "embedding"},
                  "product_embedding": {**products.tasks.embedding, "dataset": "products"},
                  **deepfashion.tasks}
  config.data.image_size = 128
  config.model = deepfashion.model  # Its frozen heads stage needs the ImageNet weights.
  config.batch_size = 64
  config.num_train_steps = 50000
  config.stages = deepfashion.stages
  # Eleven tasks on three datasets: Dynamic Weight Average keeps slow tasks in play.
  config.loss_balancing.name = "dwa"
  # Meant for accelerators: bfloat16 activations, and 2 batches per update (effective 128).
  config.model.dtype = "bfloat16"
  config.optimizer.accumulate_steps = 2
  config.checkpoint.best_metric = "val/articleType/accuracy"
  return config
