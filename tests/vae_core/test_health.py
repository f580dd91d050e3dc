"""vae_core.health: each detector on constructed healthy and sick metrics, and on real
Fashion-MNIST runs (a healthy one raises nothing; beta = 20 collapses and says so)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from vae_core import health
from vae_core.config import ModelConfig, TrainConfig
from vae_core.control import check_control
from vae_core.metrics_log import MetricsHistory, MetricsReader, summarize
from vae_core.rundir import RunDir
from vae_core.settings import Settings, settings_in_force

D = 10
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _row(i: int, rng: random.Random, **fields: float) -> dict:
    """Train row i of a healthy-looking run: recon falling as a power law (a long tail, as
    real runs have), KL about 15 nats, noise ~0.5 %."""
    recon = 230 + 120 / math.sqrt(1 + i / 3) + rng.gauss(0, 1.5)
    kl = 15 + rng.gauss(0, 0.2)
    row = {
        "step": 20 * (i + 1),
        "split": "train",
        "recon": recon,
        "kl": kl,
        "active_units": D,
        "grad_norm": 60 + rng.gauss(0, 15),
        "bad_steps": 0,
        "beta": 1.0,
        "free_bits": 0.0,
    }
    row.update(fields)
    row.setdefault("loss", row["recon"] + row["beta"] * row["kl"])
    row["elbo"] = -(row["recon"] + row["kl"])
    return row


def _run(n: int, seed: int = 0, **fields) -> list[dict]:
    """n healthy rows; `fields` maps a key to a value or to a function of the row index."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        values = {k: (v(i) if callable(v) else v) for k, v in fields.items()}
        rows.append(_row(i, rng, **values))
    return rows


def _alarms(rows: list[dict], cfg: TrainConfig | None = None, latent_dim: int = D):
    view = summarize(rows)
    return health.check_view(view, settings_in_force(cfg, view.events_of("control")), latent_dim)


def _kinds(rows: list[dict], cfg: TrainConfig | None = None, latent_dim: int = D) -> set[str]:
    return {a.kind for a in _alarms(rows, cfg, latent_dim)}


def _control(step: int, **settings) -> dict:
    base = {"beta": 1.0, "lr": 1e-3, "free_bits": 0.0, "beta_schedule": "linear"}
    base |= {"warmup_steps": 0, **settings}
    return {"step": step, "event": "control", "command": None, "changed": sorted(settings)} | base


def _after(rows: list[dict], i: int) -> float:
    return rows[i]["step"]


# ---------------------------------------------------------------- healthy


@pytest.mark.parametrize("seed", range(5))
def test_a_healthy_run_raises_nothing_at_any_point(seed: int) -> None:
    rows = _run(120, seed=seed)
    for n in range(1, len(rows) + 1):
        assert _kinds(rows[:n]) == set(), n


def test_a_run_too_young_to_judge_raises_nothing_even_if_it_looks_sick() -> None:
    rows = _run(7, kl=0.1, active_units=0)
    assert _kinds(rows) == set()  # 3 grace rows + 5 persistent ones are needed


# ---------------------------------------------------------------- posterior collapse


def test_collapse_is_raised_when_total_kl_stays_near_zero() -> None:
    (alarm,) = _alarms(_run(30, kl=lambda i: 15 if i < 20 else 2.0, active_units=4))
    assert alarm.kind == "collapse" and alarm.severity == "error"
    assert "2.00 nats" in alarm.explanation and "4 of 10" in alarm.explanation
    assert alarm.step == 600


def test_collapse_is_raised_when_no_dimension_is_active() -> None:
    assert "collapse" in _kinds(_run(30, kl=5.0, active_units=lambda i: 0 if i > 20 else 3))


def test_collapse_needs_five_low_rows_in_a_row() -> None:
    four = _run(30, kl=lambda i: 1.0 if i >= 26 else 15.0)
    assert "collapse" not in _kinds(four)
    blip = _run(30, kl=lambda i: 1.0 if i >= 25 and i != 27 else 15.0)
    assert "collapse" not in _kinds(blip)
    assert "collapse" in _kinds(_run(30, kl=lambda i: 1.0 if i >= 25 else 15.0))


