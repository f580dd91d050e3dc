"""The Training view's health panel under AppTest: a run collapsing on purpose (beta = 20)
raises the collapse alarm, and its fix buttons write the right control.json; plus the
schedule and ELBO-gap panels, the adjustable active threshold and the New run form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import access, runs, state
from vae_core.config import FREE_BITS_RANGE, MIN_CYCLE_PERIOD, WARMUP_RANGE
from vae_core.rundir import RunDir

LATENT = 4


def _app(app_path: str, run: str | None = None) -> AppTest:
    at = AppTest.from_file(app_path, default_timeout=60)
    if run is not None:
        at.query_params[state.RUN_PARAM] = run
    return at.run()


def _collapsing_rows(n: int = 30) -> list[dict]:
    """A beta = 20 run whose KL sank to 1 nat with 1 of 4 dims active, as logged."""
    rows = []
    for i in range(1, n + 1):
        kl = 1.0 if i > 5 else 6.0
        recon = 300.0 - i
        rows.append(
            {
                "step": 10 * i,
                "epoch": 0,
                "split": "train",
                "elbo": -(recon + kl),
                "recon": recon,
                "kl": kl,
                "kl_per_dim": [kl - 0.03, 0.01, 0.01, 0.01],
                "active_units": 1,
                "loss": recon + 20 * kl,
                "grad_norm": 50.0,
                "grad_norm_max": 80.0,
                "bad_steps": 0,
                "beta": 20.0,
                "free_bits": 0.0,
                "lr": 1e-3,
            }
        )
    return rows


@pytest.fixture
def collapsing_run(empty_runs_root: Path) -> Iterator[RunDir]:
    """A live-looking run (its lock held by this test) whose metrics show a collapse."""
    run = RunDir(empty_runs_root / "collapsing")
    choices = runs.RunChoices(
        dataset="shapes", latent_dim=LATENT, image_size=28, num_samples=256, beta=20.0
    )
    run.write_config(*runs.configs_from_choices(choices))
    with open(run.metrics_path, "w") as f:
        for row in _collapsing_rows():
            f.write(json.dumps(row) + "\n")
    with run.acquire_lock():
        run.write_status("running", step=300, epoch=0, beta=20.0, lr=1e-3)
        yield run


def _fix_button(at: AppTest, label_start: str):
    return next(
        b
        for b in at.button
        if (b.key or "").startswith("training.fix.") and b.label.startswith(label_start)
    )


def test_a_collapsing_run_shows_the_alarm_with_its_fixes(app_path, collapsing_run) -> None:
    at = _app(app_path, "collapsing")
    assert not at.exception
    (alarm,) = [e.value for e in at.error if "Posterior collapse" in e.value]
    assert "1 of 4" in alarm and access.plain("beta = 20") in alarm
    labels = [b.label for b in at.button if (b.key or "").startswith("training.fix.collapse")]
    assert labels == [
        "Restart the KL warm-up (1,000 steps)",
        "Set free bits λ = 0.5 nats/dim",
        "Lower beta to 1",
    ]
    assert not any(b.disabled for b in at.button if b.label in labels)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Lower beta", {"beta": 1.0}),
        ("Set free bits", {"free_bits": 0.5}),
        ("Restart the KL warm-up", {"warmup_steps": 1000}),
    ],
)
def test_a_fix_button_writes_its_change_to_control_json(
    app_path, collapsing_run, label, expected
) -> None:
    at = _app(app_path, "collapsing")
    _fix_button(at, label).click().run()
    assert not at.exception
    control = collapsing_run.read_control()
    assert control["command"] is None and control["set"] == expected
    assert any(m.value.startswith("Sent at") for m in at.success)
    # The sidebar's live beta shows the value in force, the trainer's: once it applies the
    # fix (its heartbeat says so), the input starts at the new value, with no forced redraw.
    beta = expected.get("beta", 20.0)
    collapsing_run.write_status("running", step=310, epoch=0, beta=beta, lr=1e-3)
    at.run()
    key = state.live_setting_key("beta", "collapsing", beta)
    assert next(n for n in at.number_input if n.key == key).value == beta


def test_a_sent_fix_restarts_the_evidence_once_the_trainer_logs_it(
    app_path, collapsing_run, live_charts_of
) -> None:
    with open(collapsing_run.metrics_path, "a") as f:  # what the trainer appends on applying
        f.write(
            json.dumps(
                {
                    "step": 300,
                    "event": "control",
                    "command": None,
                    "changed": ["beta"],
                    "beta": 1.0,
                    "lr": 1e-3,
                    "free_bits": 0.0,
                    "beta_schedule": "linear",
                    "warmup_steps": 0,
                }
            )
            + "\n"
        )
    at = _app(app_path, "collapsing")
    assert not at.exception
    assert not any("Posterior collapse" in e.value for e in at.error)
    assert live_charts_of(at)["health"]["text"].startswith("Health: no alarm")


def test_served_remotely_the_fix_buttons_are_off_and_say_why(
    app_path, collapsing_run, monkeypatch
) -> None:
    monkeypatch.setattr(access, "server_address", lambda: "0.0.0.0")
    at = _app(app_path, "collapsing")
    fixes = [b for b in at.button if (b.key or "").startswith("training.fix.")]
    assert fixes and all(b.disabled for b in fixes)
    assert access.plain(access.current().train_refusal) in [c.value for c in at.main.caption]
    assert collapsing_run.read_control() == {}


def test_a_finished_run_has_no_alarm_and_shows_its_elbo_gap(
    app_path, runs_root, run_name, live_charts_of
) -> None:
    at = _app(app_path, run_name)
    assert not at.exception
    ops = live_charts_of(at)
    assert ops["health"]["text"].startswith("Health: no alarm")  # a line in the charts' frame
    assert not [c for c in at.caption if c.value.startswith("Health")]  # not one more element
    gap = ops["gap_line"]["text"]
    assert "≈ KL(q(z|x) ‖ p(z|x))" in gap and "bits/dim" in gap and "k = 100" in gap
    # curves, schedule, ELBO gap, KL per dimension: each drawn whole on the first run
    assert all("figure" in ops[name] for name in ("curves", "schedule", "gap", "kl"))


def test_the_active_threshold_moves_the_kl_bars(
    app_path, runs_root, run_name, live_charts_of
) -> None:
    at = _app(app_path, run_name)
    threshold = next(n for n in at.number_input if n.key == state.TRAINING_ACTIVE_THRESHOLD)
    assert threshold.value == pytest.approx(0.01)
    assert "figure" in live_charts_of(at)["kl"]  # the iframe drew the first page
    threshold.set_value(10.0).run()
    assert not at.exception
    ops = live_charts_of(at)
    assert set(ops) == {"kl"}  # only the bars changed, and only they are sent
    title = json.loads(ops["kl"]["figure"])["layout"]["title"]["text"]
    assert title.startswith("KL per dimension: 0 of")


def test_new_run_form_offers_the_kl_schedule_within_the_config_limits(
    app_path, empty_runs_root
) -> None:
    at = _app(app_path)
    bounds = {n.label: (n.min, n.max) for n in at.number_input}
    assert bounds["Free bits λ (nats/dim)"] == FREE_BITS_RANGE
    schedule = next(s for s in at.selectbox if s.label == "Beta schedule")
    assert schedule.options == ["constant", "linear warm-up", "cyclical"]
    assert schedule.value == "constant" and "KL warm-up (steps)" not in bounds
    schedule.set_value("linear").run()  # a warm-up field only beside a warm-up schedule
    bounds = {n.label: (n.min, n.max) for n in at.number_input}
    assert bounds["KL warm-up (steps)"] == (1, WARMUP_RANGE[1])
    assert next(n for n in at.number_input if n.label == "KL warm-up (steps)").value == 1000
    captions = [c.value for c in at.sidebar.caption]
    summary = access.plain("beta 1 (linear warm-up over 1,000 steps)")
    assert any(summary in c for c in captions), captions
    next(s for s in at.selectbox if s.label == "Beta schedule").set_value("cyclical").run()
    bounds = {n.label: (n.min, n.max) for n in at.number_input}
    assert bounds["Cycle period (steps)"][0] == MIN_CYCLE_PERIOD
