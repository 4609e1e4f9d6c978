r"""A TensorFlow Datasets definition of fashion-product-images, and the `tfds` source.

Build it once from the Kaggle layout (styles.csv + images/<id>.jpg) into a TFDS data dir
(ArrayRecord files, so that grain can read them with random access):

    python -m fashion_jax build_tfds --manual_dir=/data/fashion-product-images \
        --data_dir=/data/tensorflow_datasets

then train from it with `source: tfds`:

    python -m fashion_jax.main --config=configs/mtl.py --workdir=runs/mtl_tfds \
        --config.datasets.products.source=tfds \
        --config.datasets.products.root=/data/tensorflow_datasets

Reading goes through `tfds.data_source`, which needs neither TensorFlow nor this module's
builder class: any TFDS dataset with an encoded `image` feature and text label features
of the names the tasks read works (`tfds_name`, `tfds_split`). Images stay encoded
(the pipeline decodes them, as for every source). tensorflow-datasets is the `[tfds]` extra
and is imported only here.
"""

import os

from fashion_jax.data import product_images, sources
from fashion_jax.data.report import DataReport
from fashion_jax.data.table import make_table
from fashion_jax.errors import DataError

NAME = sources.TFDS_NAME
LABEL_COLUMNS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour",
                 "season", "year", "usage")


def _tfds():
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError("The 'tfds' source needs tensorflow-datasets: "
                    "pip install 'fashion_jax[tfds]'.") from e
  return tfds


def builder_class():
  """The `FashionProductImages` builder (defined on first use: it subclasses a tfds class)."""
  tfds = _tfds()

  class FashionProductImages(tfds.core.GeneratorBasedBuilder):
    """Kaggle fashion-product-images: product photos with eight label columns."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Kaggle layout; all rows in 'train' (no official split)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-small "
        "and pass the folder holding styles.csv and images/ as manual_dir.")

    def _info(self):
      features = {"image": tfds.features.Image(encoding_format="jpeg"),
                  "id": tfds.features.Text(),
                  **{c: tfds.features.Text() for c in LABEL_COLUMNS}}
      return self.dataset_info_from_configs(
          features=tfds.features.FeaturesDict(features),
          homepage="https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-dataset",
          description="Product photos, each with gender, category levels, colour, season, "
                      "year and usage labels ('' where the CSV has none).",
          # Rows stay in styles.csv order (keyed by row number), so the pipeline's split,
          # which depends on row order, is the one the Kaggle folder itself gives.
          disable_shuffling=True)

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(str(dl_manager.manual_dir))}

    def _generate_examples(self, root):
      report = DataReport(source=os.path.join(root, "styles.csv"))
      ids, values, paths = product_images.read_styles_csv(
          os.path.join(root, "styles.csv"), os.path.join(root, "images"), LABEL_COLUMNS,
          report)
      report.log()
      for i, (row_id, path) in enumerate(zip(ids, paths)):
        yield i, {"image": path, "id": row_id, **{c: values[c][i] for c in LABEL_COLUMNS}}

  FashionProductImages.name = NAME
  return FashionProductImages


def build(manual_dir: str, data_dir: str) -> str:
  """Builds the dataset in ArrayRecord format; returns the version's folder."""
  csv_path = os.path.join(manual_dir, "styles.csv")
  if not os.path.isfile(csv_path):
    raise DataError(f"{csv_path} not found: the manual dir must be the Kaggle folder that "
                    "holds styles.csv and images/.")
  tfds = _tfds()
  builder = builder_class()(data_dir=data_dir)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return str(builder.data_dir)


class TfdsImages:
  """Encoded images of a TFDS data source, by row (random access, no TensorFlow)."""

  def __init__(self, data_source, description: str):
    self.data_source = data_source
    self.description = description

  def __len__(self) -> int:
    return len(self.data_source)

  def __getitem__(self, index: int) -> bytes:
    return self.data_source[int(index)]["image"]

  def describe(self, index: int) -> str:
    return f"{self.description}[{index}]"

  def __repr__(self) -> str:
    return f"TfdsImages({self.description}, n={len(self.data_source)})"


def _text(value) -> str:
  return (value.decode("utf-8") if isinstance(value, bytes) else str(value)).strip()


def load_tfds(data_config, columns, seed: int, where: str):
  """The `tfds` source: a prepared TFDS dataset read with `tfds.data_source`."""
  tfds = _tfds()
  description = f"{data_config.tfds_name}/{data_config.tfds_split}"
  try:
    data_source = tfds.data_source(
        data_config.tfds_name, split=data_config.tfds_split, data_dir=data_config.root or None,
        download=False, decoders={"image": tfds.decode.SkipDecoding()})
  except Exception as e:  # tfds raises several types for "not prepared here".
    # Only the first line: tfds goes on to list every dataset it knows.
    reason = (str(e).strip().splitlines() or [""])[0]
    raise DataError(
        f"{where}: cannot open TFDS dataset {description!r} in "
        f"{data_config.root or 'the default data dir'} ({type(e).__name__}: {reason}). "
        "Build it with python -m fashion_jax build_tfds.") from e
  features = data_source.dataset_info.features
  missing = [c for c in ["image", *columns] if c not in features]
  if missing:
    raise DataError(f"{where}: TFDS dataset {description!r} has no feature(s) {missing}; "
                    f"it has {sorted(features)}.")
  report = DataReport(source=description)
  ids, values = [], {c: [] for c in columns}
  for i in range(len(data_source)):
    example = data_source[i]
    ids.append(_text(example["id"]) if "id" in example else str(i))
    for c in columns:
      value = _text(example[c])
      if not value:
        report.add(f"empty '{c}' labels (masked for that task)", f"{description}[{i}]")
      values[c].append(value)
  report.log()
  return make_table(TfdsImages(data_source, description), ids, values,
                            f"{where}: TFDS dataset {description!r}"), report
