"""Training health: pure detectors over a run's train rows that name what is going wrong
(posterior collapse, KL vanishing, dying dimensions, non-finite steps, an exploding gradient
norm, a stalled loss) and suggest live fixes as control.json changes. No torch, no UI.

False alarms cost as much as missed ones, so every rule looks only at the rows logged since
the last live change of settings (a fix starts the evidence afresh), skips the first rows of
that stretch (early KL dips), asks a symptom to hold over several rows, and the rules about
KL stand down while beta moves (a warm-up or a cyclical ramp pushes KL down on purpose).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from vae_core.config import FREE_BITS_RANGE, LR_RANGE
from vae_core.metrics_log import MetricsView
from vae_core.settings import Settings

Row = Mapping[str, Any]
Severity = Literal["error", "warning"]
SEVERITY_ORDER = {"error": 0, "warning": 1}
# The trainer's own constants (vae_core.train imports torch; this module does not):
ACTIVE_KL_NATS = 0.01  # active_units counts the dims with more KL than this
MAX_BAD_STEPS = 10  # a run fails after this many non-finite steps in a row


@dataclass(frozen=True)
class Thresholds:
    """The rules' constants, in logged rows (one per `log_every` steps) and nats."""

    grace_rows: int = 3  # rows ignored after the start or a live change: early transients
    persist_rows: int = 5  # a level symptom (collapse, dead dims) must hold this many rows
    collapse_kl_nats: float = 3.0  # total KL below min(this, 1 nat * D) is collapse
    trend_rows: int = 20  # window of the trend rules (KL vanishing, dying dimensions)
    block_rows: int = 5  # a window's start / end is the median of this many rows (noise)
    vanish_drop: float = 0.3  # KL fell by this fraction of its value over the window ...
    vanish_min_nats: float = 0.5  # ... and by at least this many nats ...
    plateau_rel: float = 0.005  # ... while the reconstruction improved by less than this
    dead_drop: float = 0.25  # active dims fell by this fraction of their peak, and by >= 2,
    dead_kl_drop: float = 0.1  # ... and the total KL by this fraction: information was lost
    explode_factor: float = 10.0  # mean grad norm this many times its earlier median ...
    explode_rows: int = 2  # ... in this many of the last 3 rows
    stall_rows: int = 40  # window of the stalled-loss rule; its ends are the medians of ...
    stall_block_rows: int = 10  # ... this many rows
    persist_windows: int = 3  # a stall must show in the windows ending at the last 3 rows
    rise_rel: float = 0.01  # stalled: the loss rose by more than this over the window, or ...
    stall_rel: float = 0.005  # ... improved by less than this over it and by less than ...
    stuck_rel: float = 0.05  # ... this since the first logged row (not learning at all)
    steady_beta_rel: float = 0.02  # beta moving by less than this counts as steady


DEFAULT_THRESHOLDS = Thresholds()
WARMUP_FIX_STEPS = 1000  # the restarted warm-up's length when the run had none
FREE_BITS_FIX = 0.5  # nats per dimension offered when the run has none


@dataclass(frozen=True)
class Fix:
    """One click: `changes` go to control.json's "set" (RunDir.send_control(None, **changes))."""

    label: str
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alarm:
    """What is wrong, why it matters, since when, and what to try (fixes, best first)."""

    kind: str  # collapse | kl_vanishing | dead_dims | non_finite | exploding_gradient | stalled
    severity: Severity
    title: str
    explanation: str
    step: int  # the newest row that shows it
    fixes: tuple[Fix, ...] = ()


def check_view(
    view: MetricsView,
    settings: Settings,
    latent_dim: int,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Alarm]:
    """check() on the view's recent train rows; the run's first loss tells stuck from done."""
    first_loss = view.points("train", "loss").values
    return check(
        view.recent_train,
        settings,
        latent_dim,
        thresholds,
        first_loss=float(first_loss[0]) if first_loss.size else None,
    )


