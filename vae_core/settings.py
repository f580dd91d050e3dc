"""The settings in force (beta, lr, free bits, warm-up, schedule): one pure function that the
sidebar, the health alarms and the CLI all ask, so that no two places can disagree.

A run starts with its TrainConfig's values; every live change the trainer applies is logged
as a control row carrying all five (metrics.jsonl), and its heartbeat (status.json) carries
the beta and lr it uses now. Later rows win; a value that is not a valid setting is skipped
(metrics.jsonl and status.json are files anyone can edit). No torch, no numpy: the sidebar
asks it on the first page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vae_core.config import TrainConfig, check_live_setting

SETTING_NAMES = ("beta", "lr", "free_bits", "beta_schedule", "warmup_steps")


@dataclass(frozen=True)
class Settings:
    """The settings in force: the config's, then the newest live change's."""

    beta: float = 1.0  # the target beta, which a schedule ramps towards
    lr: float = 1e-3
    free_bits: float = 0.0
    beta_schedule: str = "linear"
    warmup_steps: int = 0
    changed_at: float = -math.inf  # step of the last live change: evidence starts after it


def settings_in_force(
    config: TrainConfig | None, changes: Iterable[Mapping[str, Any]] = ()
) -> Settings:
    """The settings in force for a run started with `config` (None: the defaults) after
    `changes`, oldest first: the trainer's control rows (metrics.jsonl events "control"),
    then, where a reader has it, its heartbeat ({"beta": status.beta, "lr": status.lr}).
    `changed_at` is the step of the newest row that says it changed something."""
    base = config or TrainConfig()
    values: dict[str, Any] = {name: getattr(base, name) for name in SETTING_NAMES}
    changed_at = -math.inf
    for row in changes:
        for name in SETTING_NAMES:
            value = _valid(name, row.get(name))
            if value is not None:
                values[name] = value
        step = row.get("step")
        if row.get("changed") and isinstance(step, int | float) and not isinstance(step, bool):
            changed_at = float(step)
    return Settings(**values, changed_at=changed_at)


def _valid(name: str, value: Any) -> float | int | str | None:
    """`value` as the setting `name` takes it, or None when absent or not a valid one."""
    if value is None:
        return None
    try:
        return check_live_setting(name, value)
    except ValueError:
        return None
