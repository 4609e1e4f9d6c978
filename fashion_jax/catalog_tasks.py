"""Tasks from a short description of a shop's columns (`config.catalog`), so that a shop
trains without writing a config file:

    --config.catalog.softmax=category,colour      one softmax task per column
    --config.catalog.multilabel=tags              one sigmoid task per multi-valued column
    --config.catalog.identity=sku                 the retrieval embedding (positives share it)

Command-line overrides apply after `get_config()` returns, so the expansion runs in the
trainer's setup, before validation; the expanded tasks are what the run's config.json
stores (evaluate and predict read them from there). Expanding twice gives the same tasks.
"""

from fashion_jax.errors import ConfigError
from fashion_jax.tasks import task_config

FIELDS = ("softmax", "multilabel", "identity")


def _columns(value: str) -> list[str]:
  return [c.strip() for c in value.split(",") if c.strip()]


def expand(config) -> None:
  """Replaces `config.tasks` with the tasks `config.catalog` names (when it names any),
  and marks the multi-valued columns on its dataset. No `config.catalog`: unchanged."""
  catalog = config.get("catalog")
  if catalog is None:
    return
  softmax, multilabel = _columns(catalog.softmax), _columns(catalog.multilabel)
  identity = catalog.identity.strip()
  if not (softmax or multilabel or identity):
    raise ConfigError("config.catalog names no column: give the label columns to learn, "
                      "e.g. --config.catalog.softmax=category,colour "
                      "--config.catalog.multilabel=tags --config.catalog.identity=sku.")
  dataset = catalog.dataset
  if dataset not in config.datasets:
    raise ConfigError(f"config.catalog.dataset={dataset!r} is not one of config.datasets "
                      f"{sorted(config.datasets)}.")
  repeated = sorted({c for c in softmax + multilabel if (softmax + multilabel).count(c) > 1})
  if repeated:
    raise ConfigError(f"config.catalog: column(s) {repeated} named twice (softmax and "
                      "multilabel are one task per column).")
  tasks = {c: task_config("softmax", c, dataset=dataset, min_count=1,
                          class_weighting="effective_number", effective_beta=0.9)
           for c in softmax}
  tasks.update({c: task_config("sigmoid", c, dataset=dataset) for c in multilabel})
  if identity:
    tasks["embedding"] = task_config("embedding", identity, dataset=dataset, dim=128,
                                     margin=0.2)
  config.tasks = tasks
  dataset_config = config.datasets[dataset]
  if "multi_valued_columns" in dataset_config:
    dataset_config.multi_valued_columns = ",".join(multilabel)
