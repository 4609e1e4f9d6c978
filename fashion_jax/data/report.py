"""Collects the problems found in a dataset so that a run reports them instead of crashing."""

import collections
import dataclasses

from absl import logging

_EXAMPLES_SHOWN = 5


@dataclasses.dataclass
class DataReport:
  """Problems found while reading one source, grouped by kind.

  Each kind keeps a count and every place (file:line or id, with the reason where there
  is one), which is what a user needs to find and fix the rows; logs show the first few.
  """

  source: str
  counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  examples: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
  logged: set = dataclasses.field(default_factory=set)  # Kinds already logged.

  def add(self, kind: str, where: str) -> None:
    self.counts[kind] += 1
    self.examples[kind].append(where)

  def log(self) -> None:
    self.logged = set()
    self.log_new()

  def log_new(self) -> None:
    """Logs the kinds added since the last log."""
    for kind in sorted(set(self.counts) - self.logged):
      # The details; a run's console has one line per kind (training.experiment.describe),
      # and data_report.json every row.
      logging.info("%s: %d %s (first: %s)", self.source, self.counts[kind], kind,
                      ", ".join(self.examples[kind][:_EXAMPLES_SHOWN]))
    self.logged = set(self.counts)

  def to_dict(self) -> dict:
    return {"source": self.source,
            "problems": {k: {"count": c, "first": self.examples[k][:_EXAMPLES_SHOWN],
                             "all": self.examples[k]}
                         for k, c in sorted(self.counts.items())}}