def check(
    rows: Sequence[Row],
    settings: Settings,
    latent_dim: int,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    first_loss: float | None = None,
) -> list[Alarm]:
    """Every alarm the train `rows` (oldest first) raise, most severe first.

    Only rows after `settings.changed_at` count. A collapse makes the KL trend and dead
    dimension alarms redundant (same cause, same fixes): they are left out then.
    """
    t = thresholds
    rows = [
        r for r in rows if r.get("split", "train") == "train" and r["step"] > settings.changed_at
    ]
    alarms = [
        _non_finite(rows, settings, t),
        _exploding_gradient(rows, settings, t),
        _stalled(rows, settings, t, first_loss),
    ]
    collapse = _collapse(rows, settings, latent_dim, t)
    if collapse is not None:
        alarms.append(collapse)
    else:
        alarms += [_kl_vanishing(rows, settings, t), _dead_dims(rows, settings, t)]
    found = [a for a in alarms if a is not None]
    return sorted(found, key=lambda a: SEVERITY_ORDER[a.severity])


# ---------------------------------------------------------------- the rules


def _collapse(rows: list[Row], s: Settings, latent_dim: int, t: Thresholds) -> Alarm | None:
    """The total KL, or the count of active dims, near zero for persist_rows rows running."""
    window = _settled(rows, t, t.persist_rows)
    if window is None or _ramping(window, s, t):
        return None
    floor = min(t.collapse_kl_nats, 1.0 * latent_dim)
    kl = _values(window, "kl")
    active = _values(window, "active_units")
    low_kl = len(kl) == len(window) and max(kl) < floor
    no_units = len(active) == len(window) and max(active) == 0
    if not (low_kl or no_units):
        return None
    units = f"{int(active[-1])} of {latent_dim}" if active else "few"
    return Alarm(
        kind="collapse",
        severity="error",
        title="Posterior collapse",
        explanation=(
            f"KL(q(z|x) || p(z)) is {kl[-1]:.2f} nats (under {floor:g}) with {units} "
            f"dimensions above {ACTIVE_KL_NATS} nats, for the last {len(window)} logged rows: "
            "q(z|x) has fallen back onto the prior, the code says almost nothing about x and "
            f"the decoder ignores it. At beta = {s.beta:g} information costs more than it "
            "buys in reconstruction."
        ),
        step=int(window[-1]["step"]),
        fixes=_kl_fixes(s),
    )


def _kl_vanishing(rows: list[Row], s: Settings, t: Thresholds) -> Alarm | None:
    """KL falling steeply over the trend window while the reconstruction stands still."""
    window = _settled(rows, t, t.trend_rows)
    if window is None or _ramping(window, s, t):
        return None
    kl_start, kl_end = _ends(window, "kl", t.block_rows)
    recon_start, recon_end = _ends(window, "recon", t.block_rows)
    if None in (kl_start, kl_end, recon_start, recon_end):
        return None
    drop = kl_start - kl_end
    if drop < max(t.vanish_drop * kl_start, t.vanish_min_nats):
        return None
    if recon_end < recon_start - t.plateau_rel * abs(recon_start):
        return None  # the reconstruction still improves: KL is traded for it, as it should
    return Alarm(
        kind="kl_vanishing",
        severity="warning",
        title="KL vanishing while the reconstruction plateaus",
        explanation=(
            f"KL fell from {kl_start:.2f} to {kl_end:.2f} nats over the last {len(window)} "
            f"logged rows, while the reconstruction stayed at {recon_end:.1f} nats: the "
            "encoder gives information up for no gain. Left alone this ends in collapse."
        ),
        step=int(window[-1]["step"]),
        fixes=_kl_fixes(s, free_bits_first=True),
    )


