"""Checks of single config fields, each failing with a message that names the field.

The modules that own a group of fields (optim, tasks, data.sources, ...) check them with
these; `validation.validate_config` runs every group before a run reads data or writes
its workdir. `field` is the path as a user types it after `--config.`.
"""

import math
import os
from typing import Any, Collection

from fashion_jax.errors import ConfigError


def _interval(low, high, low_open: bool, high_open: bool) -> str:
  if high is None:
    return f"{'>' if low_open else '>='} {low}"
  if low is None:
    return f"{'<' if high_open else '<='} {high}"
  return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def number(value: Any, field: str, low=None, high=None, *, low_open: bool = False,
           high_open: bool = False, integer: bool = False) -> None:
  """`value` is a (finite) number, an integer if asked, within the bounds given."""
  kind = "an integer" if integer else "a number"
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  ok = ok and (float(value).is_integer() if integer else math.isfinite(value))
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value < high if high_open else value <= high
  if not ok:
    bounds = "" if low is None and high is None else " " + _interval(low, high, low_open,
                                                                     high_open)
    raise ConfigError(f"config.{field}={value!r} must be {kind}{bounds}.")


def choice(value: Any, field: str, allowed: Collection) -> None:
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of {sorted(allowed)}.")


def fraction_range(value: Any, field: str) -> None:
  """A (min, max) pair with 0 < min <= max <= 1."""
  try:
    low, high = (float(v) for v in value)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.{field}={value!r} must be a pair (min, max).") from e
  if not 0 < low <= high <= 1:
    raise ConfigError(f"config.{field}={tuple(value)}: need 0 < min <= max <= 1.")


def existing_file(value: Any, field: str) -> None:
  """'' (unset) or the path of a file that exists."""
  if value and not os.path.isfile(value):
    raise ConfigError(f"config.{field}={value!r}: no such file.")


def non_empty_string(value: Any, field: str) -> None:
  if not isinstance(value, str) or not value:
    raise ConfigError(f"config.{field}={value!r} must be a non-empty string.")
