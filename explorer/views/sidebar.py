"""The sidebar: pick or attach a run, control it (pause / resume / stop, live beta and lr),
and start a new one. Returns the open run; every action goes through explorer.runs.
Nothing here imports torch (vae_core.catalog, not vae_core.data): this is the first page,
drawn before torch is loaded (tests/test_first_page.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import streamlit as st

from explorer import access, guard, runs, speed, state
from explorer.components import ticker
from explorer.panels import publish
from vae_core.catalog import DATASETS, IMAGE_SIZES, MAX_SHAPES_IMAGES, is_available_offline
from vae_core.config import (
    ARCHITECTURES,
    BETA_RANGE,
    BETA_SCHEDULES,
    FREE_BITS_RANGE,
    LR_RANGE,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_LATENT_DIM,
    MIN_CYCLE_PERIOD,
    WARMUP_RANGE,
)
from vae_core.rundir import RunDir
from vae_core.runfolders import MAX_NAME_CHARS

# What can go wrong when the user's input is turned into a run; shown as st.error. Missing
# data (vae_core.data.DatasetUnavailable) is a RuntimeError, caught beside these.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, OSError)
DATASET_LABELS = {
    "mnist": "MNIST digits",
    "fashion-mnist": "Fashion-MNIST",
    "shapes": "Shapes (generated, dSprites-like)",
    "folder": "My image folder",
}
SCHEDULE_LABELS = {"constant": "constant", "linear": "linear warm-up", "cyclical": "cyclical"}
WARMUP_DEFAULT_STEPS = 1000  # the linear schedule's ramp, as the health fix restarts it
CYCLE_DEFAULT_STEPS = 5000
ESTIMATE_TTL_S = 60
STATUS_REFRESH_S = 2.0  # each tick is a rerun; at 1 s the fallback sliders p95 doubled


def render() -> RunDir | None:
    """Draw the sidebar; returns the run the user has open (None when there is none)."""
    runs.reap_children()
    with st.sidebar:
        st.title("VAE Latent Explorer")
        notice = st.session_state.pop(state.SIDEBAR_NOTICE, None)
        if notice:
            st.success(access.plain(notice))
            # The action it reports is done: the popover it came from closes.
            st.session_state[state.SIDEBAR_ATTACH_OPEN] = False
            st.session_state[state.SIDEBAR_MANAGE_OPEN] = False
        run = _run_picker()
        if run is not None:
            # A fragment with its own clock, so the state line and the enabled buttons follow
            # the trainer. One clock per page: on the Training view, the panel's tick redraws
            # the page when what these controls show changes (RunView.controls).
            live = _is_live(run)
            clock = live and state.current_view() != "Training"
            st.fragment(_run_controls)(run, STATUS_REFRESH_S if clock else None)
            _manage_run(run, live)
            publish.render(run)
        # Drawn only while open (see state.SIDEBAR_NEW_RUN_OPEN). Keyed by whether a run is
        # open, so it starts open on the first page and closed beside a run.
        new_run_open = state.sub_key(state.SIDEBAR_NEW_RUN_OPEN, "run" if run else "none")
        with st.expander(
            "New run", expanded=run is None, key=new_run_open, on_change="rerun"
        ) as box:
            if box.open:
                st.fragment(_new_run_form)()
        with st.expander(
            "Open your own model", key=state.SIDEBAR_IMPORT_OPEN, on_change="rerun"
        ) as box:
            if box.open:
                _import_form()
    return run


def _is_live(run: RunDir) -> bool:
    try:
        return runs.run_status(run).is_live
    except guard.RUN_ERRORS:
        return False  # _run_controls says what is damaged


def _open(ref: str) -> None:
    state.set_open_run_ref(ref)


def _run_picker() -> RunDir | None:
    """Select among runs under the root, or attach a run directory by path."""
    try:
        run = runs.open_run(state.open_run_ref(), state.attached_runs())
    except ValueError as e:  # not a run, or out of the root and not attached here
        st.error(access.plain(e))
        run = None
    tree = runs.run_tree()  # forks right under their parents
    names = [r.path.name for r, _ in tree]
    labels = {r.path.name: runs.picker_label(r, depth) for r, depth in tree}
    current = runs.run_ref(run) if run is not None else None
    if current is not None and current not in names:
        names = [current, *names]  # an attached run outside the runs root
        labels[current] = runs.picker_label(run)
    if names:
        # Start, Fork and the URL open runs too: the picker follows the open run.
        st.session_state[state.SIDEBAR_RUN_SELECT] = current
        st.selectbox(
            f"Run ({len(names)} in {access.plain(runs.runs_root())})",
            names,
            format_func=lambda ref: labels.get(ref, ref),
            placeholder="Pick a run",
            key=state.SIDEBAR_RUN_SELECT,
            on_change=lambda: _open(st.session_state[state.SIDEBAR_RUN_SELECT] or ""),
            help=_picker_help(run),
        )
        branch = runs.lineage(run) if run is not None else None
        if branch:  # in full: the picker's line is cut at the sidebar's width
            st.caption(access.plain(branch[0].upper() + branch[1:]))
    with st.popover(
        "Attach a run directory", width="stretch", key=state.SIDEBAR_ATTACH_OPEN, on_change="rerun"
    ) as box:
        if box.open:
            path = st.text_input("Path to a run directory", key=state.SIDEBAR_ATTACH_PATH)
            if st.button("Attach", key=state.SIDEBAR_ATTACH) and path:
                _attach(path)
    return run


def _picker_help(run: RunDir | None) -> str:
    """The marks' meanings and the open run in full, on hover."""
    text = runs.MARKS_HELP
    if run is not None:
        text += f"\n\nOpen: {runs.describe(run)}"
    return access.plain(text)


