r"""DeepFashion Category and Attribute Prediction: the 50-way clothing category.

    python -m fashion_jax.main --config=configs/deepfashion_category.py --workdir=runs/df_cat \
        --config.datasets.deepfashion.root=/path/to/Category_and_Attribute_Prediction_Benchmark

Uses the benchmark's own train/val/test partition (Eval/list_eval_partition.txt) and
crops each image to its annotated box plus 10%. Reports top-1/3/5 accuracy and macro-F1.
`configs/deepfashion_category.py:fine` reads the fine-grained Anno_fine/ set instead.
"""

from fashion_jax.config_lib import load_sibling_config
from fashion_jax.data.sources import dataset_config
from fashion_jax.tasks import task_config


def get_config(annotations: str = "coarse"):
  config = load_sibling_config(__file__, "default")
  config.datasets = {"deepfashion": dataset_config(
      "deepfashion_category", annotations=annotations, crop_to_box=True, box_margin=0.1)}
  config.data.image_size = 128
  config.model.name = "resnet50"
  config.tasks = {"category": task_config("softmax", "category", top_k=(3, 5))}
  config.batch_size = 64
  config.num_epochs = 10
  config.checkpoint.best_metric = "val/category/accuracy"
  return config
