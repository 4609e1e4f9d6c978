r"""DeepFashion Category and Attribute Prediction: category (50-way softmax) and attributes.

    python -m fashion_jax.main --config=configs/deepfashion_category.py --workdir=runs/df_cat \
        --config.data.root=/path/to/Category_and_Attribute_Prediction_Benchmark

Uses the benchmark's own train/val/test partition (Eval/list_eval_partition.txt).
`--config.data.deepfashion_annotations=fine` reads Anno_fine/ (26 attributes) instead.
"""

from fashion_jax.config_lib import load_sibling_config
from fashion_jax.tasks import task_config


def get_config():
  config = load_sibling_config(__file__, "default")
  config.data.source = "deepfashion_category"
  config.data.stratify = "category"
  config.data.image_size = 128
  config.model.name = "resnet50"
  config.tasks = {
      "category": task_config("softmax", "category"),
      # Attributes are rare (a few positives in 1,000): weigh the positives up.
      "attributes": task_config("sigmoid", "attributes", weight=1.0, pos_weight=10.0,
                                min_count=1),
  }
  config.batch_size = 64
  config.num_epochs = 10
  config.checkpoint.best_metric = "val/category/accuracy"
  return config
