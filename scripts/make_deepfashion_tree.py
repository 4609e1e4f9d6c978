r"""Builds a small DeepFashion tree in the official file formats, from real product images.

    python scripts/make_deepfashion_tree.py --out=/tmp/deepfashion [--images=120]

Writes `<out>/category_attribute/` (Category and Attribute Prediction, coarse: Anno/,
Eval/, img/...) and `<out>/inshop/` (In-shop Clothes Retrieval: Eval/, Anno/, img/...)
with paths, counts, headers and spacing as in the real release, so the readers and
training can be tried without the 30 GB download. Labels are drawn from the images'
real article types where they fit, else at random (seeded); they are for exercising
the code, not for measuring accuracy.
"""

import argparse
import csv
import os
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fashion_jax.data.product_images import SAMPLE_DIR  # noqa: E402

# The 50 categories of the benchmark, with their types (1 upper, 2 lower, 3 full body).
CATEGORIES = [
    ("Anorak", 1), ("Blazer", 1), ("Blouse", 1), ("Bomber", 1), ("Button-Down", 1),
    ("Cardigan", 1), ("Flannel", 1), ("Halter", 1), ("Henley", 1), ("Hoodie", 1),
    ("Jacket", 1), ("Jersey", 1), ("Parka", 1), ("Peacoat", 1), ("Poncho", 1),
    ("Sweater", 1), ("Tank", 1), ("Tee", 1), ("Top", 1), ("Turtleneck", 1),
    ("Capris", 2), ("Chinos", 2), ("Culottes", 2), ("Cutoffs", 2), ("Gauchos", 2),
    ("Jeans", 2), ("Jeggings", 2), ("Jodhpurs", 2), ("Joggers", 2), ("Leggings", 2),
    ("Sarong", 2), ("Shorts", 2), ("Skirt", 2), ("Sweatpants", 2), ("Sweatshorts", 2),
    ("Trunks", 2), ("Caftan", 3), ("Cape", 3), ("Coat", 3), ("Coverup", 3), ("Dress", 3),
    ("Jumpsuit", 3), ("Kaftan", 3), ("Kimono", 3), ("Nightdress", 3), ("Onesie", 3),
    ("Robe", 3), ("Romper", 3), ("Shirtdress", 3), ("Sundress", 3),
]
_ARTICLE_TO_CATEGORY = {"Tshirts": "Tee", "Shirts": "Button-Down", "Tops": "Top",
                        "Sweaters": "Sweater", "Kurtas": "Caftan"}
# Attribute names contain spaces in the real list; the type is the last field.
_ATTRIBUTE_WORDS = ["abstract", "floral", "striped", "chevron", "denim", "knit", "lace",
                    "a-line", "maxi", "sleeveless", "v-neck", "crew neck", "boho", "chic"]


