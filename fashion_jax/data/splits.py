"""Deterministic, stratified train/val/test splits."""

import numpy as np
from fashion_jax.errors import ConfigError

SPLITS = ("train", "val", "test")


def stratified_split(strata: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int, where: str = "config.datasets.<name>") -> dict[str, np.ndarray]:
  """Splits row indices so every stratum is spread over the splits in proportion.

  Within each stratum the rows are permuted by `seed`, then the first
  round(n * test_fraction) go to test, the next round(n * val_fraction) to val, the
  rest to train. A stratum too small to give a split a row keeps it in train, so
  rare classes are never evaluated without being trained on.
  """
  if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ConfigError(f"{where}.val_fraction={val_fraction} and test_fraction="
                     f"{test_fraction} must be in [0, 1) and sum to less than 1.")
  rng = np.random.default_rng(seed)
  parts = {s: [] for s in SPLITS}
  for value in sorted(set(strata.tolist())):
    rows = np.flatnonzero(strata == value)
    rows = rows[rng.permutation(len(rows))]
    n_test = int(round(len(rows) * test_fraction)) if len(rows) >= 3 else 0
    n_val = int(round(len(rows) * val_fraction)) if len(rows) >= 3 else 0
    parts["test"].append(rows[:n_test])
    parts["val"].append(rows[n_test:n_test + n_val])
    parts["train"].append(rows[n_test + n_val:])
  return {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}
