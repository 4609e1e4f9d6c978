r"""DeepFashion Category and Attribute Prediction: the 50-way clothing category.

    python -m fashion_jax.main --config=configs/deepfashion_category.py --workdir=runs/df_cat \
        --config.datasets.deepfashion.root=/path/to/Category_and_Attribute_Prediction_Benchmark

Uses the benchmark's own train/val/test partition (Eval/list_eval_partition.txt) and
crops each image to its annotated box plus 10%. Reports top-1/3/5 accuracy and macro-F1.
Effective-number class weights, crop/colour/erasing augmentation, SGD with step decay
and early stopping.
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
  # 50 categories from 7 to 70k images each: weigh classes by their effective number.
  config.tasks = {"category": task_config("softmax", "category", top_k=(3, 5),
                                          class_weighting="effective_number")}
  # Shop photos of people: crops, lighting changes and occlusion are realistic.
  config.augment.update(dict(crop_scale=(0.6, 1.0), brightness=0.2, contrast=0.2,
                             saturation=0.1, erase_probability=0.25))
  # The classic recipe: SGD with momentum, learning rate x0.1 at 60% and 85%.
  config.optimizer.update(dict(name="sgd", schedule="step", learning_rate=0.05,
                               momentum=0.9, weight_decay=1e-4, warmup_steps=500))
  config.batch_size = 64
  config.num_epochs = 10
  config.eval_every_steps = 2000
  config.early_stopping.patience = 4  # Evaluations without a better val accuracy.
  config.checkpoint.best_metric = "val/category/accuracy"
  return config