def _manage_run(run: RunDir, live: bool) -> None:
    """Rename or delete the open run (never a live one; deleting asks first)."""
    with st.popover(
        "Rename or delete this run",
        icon=":material/edit:",
        width="stretch",
        key=state.SIDEBAR_MANAGE_OPEN,
        on_change="rerun",
    ) as box:
        if not box.open:
            return
        refusal = access.current().train_refusal
        if refusal:
            st.caption(access.plain(refusal))
        if live:
            st.caption("It is training: stop it first, then rename or delete it.")
        locked = live or refusal is not None
        # Keyed by run: each run's field starts at its own name.
        key = state.sub_key(state.SIDEBAR_RENAME_TO, run.path.name)
        name = st.text_input("New name", value=run.path.name, key=key)
        if st.button("Rename", key=state.SIDEBAR_RENAME, disabled=locked) and name != run.path.name:
            _rename(run, name)
        sure = st.checkbox(
            f"Delete {run.path.name} and all its files (weights, history, metrics)",
            key=state.sub_key(state.SIDEBAR_DELETE_SURE, run.path.name),
            disabled=locked,
        )
        if st.button("Delete for good", key=state.SIDEBAR_DELETE, disabled=locked or not sure):
            _delete(run)


def _rename(run: RunDir, name: str) -> None:
    try:
        renamed = runs.rename(run, name, access.current())
    except (*USER_ERRORS, RuntimeError) as e:  # RuntimeError: RunLocked, it trains
        st.error(access.plain(e))
        return
    if str(run.path.resolve()) in state.attached_runs():
        state.add_attached_run(str(renamed.path.resolve()))
    _open(runs.run_ref(renamed))
    st.session_state[state.SIDEBAR_NOTICE] = f"Renamed {run.path.name} to {renamed.path.name}"
    st.rerun()


def _delete(run: RunDir) -> None:
    try:
        runs.delete(run, access.current())
    except (*USER_ERRORS, RuntimeError) as e:
        st.error(access.plain(e))
        return
    _open("")
    st.session_state[state.SIDEBAR_NOTICE] = f"Deleted {run.path.name}"
    st.rerun()


def _attach(path: str) -> None:
    """Open the run at `path` and remember it: this session may reopen it by URL."""
    try:
        run = runs.attach_run(path, access.current())
    except (ValueError, OSError) as e:  # no run there, or refused (PermissionError)
        st.error(access.plain(e))
        return
    state.add_attached_run(str(run.path.resolve()))
    _open(runs.run_ref(run))
    st.session_state[state.SIDEBAR_NOTICE] = f"Attached {run.path}"
    st.rerun()


