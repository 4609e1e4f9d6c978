"""Samples whose image cannot be read, handled by `config.data.bad_samples`.

'skip': the sample reaches the model blank and fully masked (it trains and counts for
nothing, and batch shapes stay static), and it is listed in `bad_samples.json` in the
workdir with the reason and how often it was met. 'fail': the run stops at the first
one with an error naming the file, after saving nothing new and losing nothing saved.

Batches carry a `problem` column ('' or 'file: reason' per sample) from the decoder,
which runs in grain's worker processes; this host-side ledger takes it out of each
batch before the batch goes to the devices.
"""

import json
import os

from fashion_jax.errors import ConfigError, DataError

PROBLEM = "problem"
POLICIES = ("skip", "fail")


def check_policy(policy: str) -> None:
  if policy not in POLICIES:
    raise ConfigError(f"config.data.bad_samples={policy!r} is not one of {POLICIES}.")


class BadSamples:
  """The bad samples a run has met; `take` each host batch through it."""

  def __init__(self, policy: str, report_path: str | None = None):
    check_policy(policy)
    self.policy = policy
    self.report_path = report_path
    self.samples: dict[str, dict] = {}
    self._unsaved = False

  def take(self, batch: dict, split: str) -> dict:
    """`batch` without its problem column, after recording (or failing on) its problems."""
    batch = dict(batch)
    for problem in batch.pop(PROBLEM).tolist():
      if problem:
        self._record(str(problem), split)
    return batch

  def _record(self, problem: str, split: str) -> None:
    where, _, reason = problem.partition(": ")
    if self.policy == "fail":
      raise DataError(f"Unreadable image {where} ({split} split): {reason}. Fix or remove "
                      "it, or set config.data.bad_samples=skip to train without it.")
    entry = self.samples.setdefault(where, {"reason": reason, "splits": [], "seen": 0})
    entry["seen"] += 1
    if split not in entry["splits"]:
      entry["splits"].append(split)
    self._unsaved = True

  def save(self) -> None:
    """Writes the report (atomically) when there is something new to say."""
    if not self._unsaved or not self.report_path:
      return
    report = {"policy": self.policy, "count": len(self.samples), "samples": self.samples}
    tmp = f"{self.report_path}.tmp"
    with open(tmp, "w") as f:
      json.dump(report, f, indent=1)
    os.replace(tmp, self.report_path)
    self._unsaved = False
