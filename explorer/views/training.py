"""Live training readouts: state line, health alarms with one-click fixes, ELBO /
reconstruction / KL curves, the beta schedule and free-bits floor, the ELBO gap (IWAE),
per-dim KL bars and reconstructions of fixed test images, refreshed about once a second
while a run lives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from explorer import access, cache, charts, guard, images, live_feed, run_view, runs, state
from explorer.components import live_charts, ticker
from explorer.panels import alarms, estimators, explain, fork
from vae_core import health, history, latent
from vae_core.config import BETA_RANGE, LR_RANGE, TrainConfig
from vae_core.health import Alarm
from vae_core.rundir import RunDir
from vae_core.settings import settings_in_force
from vae_core.status import Status

REFRESH_S = 1.0
PAUSED_REFRESH_S = 5.0
FORK_REFRESH_S = 5.0  # the fork panel's newest step, while the run trains
NUM_FIXED_IMAGES = 8
WHAT = """
**ELBO** = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), a lower bound on log p(x). The loss is −ELBO =
**reconstruction** (−log p(x|z), one z ~ q(z|x), summed over pixels) + **KL** (the analytic
Gaussian KL to the prior N(0, I), summed over latent dimensions). All in nats per image,
averaged over the images since the last logged step (train) or over the test set (test).
Training minimises reconstruction + β·KL; the ELBO shown always uses β = 1.

**ELBO gap**: the IWAE bound with k importance samples (Burda et al. 2015) lies between the
ELBO and log p(x); the gap between them estimates KL(q(z|x) ‖ p(z|x)). Bits/dim = nats ÷
(pixel values per image × ln 2).