@guard.shows_run_errors
def _run_controls(run: RunDir, refresh_s: float | None) -> None:
    """State line, pause / resume / stop, and live beta / lr; redrawn every `refresh_s`
    while the tab is visible (None: by the page)."""
    ticker.every(refresh_s, key=state.SIDEBAR_CLOCK)
    status = runs.run_status(run)
    where = f" on {status.host}" if status.on_other_host else ""
    if status.world_size > 1:
        where += f", {status.world_size} processes"
    # The epoch, not the step: this line refreshes every 2 s and a step count would visibly
    # lag the training view's readout (refreshed every second). Without a clock of its own
    # (the Training view, whose readouts show it) a live run's epoch would stand still.
    epoch = f" · epoch {status.epoch}" if refresh_s or not status.is_live else ""
    st.caption(
        f"**{access.plain(run.path.name)}**: {access.plain(runs.state_line(status) + where)}"
        + epoch
    )
    refusal = access.current().train_refusal
    locked = refusal is not None  # served beyond loopback, training not opted in
    if refusal:
        st.caption(access.plain(refusal))
    # A run live on another host is read-only here: its lock and process are not ours.
    live = status.is_live and not status.on_other_host
    col_pause, col_resume, col_stop = st.columns([1, 1.3, 1], gap="small")
    if col_pause.button("Pause", disabled=locked or not live or status.is_paused, width="stretch"):
        _act(runs.pause_run, run, "Pause sent")
    if col_resume.button("Resume", disabled=locked or not status.is_resumable, width="stretch"):
        _act(runs.resume_run, run, "Resuming")
    if col_stop.button("Stop", disabled=locked or not live, width="stretch"):
        _act(runs.stop_run, run, "Stop sent")
    if not run.exists():
        return  # launched, no config.json yet: nothing to change live
    with st.form(state.SIDEBAR_LIVE_FORM):
        in_force = runs.live_settings(run, status)  # this tick's status: one reading
        beta, lr = in_force.beta, in_force.lr
        # Keyed by run and by the value in force: the inputs keep what the user types until
        # the trainer applies a change (from here, a health fix, the CLI), then start at it.
        # This fragment redraws every STATUS_REFRESH_S while the run is live: no second copy.
        name = run.path.name
        col_beta, col_lr = st.columns(2)
        new_beta = col_beta.number_input(
            "beta",
            min_value=BETA_RANGE[0],
            max_value=BETA_RANGE[1],
            value=beta,
            step=0.5,
            format="%.2f",
            key=state.live_setting_key("beta", name, beta),
        )
        new_lr = col_lr.number_input(
            "lr",
            min_value=LR_RANGE[0],
            max_value=LR_RANGE[1],
            value=lr,
            step=1e-4,
            format="%.0e",
            key=state.live_setting_key("lr", name, lr),
        )
        if st.form_submit_button("Apply live", disabled=locked or not live, width="stretch"):
            _act(lambda r: runs.apply_live(r, new_beta, new_lr), run, "New beta / lr sent")


def _act(action, run: RunDir, done: str) -> None:
    refusal = access.current().train_refusal
    if refusal:  # the buttons are disabled; a hand-made widget event must not get through
        st.error(access.plain(refusal))
        return
    try:
        action(run)
    except (*USER_ERRORS, RuntimeError) as e:
        st.error(access.plain(e))
        return
    st.session_state[state.SIDEBAR_NOTICE] = done
    st.rerun()


def default_dataset() -> tuple[str, str | None]:
    """MNIST when it is on disk, else Fashion-MNIST, else shapes; plus a note if MNIST is not."""
    if is_available_offline("mnist"):
        return "mnist", None
    fallback = "fashion-mnist" if is_available_offline("fashion-mnist") else "shapes"
    note = f"MNIST is not on this machine: {DATASET_LABELS[fallback]} is picked."
    return fallback, note