def _write_list(path: str, header: str, rows: list[str]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(f"{len(rows)}\n{header}\n")
    f.write("".join(r + "\n" for r in rows))


def _sample_rows(n: int, images_from: str = SAMPLE_DIR):
  """The first n rows of `<images_from>/styles.csv` whose image exists, with its path."""
  with open(os.path.join(images_from, "styles.csv")) as f:
    rows = []
    for row in csv.DictReader(f):
      path = os.path.join(images_from, "images", f"{row['id']}.jpg")
      if row.get("articleType") and os.path.exists(path):
        rows.append({**row, "path": path})
      if len(rows) == n:
        break
  return rows


def make_category_attribute(out: str, rows, num_attributes: int, rng) -> None:
  root = os.path.join(out, "category_attribute")
  attributes = []
  for i in range(num_attributes):
    word = _ATTRIBUTE_WORDS[i % len(_ATTRIBUTE_WORDS)]
    attributes.append((word if i < len(_ATTRIBUTE_WORDS) else f"{word} {i}", 1 + i % 5))
  names, cats, attrs, boxes, status = [], [], [], [], []
  split_cycle = ["train"] * 6 + ["val", "test"]
  category_index = {c: i for i, (c, _) in enumerate(CATEGORIES)}
  for k, row in enumerate(rows):
    category = _ARTICLE_TO_CATEGORY.get(row["articleType"],
                                        CATEGORIES[rng.integers(len(CATEGORIES))][0])
    folder = f"img/{row['articleType'].replace(' ', '_')}_{category}"
    name = f"{folder}/img_{k + 1:08d}.jpg"
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    shutil.copy(row["path"], os.path.join(root, name))
    names.append(name)
    cats.append(category_index[category] + 1)
    labels = np.where(rng.random(num_attributes) < 0.1, 1, -1)
    labels[rng.random(num_attributes) < 0.05] = 0  # The release also has zeros.
    attrs.append(labels)
    boxes.append((rng.integers(0, 40), rng.integers(0, 40), rng.integers(180, 224),
                  rng.integers(180, 224)))
    status.append(split_cycle[k % len(split_cycle)])
  width = max(len(n) for n in names) + 2
  _write_list(os.path.join(root, "Anno", "list_category_cloth.txt"),
              "category_name  category_type", [f"{c:<24}{t}" for c, t in CATEGORIES])
  _write_list(os.path.join(root, "Anno", "list_attr_cloth.txt"),
              "attribute_name  attribute_type", [f"{a:<29}{t}" for a, t in attributes])
  _write_list(os.path.join(root, "Anno", "list_category_img.txt"),
              "image_name  category_label", [f"{n:<{width}}{c}" for n, c in zip(names, cats)])
  _write_list(os.path.join(root, "Anno", "list_attr_img.txt"), "image_name  attribute_labels",
              [f"{n:<{width}}" + " ".join(f"{v:>2}" for v in a) for n, a in zip(names, attrs)])
  _write_list(os.path.join(root, "Anno", "list_bbox.txt"), "image_name  x_1  y_1  x_2  y_2",
              [f"{n:<{width}}" + " ".join(f"{v:03d}" for v in b) for n, b in zip(names, boxes)])
  _write_list(os.path.join(root, "Eval", "list_eval_partition.txt"),
              "image_name  evaluation_status", [f"{n:<{width}}{s}" for n, s in zip(names, status)])


def make_inshop(out: str, rows, rng) -> None:
  root = os.path.join(out, "inshop")
  names, items, status, boxes = [], [], [], []
  views = ["1_front", "2_side", "3_back", "4_full"]
  per_item = 3
  for k in range(0, len(rows) - per_item + 1, per_item):
    item = f"id_{k // per_item + 1:08d}"
    group = "WOMEN" if rows[k]["gender"] == "Women" else "MEN"
    kind = rows[k]["articleType"].replace(" ", "_")
    # Items alternate between training and evaluation; an evaluation item has one
    # query image and the rest in the gallery, as in the release.
    evaluation = (k // per_item) % 3 == 2
    for v in range(per_item):
      name = f"img/{group}/{kind}/{item}/{v + 1:02d}_{views[v % len(views)]}.jpg"
      os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
      shutil.copy(rows[k + v]["path"], os.path.join(root, name))
      names.append(name)
      items.append(item)
      status.append(("query" if v == 0 else "gallery") if evaluation else "train")
      boxes.append((1, 1, rng.integers(0, 30), rng.integers(0, 30), rng.integers(190, 224),
                    rng.integers(190, 224)))
  width = max(len(n) for n in names) + 2
  _write_list(os.path.join(root, "Eval", "list_eval_partition.txt"),
              "image_name item_id evaluation_status",
              [f"{n:<{width}}{i}  {s}" for n, i, s in zip(names, items, status)])
  _write_list(os.path.join(root, "Anno", "list_bbox_inshop.txt"),
              "image_name  clothes_type  pose_type  x_1  y_1  x_2  y_2",
              [f"{n:<{width}}" + "  ".join(str(v) for v in b) for n, b in zip(names, boxes)])


# The fine set's attribute groups (texture 7, sleeve 3, length 3, neckline 4, fabric 6, fit 3).
_FINE_GROUPS = ((1, ["floral", "graphic", "striped", "embroidered", "pleated", "solid", "lattice"]),
                (2, ["long_sleeve", "short_sleeve", "sleeveless"]),
                (3, ["maxi_length", "mini_length", "no_dress"]),
                (4, ["crew_neckline", "v_neckline", "square_neckline", "no_neckline"]),
                (5, ["denim", "chiffon", "cotton", "leather", "faux", "knit"]),
                (6, ["tight", "loose", "conventional"]))


def make_fine(out: str, rows, rng, group_indices: bool = False) -> None:
  """Anno_fine/ next to the coarse files; `group_indices` writes 6 indices per row."""
  root = os.path.join(out, "category_attribute")
  anno = os.path.join(root, "Anno_fine")
  os.makedirs(anno, exist_ok=True)
  _write_list(os.path.join(anno, "list_category_cloth.txt"), "category_name  category_type",
              [f"{c:<24}{t}" for c, t in CATEGORIES])
  _write_list(os.path.join(anno, "list_attr_cloth.txt"), "attribute_name  attribute_type",
              [f"{a:<29}{t}" for t, names in _FINE_GROUPS for a in names])
  with open(os.path.join(root, "Anno", "list_category_img.txt")) as f:
    coarse = [line.split() for line in f.read().splitlines()[2:]]
  splits = {"train": [], "val": [], "test": []}
  for k, (name, category) in enumerate(coarse):
    splits[("train", "train", "val", "test")[k % 4]].append((name, category))
  for split, items in splits.items():
    indices = [[int(rng.integers(len(names))) for _, names in _FINE_GROUPS] for _ in items]
    if group_indices:
      attr_rows = [" ".join(map(str, idx)) for idx in indices]
    else:
      attr_rows = []
      for idx in indices:
        flags = [int(i == j) for (_, names), i in zip(_FINE_GROUPS, idx) for j in range(len(names))]
        attr_rows.append(" ".join(map(str, flags)))
    for suffix, lines in (("", [n for n, _ in items]), ("_cate", [c for _, c in items]),
                          ("_attr", attr_rows),
                          ("_bbox", [f"{rng.integers(0, 40)} {rng.integers(0, 40)} "
                                     f"{rng.integers(180, 224)} {rng.integers(180, 224)}"
                                     for _ in items])):
      with open(os.path.join(anno, f"{split}{suffix}.txt"), "w") as f:
        f.write("".join(f"{line}\n" for line in lines))


def make_tree(out: str, num_images: int = 120, num_attributes: int = 40, seed: int = 0,
              fine_group_indices: bool = False, images_from: str = SAMPLE_DIR) -> str:
  rng = np.random.default_rng(seed)
  rows = _sample_rows(num_images, images_from)
  make_category_attribute(out, rows, num_attributes, rng)
  make_fine(out, rows, rng, fine_group_indices)
  make_inshop(out, rows, rng)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--images", type=int, default=120)
  parser.add_argument("--attributes", type=int, default=1000,
                      help="1000 as in the release; fewer for quick tests.")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--images-from", default=SAMPLE_DIR,
                      help="A fashion-product-images folder (styles.csv + images/); default: "
                           "the embedded sample (480 images).")
  args = parser.parse_args()
  make_tree(args.out, args.images, args.attributes, args.seed, images_from=args.images_from)
  print(f"Wrote a synthetic DeepFashion tree ({args.images} images) to {args.out}")


if __name__ == "__main__":
  main()