def test_a_small_latent_with_little_kl_is_not_collapse() -> None:
    # latent 1 on Fashion-MNIST settles near 4 nats: the floor is min(3, 1 nat * D) = 1
    assert _kinds(_run(60, kl=2.5, active_units=1), latent_dim=1) == set()
    assert "collapse" in _kinds(_run(60, kl=0.5, active_units=1), latent_dim=1)


def test_collapse_is_not_raised_while_beta_warms_up() -> None:
    cfg = TrainConfig(dataset="shapes", beta=4.0, warmup_steps=2000)
    warming = _run(60, kl=1.0, beta=lambda i: min(4.0, 4.0 * 20 * (i + 1) / 2000))
    assert "collapse" not in _kinds(warming, cfg)
    held = _run(150, kl=1.0, beta=lambda i: min(4.0, 4.0 * 20 * (i + 1) / 2000))
    assert "collapse" in _kinds(held, cfg)  # beta reached its target and KL stayed down


def test_a_live_fix_starts_the_evidence_afresh() -> None:
    rows = _run(40, kl=1.0)
    assert "collapse" in _kinds(rows)
    fixed = [*rows[:30], _control(_after(rows, 29), free_bits=0.5), *rows[30:37]]
    assert "collapse" not in _kinds(fixed)  # 7 rows since the fix: not yet enough
    fixed = [*rows[:30], _control(_after(rows, 29), free_bits=0.5), *rows[30:]]
    assert "collapse" in _kinds(fixed)  # 10 rows since, KL still down: it did not help


def test_pause_and_resume_commands_do_not_restart_the_evidence() -> None:
    rows = _run(40, kl=1.0)
    paused = {"step": _after(rows, 35), "event": "control", "command": "pause", "changed": []}
    assert "collapse" in _kinds([*rows[:36], paused, *rows[36:]])


# ---------------------------------------------------------------- KL vanishing


def test_kl_vanishing_while_the_reconstruction_plateaus() -> None:
    rows = _run(60, recon=280.0, kl=lambda i: 15.0 if i < 40 else 15.0 - 0.5 * (i - 40))
    (alarm,) = _alarms(rows)
    assert alarm.kind == "kl_vanishing" and alarm.severity == "warning"
    assert any("free_bits" in f.changes for f in alarm.fixes)


def test_kl_traded_for_a_better_reconstruction_is_not_vanishing() -> None:
    rows = _run(60, recon=lambda i: 300 - 2 * i, kl=lambda i: 15.0 - 0.2 * i)
    assert "kl_vanishing" not in _kinds(rows)


def test_kl_falling_because_beta_rises_is_not_vanishing() -> None:
    rows = _run(60, recon=280.0, kl=lambda i: 15.0 - 0.2 * i, beta=lambda i: 0.5 + i / 120)
    assert _kinds(rows, TrainConfig(dataset="shapes", beta=1.0)) == set()


# ---------------------------------------------------------------- dead dimensions


def test_a_growing_number_of_dead_dimensions() -> None:
    rows = _run(60, active_units=lambda i: 10 if i < 50 else 6, kl=lambda i: 15 if i < 50 else 9)
    (alarm,) = _alarms(rows)
    assert alarm.kind == "dead_dims" and "10 → 6" in alarm.explanation


def test_dims_that_carried_nothing_dying_while_kl_holds_is_pruning_not_an_alarm() -> None:
    # conv, latent 20, beta 1 on Fashion-MNIST: 20 -> 15 active in epoch 3, KL steady at 13.5
    rows = _run(60, active_units=lambda i: 20 if i < 50 else 15, kl=13.5)
    assert _kinds(rows, latent_dim=20) == set()