def _new_run_form() -> None:
    """Dataset first and only its fields, Start near the top, then right under Start what
    the user needs to know: the result, the run-time estimate, the busy trainer slots.
    A fragment, not an st.form: picking a dataset redraws this form (its fields follow the
    choice) and nothing else."""
    dataset, note = default_dataset()
    if note:
        st.caption(note)
    policy = access.current()
    refusal = policy.train_refusal
    choices, submitted, below = _choices(dataset, start_disabled=refusal is not None)
    with below:
        if refusal:
            st.caption(access.plain(refusal))
            return
        try:
            running, limit = runs.running_trainers(), runs.max_trainers()
        except ValueError as e:  # a bad $VAE_EXPLORER_MAX_TRAINERS
            st.error(access.plain(e))
            return
        full = running >= limit
        if submitted and not full:
            _start(choices, policy)
        elif submitted or full:
            _slots_busy(choices, policy, limit, refused=submitted)


def _start(choices: runs.RunChoices, policy: access.Policy) -> None:
    try:
        with _fetching(choices):
            run = runs.start_run(choices, policy=policy)  # checks the policy again
    except (*USER_ERRORS, RuntimeError) as e:  # RuntimeError: trainer limit, missing data
        st.error(f"Not started: {access.plain(e)}")
        return
    _opened(run, f"Started {run.path.name}")


def _opened(run: RunDir, notice: str) -> None:
    """Open a run just started, in the Training view."""
    state.set_open_run_ref(runs.run_ref(run))
    state.open_view_after_rerun("Training")
    st.session_state[state.SIDEBAR_NOTICE] = notice
    st.rerun()


def _slots_busy(choices: runs.RunChoices, policy: access.Policy, limit: int, refused: bool) -> None:
    """Every trainer slot is taken: say by which runs, and offer to stop one and start."""
    holders = runs.slot_holders()
    held = ", ".join(f"**{access.plain(r.path.name)}** ({_progress(r)})" for r in holders)
    lead = "Not started: all" if refused else "All"
    st.warning(
        f"{lead} {limit} trainer slots are busy (one per core here)"
        + (f": {held}." if held else ".")
        + " Stop one to start this run.",
        icon=":material/hourglass_top:",
    )
    if holders:
        names = [r.path.name for r in holders]
        victim = st.selectbox("Stop which run?", names, key=state.SIDEBAR_STOP_WHICH)
        if st.button(f"Stop {victim} and start", key=state.SIDEBAR_STOP_AND_START, width="stretch"):
            chosen = holders[names.index(victim)]
            try:
                with st.spinner(f"Stopping {victim} (it saves a checkpoint first)…"):
                    run = runs.stop_and_start(chosen, choices, policy=policy)
            except (*USER_ERRORS, RuntimeError) as e:
                st.error(f"Not started: {access.plain(e)}")
                return
            _opened(run, f"Stopped {victim} (resumable) and started {run.path.name}")
    st.caption(
        f"A stopped run keeps its checkpoint: Resume it later. The limit is set by "
        f"{runs.MAX_TRAINERS_ENV}."
    )


def _progress(run: RunDir) -> str:
    """ "running, step 1,200" for the busy-slots line; the state alone when unreadable."""
    try:
        status = runs.run_status(run)
    except guard.RUN_ERRORS:
        return runs.state_word(run)
    return f"{runs.state_line(status)}, step {status.step:,}"