def _dead_dims(rows: list[Row], s: Settings, t: Thresholds) -> Alarm | None:
    """Active dims down by dead_drop of their peak (and >= 2) for persist_rows rows running,
    while the total KL fell too. Dims that carried next to nothing dying while the others
    take up the information is the model pruning what it does not need: no alarm."""
    window = _settled(rows, t, t.trend_rows)
    if window is None or _ramping(window, s, t):
        return None
    active = _values(window, "active_units")
    if len(active) != len(window):
        return None
    earlier, recent = active[: -t.persist_rows], active[-t.persist_rows :]
    peak, now = max(earlier), max(recent)
    died = int(peak - now)
    if died < max(2, math.ceil(t.dead_drop * peak)):
        return None
    kl_start, kl_end = _ends(window, "kl", t.block_rows)
    if kl_start is None or kl_end is None or kl_end > (1 - t.dead_kl_drop) * kl_start:
        return None
    return Alarm(
        kind="dead_dims",
        severity="warning",
        title="A growing number of dead dimensions",
        explanation=(
            f"{died} dimensions stopped carrying information in the last {len(window)} logged "
            f"rows ({int(peak)} → {int(now)} with KL above {ACTIVE_KL_NATS} nats), and the "
            f"total KL fell from {kl_start:.2f} to {kl_end:.2f} nats with them: a dead "
            "dimension is pinned to the prior and every value of it decodes the same image."
        ),
        step=int(window[-1]["step"]),
        fixes=tuple(
            f for f in _kl_fixes(s, free_bits_first=True) if "warmup_steps" not in f.changes
        ),
    )


def _non_finite(rows: list[Row], s: Settings, t: Thresholds) -> Alarm | None:
    """Steps skipped for a NaN/inf loss or gradient, in the last trend window of rows."""
    window = rows[-t.trend_rows :]
    counts = [int(v) for v in _values(window, "bad_steps")]
    bad, bad_rows = sum(counts), sum(c > 0 for c in counts)
    if bad == 0:
        return None
    last = next(r for r in reversed(window) if (_number(r.get("bad_steps")) or 0) > 0)
    return Alarm(
        kind="non_finite",
        severity="error" if bad_rows >= 2 or bad >= 3 else "warning",
        title="Non-finite steps",
        explanation=(
            f"{bad} step{'s' if bad != 1 else ''} in the last {len(window)} logged rows had a "
            "NaN or infinite loss or gradient and were skipped; "
            f"{MAX_BAD_STEPS} in a row fail the run. A smaller learning rate usually cures it."
        ),
        step=int(last["step"]),
        fixes=_lr_fixes(s),
    )


def _exploding_gradient(rows: list[Row], s: Settings, t: Thresholds) -> Alarm | None:
    """The mean gradient norm explode_factor times its earlier median, in 2 of the last 3 rows."""
    window = _settled(rows, t, t.trend_rows)
    if window is None:
        return None
    norms = _values(window, "grad_norm")
    if len(norms) != len(window):
        return None
    earlier, recent = norms[:-3], norms[-3:]
    median = statistics.median(earlier)
    high = [n for n in recent if not math.isfinite(n) or n > t.explode_factor * median]
    if median <= 0 or len(high) < t.explode_rows:
        return None
    return Alarm(
        kind="exploding_gradient",
        severity="warning",
        title="Exploding gradient norm",
        explanation=(
            f"The gradient norm is {recent[-1]:.3g}, {recent[-1] / median:.0f}x its median of "
            f"{median:.3g} over the rows before: the steps overshoot, and NaN usually follows."
        ),
        step=int(window[-1]["step"]),
        fixes=_lr_fixes(s),
    )


def _stalled(rows: list[Row], s: Settings, t: Thresholds, first_loss: float | None) -> Alarm | None:
    """The training loss rising, or barely below its first value, over the last stall_rows
    rows, in each of the windows ending at the last persist_windows rows. A plateau after
    real progress is convergence, not an alarm: noise would make one flicker on every long
    healthy run."""
    verdicts = [
        _stall_verdict(rows[: len(rows) - k], s, t, first_loss) for k in range(t.persist_windows)
    ]
    newest = verdicts[0]
    if newest is None or None in verdicts:
        return None
    how, window, start, end = newest
    what = {
        "rising": "it is rising while beta holds still: the steps overshoot",
        "stuck": "it has hardly moved since the first logged row: the model is not learning",
    }[how]
    steps = int(window[-1]["step"] - window[0]["step"])
    return Alarm(
        kind="stalled",
        severity="warning",
        title="Stalled loss",
        explanation=(
            f"The training loss went from {start:.2f} to {end:.2f} nats over the last "
            f"{len(window)} logged rows ({steps} steps): {what}. A smaller learning rate is "
            "the usual cure (or, if it never moved, a larger one)."
        ),
        step=int(window[-1]["step"]),
        fixes=_lr_fixes(s),
    )