def test_one_dimension_dying_is_not_an_alarm() -> None:
    assert _kinds(_run(60, active_units=lambda i: 10 if i < 50 else 9)) == set()
    # large latents lose a few of many: 128 -> 123 on Fashion-MNIST in two healthy epochs
    rows = _run(60, active_units=lambda i: 128 if i < 50 else 123)
    assert _kinds(rows, latent_dim=128) == set()


def test_dims_dying_for_fewer_than_five_rows_are_not_an_alarm() -> None:
    rows = _run(60, active_units=lambda i: 10 if i < 56 else 5, kl=lambda i: 15 if i < 56 else 9)
    assert _kinds(rows) == set()


# ---------------------------------------------------------------- gradients


def test_non_finite_steps_are_an_alarm_at_once() -> None:
    (alarm,) = _alarms(_run(10, bad_steps=lambda i: 1 if i == 9 else 0))
    assert alarm.kind == "non_finite" and alarm.severity == "warning"
    assert [f.changes for f in alarm.fixes] == [{"lr": pytest.approx(1e-4)}]
    (alarm,) = _alarms(_run(10, bad_steps=lambda i: 2 if i >= 8 else 0))
    assert alarm.severity == "error"


def test_an_exploding_gradient_norm() -> None:
    rows = _run(40, grad_norm=lambda i: 60.0 if i < 38 else 900.0)
    (alarm,) = _alarms(rows)
    assert alarm.kind == "exploding_gradient" and "15x" in alarm.explanation


def test_one_gradient_spike_or_a_slow_rise_is_not_explosion() -> None:
    assert _kinds(_run(40, grad_norm=lambda i: 900.0 if i == 39 else 60.0)) == set()
    assert _kinds(_run(40, grad_norm=lambda i: 30.0 + 5 * i)) == set()


def test_early_large_gradients_falling_are_healthy() -> None:
    assert _kinds(_run(40, grad_norm=lambda i: 500.0 * math.exp(-i / 3) + 40)) == set()


# ---------------------------------------------------------------- stalled loss


def test_a_loss_stuck_near_its_first_value_is_stalled() -> None:
    rng = random.Random(1)
    rows = _run(50, loss=lambda i: 540.0 + rng.gauss(0, 1))
    (alarm,) = _alarms(rows)
    assert alarm.kind == "stalled" and alarm.severity == "warning"
    assert "hardly moved" in alarm.explanation


def test_a_rising_loss_is_stalled() -> None:
    rows = _run(60, loss=lambda i: 300.0 - i if i < 30 else 270.0 + (i - 30))
    (alarm,) = _alarms(rows)
    assert alarm.kind == "stalled" and "rising" in alarm.explanation


def test_a_plateau_after_progress_is_convergence_not_an_alarm() -> None:
    rng = random.Random(2)
    rows = _run(150, loss=lambda i: max(250.0, 540.0 - 10 * i) + rng.gauss(0, 2))
    for n in range(1, len(rows) + 1):
        assert _kinds(rows[:n]) == set(), n


def test_a_slowly_improving_loss_is_not_stalled() -> None:
    assert _kinds(_run(90, loss=lambda i: 300.0 - 0.2 * i)) == set()


def test_a_loss_rising_with_a_warm_up_is_not_stalled() -> None:
    cfg = TrainConfig(dataset="shapes", warmup_steps=5000)
    rows = _run(90, loss=lambda i: 260.0 + 0.1 * i, beta=lambda i: 20 * (i + 1) / 5000)
    assert _kinds(rows, cfg) == set()


# ---------------------------------------------------------------- settings and fixes


def test_settings_come_from_the_config_then_the_newest_control_row() -> None:
    cfg = TrainConfig(dataset="shapes", beta=4.0, lr=3e-4, beta_schedule="constant")
    rows = [*_run(5), _control(100, free_bits=0.25), *_run(3)]
    settings = settings_in_force(cfg, summarize(rows).events_of("control"))
    assert settings.beta == 1.0 and settings.free_bits == 0.25 and settings.changed_at == 100
    assert settings_in_force(cfg, summarize(_run(5)).events_of("control")).beta == 4.0