**KL per dimension** (bars): each dimension's KL, averaged over images. Near 0 the dimension
is inactive (collapsed): q(z_d|x) is the prior whatever x is, so the decoder ignores it.
Reconstructions decode the posterior mean μ(x) and show Bernoulli probabilities
(Gaussian means for colour data).
"""


def render(run: RunDir) -> None:
    """The training panel; its charts fetch a tick every second only while the run lives."""
    reading = run_view.read(run, cache.metrics_log(str(run.path)))  # this rerun's one reading
    phase = reading.phase
    explain.what_am_i_looking_at(WHAT, "Training")
    in_browser = live_charts.is_available()
    # With the live charts, the browser fetches each tick itself (explorer.live_feed), only
    # while the tab is seen; without, the fragment reruns every second while the run lives.
    run_every = REFRESH_S if phase[0] and not in_browser else None
    # The controls sit outside the fragment: changing one reruns the page.
    threshold, units = _controls()
    # The fragment's first run draws this very reading (handed over once, in a list it
    # empties); its own reruns read afresh and compare the phase with the one drawn here.
    panel = st.fragment(_panel, run_every=run_every)
    panel(str(run.path), in_browser, threshold, units, _page_key(reading), [reading])
    status = reading.status
    if status.device:  # runs from before it was recorded do not say
        st.caption(f"Trained by {access.plain(status.placement)}.")
    # On demand, outside the fragment: never re-measured every second.
    estimators.render(run, reading.snapshot_version)
    # Its own fragment: while open, it follows the newest step, and nothing else redraws.
    fork_panel = st.fragment(_fork_newest)
    fork_panel(str(run.path), reading.train_config, FORK_REFRESH_S if phase[0] else None)


def _page_key(reading: run_view.RunView) -> tuple[object, ...]:
    """What the page around the live panel was drawn for: when it changes, the panel redraws
    the page (the first snapshot, the run's end, a state or setting the sidebar's controls
    show; the sidebar has no clock of its own on this view)."""
    return reading.phase, reading.controls


def _interval_ms(status: Status) -> int:
    """How often a visible tab refreshes: every second while training, every few seconds
    while paused (to see a resume from elsewhere), never once the trainer is gone."""
    if not status.is_live:
        return 0
    return int(1000 * (PAUSED_REFRESH_S if status.state == "paused" else REFRESH_S))


@dataclass(frozen=True)
class _Notes:
    """What the panel draws as Streamlit elements above the charts, if anything: progress,
    a wait, alarms, the note of a fix just sent. When it changes, the panel is redrawn."""

    waiting: bool
    caching: tuple[int, int] | None
    alarms: tuple[Alarm, ...]
    fix_note: bool

    def __bool__(self) -> bool:
        return self.waiting or self.caching is not None or bool(self.alarms) or self.fix_note


class _LiveReader:
    """One tick of the live panel: the live feed calls it (off the script thread, once a
    second per watching tab), and the fragment draws its notes from the same function."""

    def __init__(self, run_path: str, threshold: float, units: str, fix_note_until: float):
        self.run_path, self.threshold, self.units = run_path, threshold, units
        self.fix_note_until = fix_note_until
        self._built: tuple[tuple[object, ...], dict[str, live_charts.Slot]] | None = None

    def __call__(self) -> live_feed.Tick:
        reading = run_view.read(RunDir(self.run_path), cache.metrics_log(self.run_path))
        return self.tick(reading)[0]

    def tick(self, reading: run_view.RunView) -> tuple[live_feed.Tick, _Notes]:
        status, metrics = reading.status, reading.metrics
        waiting = metrics.points("train", "elbo").steps.size < 2  # one point draws no line
        found: tuple[Alarm, ...] = ()
        slots: dict[str, live_charts.Slot] = {}
        if not waiting:
            settings = settings_in_force(reading.train_config, metrics.events_of("control"))
            found = tuple(health.check_view(metrics, settings, reading.model_config.latent_dim))
            slots = self._slots(reading, settings.free_bits)
        notes = _Notes(waiting, _caching(status), found, time.time() < self.fix_note_until)
        shown = {
            "readouts": live_charts.Readouts(_readouts(status)),
            # The line under the readouts while all is well: in the iframe, not an element.
            "health": live_charts.Text("" if waiting or found else alarms.NO_ALARM),
            **slots,
        }
        return live_feed.Tick(shown, _interval_ms(status), (_page_key(reading), notes)), notes

    def _slots(self, reading: run_view.RunView, free_bits: float) -> dict[str, live_charts.Slot]:
        """_slots(), or the very slots of the last tick when what they are built from is the
        same (the live charts skip an unchanged slot at once)."""
        source = (reading.metrics.version, reading.snapshot_version)
        if self._built is None or self._built[0] != source:
            self._built = source, _slots(reading, free_bits, self.threshold, self.units)
        return self._built[1]


@guard.shows_run_errors
def _panel(
    run_path: str,
    in_browser: bool,
    threshold: float,
    units: str,
    drawn_for: tuple[object, ...],
    first_reading: list[run_view.RunView],
) -> None:
    """The live part; `drawn_for` is the _page_key the page around it was drawn for."""
    if first_reading:
        reading = first_reading.pop()
    else:
        reading = run_view.read(RunDir(run_path), cache.metrics_log(run_path))
    run, status = reading.run, reading.status
    if _page_key(reading) != drawn_for:
        # E.g. the first snapshot (fork, estimators can draw) or the run ended (final
        # weights, polling stops) or paused: the page around this fragment changes.
        st.rerun(scope="app")
    live = _LiveReader(run_path, threshold, units, alarms.fix_note_until(run))
    tick, notes = live.tick(reading)
    # Only when there is some: the charts' iframe moves by one place then, and is mounted
    # again (one whole resend).
    if notes:
        with st.container():
            _progress(status)
            if notes.waiting:
                st.info(
                    "Waiting for the first rows: the curves appear once the trainer has logged two."
                    if status.is_live
                    else "No curves: the run logged fewer than two rows of training metrics."
                )
            alarms.render(run, status, notes.alarms)
    if in_browser:
        token = st.session_state.setdefault(state.TRAINING_FEED, live_feed.new_token())
        generation = live_feed.publish(token, live, drawn_for=tick.page)
        route = live_feed.url(st.get_option("server.baseUrlPath"))
        live_charts.live_charts(token, route, generation, key=state.TRAINING_LIVE)
    else:
        _draw_here(tick.slots)
    if status.display_state in ("dead", "failed"):
        _failure(reading)


def _controls() -> tuple[float, str]:
    """The active-dimension threshold and the ELBO gap's units, above the charts."""
    col_threshold, col_units, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
    threshold = col_threshold.number_input(
        "Active dimension: KL above (nats)",
        min_value=0.0,
        max_value=10.0,
        value=health.ACTIVE_KL_NATS,
        step=0.01,
        format="%.3f",
        key=state.TRAINING_ACTIVE_THRESHOLD,
        help="A dimension whose KL(q(z_d|x) || p(z_d)), averaged over the batch, is below "
        "this carries (almost) no information about x: the decoder ignores it.",
    )
    units = col_units.segmented_control(
        "ELBO gap units", ("nats", "bits/dim"), default="nats", key=state.TRAINING_GAP_UNITS
    )
    return threshold, units or "nats"


