r"""DeepFashion Category and Attribute Prediction: multi-label attributes.

    python -m fashion_jax.main --config=configs/deepfashion_attributes.py --workdir=runs/df_attr \
        --config.datasets.deepfashion.root=/path/to/Category_and_Attribute_Prediction_Benchmark

Coarse set (default): 1,000 attributes, one sigmoid each; positives are rare (a few per
image), so each attribute's positive term is weighted by its negative/positive ratio in
the training split (capped at 50). Reports the benchmark's top-3/top-5 recall, micro-
and macro-F1 at 0.5, Hamming loss and mAP.

`configs/deepfashion_attributes.py:fine` reads Anno_fine/ (26 attributes in 6 groups:
texture, sleeve, length, neckline, fabric, fit) and also reports each group's arg-max
accuracy. Add `--config.tasks.<name>=...` entries with kind softmax and column
attribute_<group> to train a group as one softmax instead.
"""

from fashion_jax.config_lib import load_sibling_config
from fashion_jax.tasks import task_config


def get_config(annotations: str = "coarse"):
  # The category config's data, model and schedule; attributes instead of category.
  config = load_sibling_config(__file__, "deepfashion_category", annotations)
  config.tasks = {"attributes": task_config(
      "sigmoid", "attributes", auto_pos_weight=True, max_pos_weight=50.0, top_k=(3, 5),
      group_separator="/" if annotations == "fine" else "")}
  config.optimizer.update(dict(name="adamw", schedule="one_cycle", learning_rate=2e-3,
                               weight_decay=0.05, warmup_steps=1000))
  config.checkpoint.best_metric = "val/attributes/top5_recall"
  return config
