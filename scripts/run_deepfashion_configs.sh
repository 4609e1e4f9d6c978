#!/bin/bash
# Trains every DeepFashion config with a ResNet-50 on a synthetic DeepFashion tree,
# 60 steps each, and prints each run's final metrics. A check that the real-size
# model runs end to end on the real file formats (the tree's labels are random, so
# the figures are not accuracy).
#
#   python scripts/make_deepfashion_tree.py --out=/tmp/df600 --images=600 \
#       --images-from=/path/to/fashion-product-images
#   bash scripts/run_deepfashion_configs.sh /tmp/df600 /tmp/df_runs
set -u
TREE=${1:?usage: run_deepfashion_configs.sh TREE OUT [extra flags]}
OUT=${2:?usage: run_deepfashion_configs.sh TREE OUT [extra flags]}
shift 2
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
COMMON=(--config.model.name=resnet50 --config.data.image_size=96 --config.batch_size=32
        --config.num_train_steps=60 --config.eval_every_steps=60
        --config.checkpoint.every_steps=60 --config.optimizer.warmup_steps=10
        --config.log_every_steps=10 "$@")
CAT=--config.datasets.deepfashion.root=$TREE/category_attribute
INSHOP=--config.datasets.inshop.root=$TREE/inshop
run() {
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  local start=$SECONDS
  python -m fashion_jax.main --workdir="$OUT/$name" "$@" "${COMMON[@]}" > "$OUT/$name.log" 2>&1
  echo "== $name: exit $?, $((SECONDS - start)) s"
  sed -n '/^Final metrics/,$p' "$OUT/$name.log"
}
run category --config=configs/deepfashion_category.py "$CAT"
run attributes --config=configs/deepfashion_attributes.py "$CAT"
run attributes_fine --config=configs/deepfashion_attributes.py:fine "$CAT"
run inshop --config=configs/deepfashion_inshop.py "$INSHOP"
run deepfashion_mtl --config=configs/deepfashion_mtl.py "$CAT" "$INSHOP" --config.stages.heads.until_step=20
run mtl_all --config=configs/mtl_all.py "$CAT" "$INSHOP" --config.stages.heads.until_step=20