def _slots(
    reading: run_view.RunView, free_bits: float, threshold: float, units: str
) -> dict[str, live_charts.Slot]:
    """What each place of the panel shows: curves, schedule, ELBO gap, KL bars, images."""
    metrics, num_pixels = reading.metrics, reading.model_config.num_pixels
    slots: dict[str, live_charts.Slot] = {
        "curves": live_charts.Figure(charts.curves_spec(metrics)),
        "schedule": live_charts.Figure(charts.schedule_spec(metrics)),
    }
    if metrics.points("test", "iwae").steps.size:
        slots["gap"] = live_charts.Figure(charts.elbo_gap_spec(metrics, num_pixels, units))
        newest = metrics.newest("test")
        if newest is not None and "iwae" in newest:
            slots["gap_line"] = live_charts.Text(_gap_line(newest, num_pixels))
    else:
        slots["gap_line"] = live_charts.Text(
            "The ELBO gap appears after the first evaluation (end of the first epoch), "
            "when the run computes the IWAE bound (iwae_k > 0)."
        )
    kl = metrics.latest_kl_per_dim
    if kl is not None:
        active = latent.active_dims(kl, threshold)
        spec = charts.kl_bar_spec(kl, active, threshold=threshold, free_bits=free_bits)
        slots["kl"] = live_charts.Figure(spec)
    recon = _fixed_reconstructions(reading.path, reading.snapshot_version)
    if recon is not None:
        slots["recon"] = recon
    return slots


def _draw_here(slots: dict[str, live_charts.Slot]) -> None:
    """Without the live charts component: each slot as a plain Streamlit element."""
    for name, slot in slots.items():
        if isinstance(slot, live_charts.Readouts):
            for column, (label, value) in zip(st.columns(len(slot.items)), slot.items, strict=True):
                column.metric(label, value)
        elif isinstance(slot, live_charts.Figure):
            st.plotly_chart(
                dict(slot.spec), key=state.sub_key(state.TRAINING_CHART, name), width="stretch"
            )
        elif isinstance(slot, live_charts.Text):
            if slot.text:
                st.caption(slot.text)
        else:
            st.image(slot.png, caption=slot.caption, width="stretch", output_format="PNG")


def _gap_line(row: Mapping[str, Any], num_pixels: int) -> str:
    """The newest evaluation in nats and bits/dim, with what it cost."""
    bpd = 1 / (num_pixels * math.log(2))  # nats per image -> bits per dimension
    return (
        f"Step {row['step']}: ELBO {row['iwae_elbo']:.2f} ≤ IWAE {row['iwae']:.2f} ≤ log p(x), "
        f"nats (in bits/dim: {-row['iwae_elbo'] * bpd:.4f} ≥ {-row['iwae'] * bpd:.4f}). "
        f"Gap {row['iwae_gap']:.2f} nats = {row['iwae_gap'] * bpd:.4f} bits/dim ≈ "
        f"KL(q(z|x) ‖ p(z|x)). k = {row.get('iwae_k', '?')} samples on the first "
        f"{row.get('iwae_n', '?')} test images: {row.get('iwae_seconds', 0.0):.2f} s per "
        "evaluation."
    )


def _readouts(status: Status) -> tuple[tuple[str, str], ...]:
    """(label, value) of the state, step, epoch, speed and last update."""
    said = "stopped" if status.stopped_by_user else status.display_state  # Step says where
    shown = said + (" (other host)" if status.on_other_host else "")
    total = f" / {status.total_steps:,}" if status.total_steps else ""
    speed = f"{status.samples_per_s:,.0f}" if status.heartbeat else "–"
    return (
        ("State", shown),
        ("Step", f"{status.step:,}{total}"),
        ("Epoch", str(status.epoch)),
        ("Samples/s", speed),
        ("Last update", _last_update(status)),
    )


def _caching(status: Status) -> tuple[int, int] | None:
    """(done, total) images while the trainer caches the dataset on disk (first use)."""
    return status.caching if status.caching and status.is_live else None


def _progress(status: Status) -> None:
    """The dataset's first caching on disk, while the trainer does it."""
    if caching := _caching(status):
        done, total = caching
        st.progress(
            done / max(total, 1),
            text=f"Caching the dataset on disk (first use): {done:,} / {total:,} images",
        )


def _last_update(status: Status) -> str:
    """Seconds since the trainer's last heartbeat while it lives, else the clock time."""
    if not status.heartbeat:
        return "–"
    if status.is_live:
        return f"{time.time() - status.heartbeat:.0f} s ago"
    return time.strftime("%H:%M:%S", time.localtime(status.heartbeat))


