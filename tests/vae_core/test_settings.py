"""settings_in_force: the one answer to "which beta, lr, free bits, warm-up and schedule does
this run use now", from its config and the trainer's control rows / heartbeat."""

from __future__ import annotations

import math

from vae_core.config import TrainConfig
from vae_core.settings import Settings, settings_in_force

CFG = TrainConfig(
    dataset="shapes", beta=4.0, lr=3e-4, free_bits=0.0, beta_schedule="linear", warmup_steps=500
)


def test_without_changes_the_config_is_in_force() -> None:
    assert settings_in_force(CFG) == Settings(
        beta=4.0, lr=3e-4, free_bits=0.0, beta_schedule="linear", warmup_steps=500
    )
    assert settings_in_force(None) == Settings()  # TrainConfig's defaults


def test_later_rows_win_and_each_row_changes_only_what_it_carries() -> None:
    rows = [
        {"step": 100, "event": "control", "changed": ["beta"], "beta": 1.0, "lr": 3e-4},
        {"step": 250, "event": "control", "changed": ["free_bits"], "free_bits": 0.5},
        {"beta": 2.0, "lr": 1e-4},  # the heartbeat: no step, no "changed"
    ]
    settings = settings_in_force(CFG, rows)
    assert (settings.beta, settings.lr, settings.free_bits) == (2.0, 1e-4, 0.5)
    assert (settings.beta_schedule, settings.warmup_steps) == ("linear", 500)
    assert settings.changed_at == 250.0  # the heartbeat changed nothing the trainer logged


def test_a_row_that_changed_nothing_does_not_restart_the_evidence() -> None:
    rows = [{"step": 40, "event": "control", "command": "pause", "changed": [], "beta": 4.0}]
    assert settings_in_force(CFG, rows).changed_at == -math.inf


def test_values_that_are_not_valid_settings_are_skipped() -> None:
    rows = [
        {
            "step": 10,
            "beta": -1.0,  # out of range
            "lr": None,  # a heartbeat from before the first step
            "free_bits": True,  # a bool is not a number
            "beta_schedule": "sawtooth",
            "warmup_steps": 12.5,  # not a whole number of steps
        },
        {"beta_schedule": "cyclical", "warmup_steps": 2000.0},
    ]
    settings = settings_in_force(CFG, rows)
    assert (settings.beta, settings.lr, settings.free_bits) == (4.0, 3e-4, 0.0)
    assert settings.beta_schedule == "cyclical"
    assert settings.warmup_steps == 2000 and isinstance(settings.warmup_steps, int)