def _stall_verdict(
    rows: list[Row], s: Settings, t: Thresholds, first_loss: float | None
) -> tuple[str, list[Row], float, float] | None:
    """("rising" | "stuck", window, start, end) when the last stall_rows rows stalled."""
    window = _settled(rows, t, t.stall_rows)
    if window is None or _ramping(window, s, t):
        return None  # too early, or a moving beta moves the loss on purpose
    start, end = _ends(window, "loss", t.stall_block_rows)
    if start is None or end is None:
        return None
    if end > start + t.rise_rel * abs(start):
        return "rising", window, start, end
    flat = end > start - t.stall_rel * abs(start)
    if flat and first_loss is not None and end > first_loss - t.stuck_rel * abs(first_loss):
        return "stuck", window, start, end
    return None


# ---------------------------------------------------------------- fixes


def _kl_fixes(s: Settings, free_bits_first: bool = False) -> tuple[Fix, ...]:
    """Restart the KL warm-up, set free bits, lower beta: what counters a KL pushed to 0."""
    warmup = s.warmup_steps if s.warmup_steps > 0 else WARMUP_FIX_STEPS
    restart: dict[str, Any] = {"warmup_steps": warmup}
    if s.beta_schedule == "constant":
        restart["beta_schedule"] = "linear"  # constant ignores warmup_steps
    fixes = [Fix(f"Restart the KL warm-up ({warmup:,} steps)", restart)]
    free_bits = min(max(FREE_BITS_FIX, 2 * s.free_bits), FREE_BITS_RANGE[1])
    if free_bits > s.free_bits:
        free_bits_fix = Fix(f"Set free bits λ = {free_bits:g} nats/dim", {"free_bits": free_bits})
        fixes.insert(0 if free_bits_first else 1, free_bits_fix)
    beta = 1.0 if s.beta > 1.0 else s.beta / 2
    if 0 < s.beta and beta < s.beta:
        fixes.append(Fix(f"Lower beta to {beta:g}", {"beta": beta}))
    return tuple(fixes)


def _lr_fixes(s: Settings) -> tuple[Fix, ...]:
    lr = max(s.lr / 10, LR_RANGE[0])
    return (Fix(f"Lower lr to {lr:.0e}", {"lr": lr}),) if lr < s.lr else ()


# ---------------------------------------------------------------- helpers


def _settled(rows: list[Row], t: Thresholds, n: int) -> list[Row] | None:
    """The last `n` rows, if that many come after the grace rows; else None (wait)."""
    if len(rows) < t.grace_rows + n:
        return None
    return rows[-n:]


def _ramping(window: Sequence[Row], s: Settings, t: Thresholds) -> bool:
    """Whether the effective beta moved in `window` or sits below its target: a warm-up or
    a cyclical ramp, when KL is pushed down, and the loss up, on purpose."""
    betas = _values(window, "beta")
    if not betas:
        return False
    tolerance = t.steady_beta_rel * max(s.beta, max(betas))
    return max(betas) - min(betas) > tolerance or min(betas) < s.beta - tolerance


def _values(rows: Sequence[Row], key: str) -> list[float]:
    """The numbers under `key` in `rows`, those that have one."""
    return [v for v in (_number(r.get(key)) for r in rows) if v is not None]


def _ends(rows: Sequence[Row], key: str, block: int) -> tuple[float | None, float | None]:
    """Medians of `key` over the first and the last `block` rows of `rows` (robust to noise)."""
    first, last = _values(rows[:block], key), _values(rows[-block:], key)
    if len(first) < block or len(last) < block:
        return None, None
    return statistics.median(first), statistics.median(last)


def _number(value: object) -> float | None:
    """`value` as a float if it is a JSON number (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