def test_collapse_fixes_are_valid_live_changes_that_counter_it() -> None:
    cfg = TrainConfig(dataset="shapes", beta=20.0, beta_schedule="constant")
    rows = _run(30, kl=1.0, beta=20.0)
    (alarm,) = _alarms(rows, cfg)
    fixes = {f.label: f.changes for f in alarm.fixes}
    assert fixes == {
        "Restart the KL warm-up (1,000 steps)": {"warmup_steps": 1000, "beta_schedule": "linear"},
        "Set free bits λ = 0.5 nats/dim": {"free_bits": 0.5},
        "Lower beta to 1": {"beta": 1.0},
    }
    for changes in fixes.values():
        check_control(None, changes)  # what control.json accepts


def test_fixes_that_would_change_nothing_are_not_offered() -> None:
    settings = Settings(beta=0.0, lr=1e-7, free_bits=10.0, warmup_steps=500)
    (alarm,) = health.check(_run(30, kl=1.0, beta=0.0), settings, D)
    assert [f.changes for f in alarm.fixes] == [{"warmup_steps": 500}]


def test_rows_without_the_health_fields_raise_nothing() -> None:
    rows = [{"step": 20 * i, "split": "train", "elbo": -300.0, "kl": 0.1} for i in range(1, 60)]
    assert _kinds(rows) <= {"collapse"}
    assert _kinds([{k: v for k, v in r.items() if k != "kl"} for r in rows]) == set()


def test_the_trainers_constants_are_the_ones_health_reads() -> None:
    from vae_core import train

    assert health.ACTIVE_KL_NATS == train.ACTIVE_KL_NATS
    assert health.MAX_BAD_STEPS == train.MAX_BAD_STEPS


# ---------------------------------------------------------------- real Fashion-MNIST runs


def _train_fashion_mnist(path: Path, beta: float) -> RunDir:
    from vae_core.train import train

    model_config = ModelConfig(latent_dim=D, hidden_dim=256)
    train_config = TrainConfig(
        dataset="fashion-mnist",
        epochs=1,
        beta=beta,
        log_every=10,
        num_threads=1,
        eval_batches=2,
        iwae_k=10,
        iwae_n=32,
    )
    run = RunDir(path)
    train(model_config, train_config, run)
    return run


def _alarms_as_it_trained(run: RunDir) -> dict[str, list[int]]:
    """kind -> the steps at which the UI, refreshing after each train row, saw that alarm."""
    model_config, cfg = run.read_config()
    history, seen = MetricsHistory(), {}
    assert model_config.latent_dim == D
    for row in MetricsReader(run.metrics_path).read_new():
        history.add(row)
        if row.get("split") == "train":
            view = history.view()
            for alarm in health.check_view(
                view, settings_in_force(cfg, view.events_of("control")), D
            ):
                seen.setdefault(alarm.kind, []).append(row["step"])
    return seen


needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST.is_dir(), reason=f"Fashion-MNIST not at {FASHION_MNIST}"
)


@pytest.mark.slow
@needs_fashion_mnist
def test_a_healthy_fashion_mnist_run_raises_nothing(tmp_path: Path) -> None:
    run = _train_fashion_mnist(tmp_path / "healthy", beta=1.0)
    assert _alarms_as_it_trained(run) == {}


@pytest.mark.slow
@needs_fashion_mnist
def test_a_fashion_mnist_run_at_beta_20_collapses_and_says_so(tmp_path: Path) -> None:
    run = _train_fashion_mnist(tmp_path / "beta20", beta=20.0)
    seen = _alarms_as_it_trained(run)
    assert set(seen) == {"collapse"}
    last_train_step = max(r["step"] for r in run.read_metrics() if r.get("split") == "train")
    assert seen["collapse"][-1] == last_train_step  # still raised at the end
