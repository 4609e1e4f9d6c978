r"""DeepFashion In-shop Clothes Retrieval: an embedding trained with batch-hard triplets.

    python -m fashion_jax.main --config=configs/deepfashion_inshop.py --workdir=runs/df_inshop \
        --config.datasets.inshop.root=/path/to/In-shop_Clothes_Retrieval_Benchmark

Batches hold P items x K=4 images each (batch 64 = 16 items). The official query set
searches the official gallery (test split) by cosine similarity; Recall@k counts a
query as found when one of its k nearest gallery images shows the same item. 5% of
the training items are held out as a validation query/gallery set.
"""

from fashion_jax.config_lib import load_sibling_config
from fashion_jax.data.sources import dataset_config
from fashion_jax.tasks import task_config

RECALL_KS = (1, 5, 10, 20, 30, 40, 50)


def get_config():
  config = load_sibling_config(__file__, "default")
  config.datasets = {"inshop": dataset_config(
      "deepfashion_inshop", sampler="pk", images_per_identity=4, crop_to_box=True,
      box_margin=0.1)}
  config.data.image_size = 128
  config.model.name = "resnet50"
  config.tasks = {"embedding": task_config("embedding", "item_id", dim=128, margin=0.2,
                                           recall_ks=RECALL_KS)}
  config.batch_size = 64
  config.num_epochs = 20
  config.checkpoint.best_metric = "val/embedding/recall_at_1"
  return config