def _import_form() -> None:
    """A VAE the project did not build: a `module:Class` or a diffusers folder, checked on one
    batch of a dataset and written as a run to explore and fine-tune."""
    refusal = access.current().import_refusal
    if refusal:
        st.caption(access.plain(refusal))
        return
    with st.form(state.SIDEBAR_IMPORT_FORM):
        source = st.radio("Model", ("Python class", "diffusers AutoencoderKL"), horizontal=True)
        where = st.text_input(
            "MODULE:CLASS, or the diffusers folder",
            placeholder="mypkg.vae:MyVAE",
            help="a class importable from the folder the app runs in (or PYTHONPATH) whose "
            "encode(x) gives (mu, logvar) or a Normal and decode(z) gives images",
        )
        kwargs = st.text_input("Constructor kwargs (JSON)", placeholder='{"zdim": 16}')
        weights = st.text_input("Weights (.safetensors)", help="empty: fresh weights")
        dataset = st.selectbox(
            "Data it takes",
            DATASETS,
            format_func=DATASET_LABELS.get,
            key=state.SIDEBAR_IMPORT_DATASET,
            help="the images it is checked on, explored with and fine-tuned on",
        )
        folder = st.text_input(
            "Image folder (for My image folder)", key=state.SIDEBAR_IMPORT_FOLDER
        )
        size = st.selectbox(
            "Image size (Shapes, image folder)",
            IMAGE_SIZES,
            index=len(IMAGE_SIZES) - 1,
            key=state.SIDEBAR_IMPORT_SIZE,
        )
        name = st.text_input("Run name", value="my-vae")
        submitted = st.form_submit_button("Import", width="stretch")
    if submitted:
        diffusers = source.startswith("diffusers")
        choices = runs.ImportChoices(
            name=name.strip(),
            model="" if diffusers else where,
            diffusers=where if diffusers else "",
            kwargs=kwargs,
            weights=weights,
            dataset=dataset,
            folder=folder if dataset == "folder" else "",
            image_size=size if dataset in ("shapes", "folder") else None,
        )
        with st.spinner("Importing: building the model and checking it on one batch…"):
            try:
                run = runs.import_run(choices, policy=access.current())
            except (*USER_ERRORS, PermissionError) as e:
                st.error(f"Not imported: {access.plain(e)}")
                return
        state.set_open_run_ref(runs.run_ref(run))
        st.session_state[state.SIDEBAR_NOTICE] = (
            f"Imported {run.path.name}: explore it, or Resume to fine-tune"
        )
        st.rerun()


def _fetching(choices: runs.RunChoices):
    """A spinner while Start downloads a dataset that is not on disk (else nothing)."""
    if not runs.needs_download(choices):
        return contextlib.nullcontext()
    label = DATASET_LABELS[choices.dataset]
    return st.spinner(f"{label} is not on this machine: downloading it before the run starts…")


def _choices(default: str, start_disabled: bool) -> tuple[runs.RunChoices, bool, Any]:
    """Draw the form; (the choices, whether Start was pressed, the container under Start)."""
    dataset = st.selectbox(
        "Dataset", DATASETS, index=DATASETS.index(default), format_func=DATASET_LABELS.get
    )
    folder, image_size, num_samples = "", None, None
    if dataset == "folder":
        folder = st.text_input("Image folder", placeholder="/path/to/images")
    if dataset in ("shapes", "folder"):
        col_size, col_count = st.columns(2)
        image_size = int(col_size.selectbox("Image size", IMAGE_SIZES))
        if dataset == "shapes":
            num_samples = int(
                col_count.number_input(
                    "Shapes: images",
                    min_value=256,
                    max_value=MAX_SHAPES_IMAGES,
                    value=20_000,
                    step=1000,
                    help="training images to generate",
                )
            )
    architecture = st.radio("Model", ARCHITECTURES, horizontal=True)
    col_latent, col_epochs = st.columns(2)
    latent_dim = col_latent.number_input(
        "Latent size", min_value=1, max_value=MAX_LATENT_DIM, value=10
    )
    epochs = col_epochs.number_input("Epochs", min_value=1, max_value=MAX_EPOCHS, value=5, step=1)
    submitted = st.button("Start", type="primary", width="stretch", disabled=start_disabled)
    estimate = st.empty()
    below = st.container()  # the result, and the busy slots, right under Start
    with st.popover("More settings", width="stretch"):
        name = st.text_input(
            "Run name (optional)",
            placeholder="e.g. fmnist-mlp-z10-b1-3",
            max_chars=MAX_NAME_CHARS,
            help="Left empty: dataset-model-z<latent>-b<beta>-<counter>. "
            "Letters, digits, '.', '_' and '-'.",
        )
        col_beta, col_lr = st.columns(2)
        beta = col_beta.number_input(
            "beta", min_value=BETA_RANGE[0], max_value=BETA_RANGE[1], value=1.0, step=0.5
        )
        lr = col_lr.number_input(
            "Learning rate",
            min_value=LR_RANGE[0],
            max_value=LR_RANGE[1],
            value=1e-3,
            step=1e-4,
            format="%.0e",
        )
        beta_schedule, warmup_steps, free_bits = _kl_schedule_choices()
        batch_size = st.number_input(
            "Batch size", min_value=1, max_value=MAX_BATCH_SIZE, value=128, step=32
        )
    choices = runs.RunChoices(
        dataset=dataset,
        architecture=architecture,
        latent_dim=int(latent_dim),
        beta=float(beta),
        lr=float(lr),
        beta_schedule=beta_schedule,
        warmup_steps=int(warmup_steps),
        free_bits=float(free_bits),
        batch_size=int(batch_size),
        epochs=int(epochs),
        image_size=image_size,
        folder=folder,
        num_samples=num_samples,
        name=name.strip(),
    )
    estimate.caption(
        _estimate_line(str(runs.runs_root()), dataset, architecture, int(epochs), num_samples or 0)
    )
    st.caption(access.plain(settings_summary(choices)))
    return choices, submitted, below


