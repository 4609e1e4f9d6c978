"""Staged training: consecutive step ranges with their own loss weights and frozen parts.

`config.stages` maps a stage name to {until_step, tasks, frozen_backbone}. A stage runs
from the step after the previous stage's `until_step` through its own (-1 = to the end
of training; exactly one stage has it), so the order is set by `until_step`, not by
names. `tasks` is '' (every task at its configured weight) or a comma-separated list of
`name` or `name:weight`; tasks not listed have weight 0 in that stage. No stages = one
stage of everything.

The stage of a step is a function of the step number and the config alone, so a run
restored from a checkpoint continues in the right stage.
"""

import dataclasses

from fashion_jax.errors import ConfigError

STAGE_FIELDS = {"until_step", "tasks", "frozen_backbone"}


@dataclasses.dataclass(frozen=True)
class Stage:
  name: str
  start: int  # First step (1-based) of the stage.
  end: int  # Last step, inclusive.
  tasks: tuple  # The tasks with this stage's weights.
  frozen_backbone: bool


def _weights(spec: str, tasks, where: str) -> dict[str, float]:
  if not spec.strip():
    return {t.name: t.weight for t in tasks}
  names = {t.name for t in tasks}
  weights = {name: 0.0 for name in names}
  configured = {t.name: t.weight for t in tasks}
  for item in spec.split(","):
    name, _, weight = item.strip().partition(":")
    if name not in names:
      raise ConfigError(f"{where}.tasks: unknown task {name!r}; tasks are {sorted(names)}.")
    try:
      weights[name] = float(weight) if weight else configured[name]
    except ValueError as e:
      raise ConfigError(f"{where}.tasks: weight {weight!r} of {name} is not a number.") from e
  return weights


def parse_stages(stages_config, tasks, total_steps: int) -> list[Stage]:
  """Validates `config.stages` against the tasks and the run length."""
  if not stages_config:
    return [Stage("all", 1, total_steps, tuple(tasks), False)]
  entries = []
  for name, entry in stages_config.items():
    where = f"config.stages.{name}"
    if set(entry) != STAGE_FIELDS:
      raise ConfigError(f"{where}: expected the fields {sorted(STAGE_FIELDS)}, got "
                        f"{sorted(entry)}.")
    until = int(entry["until_step"])
    if until == -1:
      until = total_steps
    elif not 0 < until < total_steps:
      raise ConfigError(f"{where}.until_step={until}: must be in 1..{total_steps - 1} "
                        f"(training has {total_steps} steps), or -1 for the last stage.")
    entries.append((until, name, entry, where))
  entries.sort(key=lambda e: e[0])
  ends = [e[0] for e in entries]
  if len(set(ends)) != len(ends) or ends[-1] != total_steps:
    raise ConfigError("config.stages: each stage needs its own until_step and exactly one "
                      f"must be -1 (to the end); got {[e[0] for e in entries]}.")
  stages, start = [], 1
  for until, name, entry, where in entries:
    weights = _weights(str(entry["tasks"]), tasks, where)
    if not any(weights.values()):
      raise ConfigError(f"{where}.tasks: every task has weight 0; nothing would train.")
    stage_tasks = tuple(dataclasses.replace(t, weight=weights[t.name]) for t in tasks)
    stages.append(Stage(name, start, until, stage_tasks, bool(entry["frozen_backbone"])))
    start = until + 1
  return stages


def stage_at(stages: list[Stage], step: int) -> Stage:
  for stage in stages:
    if stage.start <= step <= stage.end:
      return stage
  raise ValueError(f"step {step} is outside every stage")