def _failure(reading: run_view.RunView) -> None:
    """Say why the trainer stopped, offer Resume (with a lower lr / beta after a failure),
    and show the log's tail (never a traceback in the page itself: it goes in a collapsed
    box for whoever wants it)."""
    run, status = reading.run, reading.status
    if status.display_state == "dead":
        reason = "the trainer stopped without saying why (its process is gone or silent)"
    else:
        reason = status.reason or "unknown reason"
    st.error(f"Training {access.plain(status.display_state)}: {access.plain(reason)}")
    refusal = access.current().train_refusal
    if refusal:
        st.caption(access.plain(refusal))
    if status.failed_for_missing_data:
        st.info(
            "The data is missing, not a training problem: put the dataset where the message "
            "says, then resume with the same settings (or start a run on another dataset)."
        )
    if status.is_resumable:
        _resume_form(reading, refusal)
    elif status.on_other_host:
        st.caption(access.plain(f"Written from host {status.host}: resume it there."))
    tail = runs.trainer_log_tail(run)
    if tail:
        with st.expander("Trainer log (last lines)"):
            st.code(tail, language=None)


def _resume_form(reading: run_view.RunView, refusal: str | None) -> None:
    """Resume from the last good checkpoint; a run that failed in training (not for
    missing data) is offered a 10x lower lr."""
    status = reading.status
    in_force = reading.live_settings
    beta, lr = in_force.beta, in_force.lr
    if status.state == "failed" and not status.failed_for_missing_data:
        lr = max(lr / 10, LR_RANGE[0])
    with st.form(state.TRAINING_RESUME_FORM, border=False):
        col_lr, col_beta, col_go = st.columns([1, 1, 2], vertical_alignment="bottom")
        new_lr = col_lr.number_input(
            "lr", min_value=LR_RANGE[0], max_value=LR_RANGE[1], value=lr, format="%.1e"
        )
        new_beta = col_beta.number_input(
            "beta", min_value=BETA_RANGE[0], max_value=BETA_RANGE[1], value=beta, step=0.5
        )
        resume = col_go.form_submit_button(
            "Resume training", type="primary", disabled=refusal is not None
        )
    if not resume:
        return
    try:
        if refusal:  # disabled above; a hand-made widget event must not get through
            raise PermissionError(refusal)
        runs.resume_run(reading.run, beta=new_beta, lr=new_lr)
    except (RuntimeError, OSError, ValueError) as e:
        st.error(access.plain(e))
    else:
        st.rerun(scope="app")


def _fixed_reconstructions(run_path: str, version: int) -> live_charts.Image | live_charts.Text:
    """The same test images every time, next to their reconstructions by the newest weights."""
    if version == 0:
        return live_charts.Text("Reconstructions appear with the first snapshot.")
    return _reconstruction_image(run_path, version)


@st.cache_resource(max_entries=8, show_spinner=False)  # immutable: shared, never copied
def _reconstruction_image(run_path: str, version: int) -> live_charts.Image:
    """The fixed images and their reconstructions as one PNG, encoded once per snapshot."""
    n = len(cache.test_data(run_path))
    indices = tuple(np.linspace(0, n - 1, NUM_FIXED_IMAGES).astype(int).tolist())
    originals, recons = cache.reconstructions(run_path, version, indices)
    both = np.concatenate([originals, recons])  # (2N, H, W, C): top row inputs
    grid = latent.image_grid(both, nrow=NUM_FIXED_IMAGES)
    return live_charts.Image(
        images.png_bytes(grid, target_px=480),
        f"Test images (top) and reconstructions (bottom), snapshot v{version}",
    )


@guard.shows_run_errors
def _fork_newest(run_path: str, train_config: TrainConfig, refresh_s: float | None) -> None:
    """Offer "Fork from here" at the newest history point (the time-lapse: at any point);
    while open, looked up again every `refresh_s` the tab is visible. Closed, it has no
    clock: a rerun a tick would cost a watching tab as much as the charts themselves."""
    run = RunDir(run_path)
    if refresh_s is None and not history.list_points(run):
        return  # a run that saved no step and will not (an imported model): no fork
    with st.expander(
        "Fork from the newest saved step", key=state.TRAINING_FORK_EXPANDER, on_change="rerun"
    ) as box:
        if not box.open:  # its form drawn only while open (see state.SIDEBAR_NEW_RUN_OPEN)
            return
        ticker.every(refresh_s, key=state.TRAINING_FORK_CLOCK)
        points = history.list_points(run)
        if not points:
            st.caption("No step saved yet: the trainer saves the first within a few dozen.")
            return
        newest = points[-1]
        fork.render(run, train_config, newest.step, newest.epoch, key=state.TRAINING_FORK)