@st.cache_data(ttl=ESTIMATE_TTL_S, max_entries=64, show_spinner=False)
def _estimate_line(root: str, dataset: str, architecture: str, epochs: int, images: int) -> str:
    """speed.estimate_line, read from the runs at most once a minute: it opens every run's
    config and status, and the sidebar redraws on every widget change."""
    return speed.estimate_line(Path(root), dataset, architecture, epochs, images)


def settings_summary(choices: runs.RunChoices) -> str:
    """The popover's settings in one line, so what Start will use is in view."""
    schedule = SCHEDULE_LABELS[choices.beta_schedule]
    if choices.beta_schedule != "constant":
        schedule += f" over {choices.warmup_steps:,} steps"
    parts = [
        choices.name or "name: automatic",
        f"beta {choices.beta:g} ({schedule})",
        f"lr {choices.lr:.0e}",
        f"batch {choices.batch_size}",
    ]
    if choices.free_bits:
        parts.append(f"free bits {choices.free_bits:g}")
    return " · ".join(parts)


def _kl_schedule_choices() -> tuple[str, int, float]:
    """Beta schedule, KL warm-up length and free bits: (schedule, steps, nats per dim).
    The warm-up field shows only for a schedule that has one, so "linear warm-up" never
    sits beside "0 steps" (which meant constant)."""
    schedule = st.selectbox(
        "Beta schedule",
        BETA_SCHEDULES,
        index=BETA_SCHEDULES.index("constant"),
        format_func=SCHEDULE_LABELS.get,
        help="constant: beta from the first step. linear: beta rises from 0 over the "
        "warm-up, then holds (Bowman et al. 2016). cyclical: that ramp repeats every "
        "period (Fu et al. 2019).",
    )
    # Free bits beside the warm-up field, or alone when the schedule has none.
    col_warmup, col_free_bits = st.columns(2) if schedule != "constant" else (None, st)
    warmup_steps = 0
    if schedule == "linear":
        warmup_steps = col_warmup.number_input(
            "KL warm-up (steps)",
            min_value=max(1, WARMUP_RANGE[0]),
            max_value=WARMUP_RANGE[1],
            value=WARMUP_DEFAULT_STEPS,
            step=500,
            help="steps over which beta rises from 0 to its value",
        )
    elif schedule == "cyclical":
        warmup_steps = col_warmup.number_input(
            "Cycle period (steps)",
            min_value=max(MIN_CYCLE_PERIOD, WARMUP_RANGE[0]),
            max_value=WARMUP_RANGE[1],
            value=CYCLE_DEFAULT_STEPS,
            step=500,
            help="steps of one ramp from 0 to beta; the ramp repeats",
        )
    free_bits = col_free_bits.number_input(
        "Free bits λ (nats/dim)",
        min_value=FREE_BITS_RANGE[0],
        max_value=FREE_BITS_RANGE[1],
        value=0.0,
        step=0.1,
        help="KL below λ in a dimension is not penalised (Kingma et al. 2016): a floor "
        "that keeps dimensions from collapsing. 0 = off.",
    )
    return schedule, int(warmup_steps), float(free_bits)
