"""Every st.session_state key the explorer uses, with defaults and typed accessors.

Keys are prefixed by the view that owns them ("sliders.z", "scatter.selected"). Only the
open run lives in the URL (?run=...), so it survives reloads and is shared by link.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

import streamlit as st

RUN_PARAM = "run"  # query parameter naming the open run
Z_PARAM = "z"  # query parameter: the latent point, comma-separated; follows the sliders

# -- keys --
APP_VIEW = "view"  # the view selector; bound to ?view=... so a reload keeps the view
SIDEBAR_NOTICE = "sidebar.notice"  # a one-shot message to show after a rerun
SIDEBAR_ATTACHED = "sidebar.attached"  # tuple of run paths (resolved) this session attached
SIDEBAR_RENAME_TO = "sidebar.rename_to"  # per run: the Rename field's text
SIDEBAR_DELETE_SURE = "sidebar.delete_sure"  # per run: the "Delete ... for good" checkbox
SIDEBAR_PUBLISH = "sidebar.publish"  # the "Publish as one HTML page" download button
TRAINING_GRADVAR = "training.gradvar"  # (run path, version, summary dict) last measured
TRAINING_ACTIVE_THRESHOLD = "training.active_threshold"  # nats: a dim above it is active
TRAINING_GAP_UNITS = "training.gap_units"  # "nats" or "bits/dim" (segmented control)
TRAINING_LAST_FIX = "training.last_fix"  # (run path, fix label, time, error or None)
TRAINING_LIVE = "training.live"  # the live charts component's key (its value: rerun requests)
TRAINING_FEED = "training.feed"  # the token the live charts fetch their ticks with (live_feed)
SLIDERS_Z = "sliders.z"  # the current latent point, list[float] (D,)
SLIDERS_RUN = "sliders.run"  # which run (and D) SLIDERS_Z belongs to
SLIDERS_FROZEN = "sliders.frozen"  # (run path, version, model) pinned by "freeze weights"
SLIDERS_FREEZE = "sliders.freeze"  # the toggle's widget key
SLIDERS_SEED = "sliders.seed"  # seed of the last "random" draw
SLIDERS_ORDER = "sliders.order"  # the dimensions in display order (KL order at the last sort)
SLIDERS_RESORT = "sliders.resort"  # set by a full script run: sort by KL again
SLIDERS_LIVE = "sliders.live"  # toggle: in-browser live-drag sliders vs st.slider grid
SLIDERS_LIVE_WIDGET = "sliders.live_widget"  # the live-drag component's widget key
SLIDERS_RANGE = "sliders.range"  # slider range preset: "Prior ±3σ" or "Data 1–99 %"
SLIDERS_ATTRIBUTES = "sliders.attributes"  # (run path, {name: Attribute}) unsaved vectors
ATTRIBUTES_GROUPS = "attributes.groups"  # (run path, {"A": indices, "B": indices}) from the scatter
ATTRIBUTES_NOTICE = "attributes.notice"  # (kind, one line) after an add / save / delete
SCATTER_GROUP = "scatter.group"  # (run path, dataset indices) of the last box / lasso selection
SCATTER_HOLES = "scatter.holes"  # toggle: shade the scatter by log q_agg - log p
SCATTER_SELECTED = "scatter.selected"  # dataset index of the selected test image, or None
SCATTER_CHART = "scatter.chart"  # the plotly chart's widget key (selection state)
SCATTER_PROJECTION = "scatter.projection"  # "PCA", "t-SNE" or "UMAP" (segmented control)
SCATTER_SEARCH = "scatter.search"  # the search box: class names and test-image indices
SCATTER_NEIGHBOURS = "scatter.neighbours"  # k, the nearest neighbours shown for a point
INTERP_PATH = "interpolation.path"  # last path: {"run": run path, "path": (steps, D) list}
SAMPLES_SEED = "samples.seed"
SCATTER_TIMELAPSE = "scatter.timelapse"  # "Snapshot" or "Time-lapse" (segmented control)
SCATTER_TIMELAPSE_STEP = "scatter.timelapse_step"  # the history step picked to fork from
COMPARE_RUNS = "compare.runs"  # the run names compared (multiselect)
COMPARE_SEED = "compare.seed"  # prior samples' seed, shared by all compared runs
COMPARE_TEMPERATURE = "compare.temperature"

# -- widget keys: each widget's state lives under its key, so it is a session-state key too --
SIDEBAR_RUN_SELECT = "sidebar.run_select"  # the run picker
SIDEBAR_ATTACH_PATH = "sidebar.attach_path"  # "Path to a run directory"
SIDEBAR_ATTACH = "sidebar.attach"
SIDEBAR_RENAME = "sidebar.rename"
SIDEBAR_DELETE = "sidebar.delete"
SIDEBAR_IMPORT_DATASET = "sidebar.import_dataset"
SIDEBAR_IMPORT_FOLDER = "sidebar.import_folder"
SIDEBAR_IMPORT_SIZE = "sidebar.import_size"
SIDEBAR_LIVE_FORM = "sidebar.live"  # live beta / lr and Apply live
SIDEBAR_STOP_WHICH = "sidebar.stop_which"  # at the trainer limit: the run to stop
SIDEBAR_STOP_AND_START = "sidebar.stop_and_start"
SIDEBAR_IMPORT_FORM = "sidebar.import"
# Expanders and popovers that draw their contents only while open (`.open`): closed, their
# widgets would still be on the page, and every rerun, a fragment's tick included, renders
# the whole page again in the browser.
SIDEBAR_NEW_RUN_OPEN = "sidebar.new_run_open"  # family: with / without an open run
SIDEBAR_IMPORT_OPEN = "sidebar.import_open"
SIDEBAR_ATTACH_OPEN = "sidebar.attach_open"
SIDEBAR_MANAGE_OPEN = "sidebar.manage_open"
HELP_OPEN = "help.open"  # family: per view, its "What am I looking at?" popover
TRAINING_GRADVAR_OPEN = "training.gradvar_open"
SIDEBAR_CLOCK = "sidebar.clock"  # the run controls' refresh clock (components.ticker)
TRAINING_FORK_CLOCK = "training.fork_clock"
SCATTER_JOB_CLOCK = "scatter.job_clock"  # family: per projection method
COMPARE_CLOCK = "compare.clock"
WAITING_CLOCK = "waiting.clock"
TRAINING_CHART = "training"  # family: one plotly chart per slot name (sub_key)
TRAINING_ALARM = "training.alarm"  # family: one bordered container per alarm kind
TRAINING_FIX = "training.fix"  # family: per alarm kind, then per fix: its button
TRAINING_FORK = "training.fork"  # the Training view's fork panel (its widgets: sub_key)
TRAINING_FORK_EXPANDER = "training.fork_expander"  # keyed: stays open as its step label moves
TRAINING_GRADVAR_BUTTON = "training.gradvar_button"
TRAINING_RESUME_FORM = "training.resume_form"
SLIDERS_Z_NPY = "sliders.z_npy"  # the "z as .npy" download button
SCATTER_TIMELAPSE_CHART = "scatter.timelapse_chart"
SCATTER_TIMELAPSE_GIF = "scatter.timelapse_gif"
SCATTER_FORK = "scatter.fork"  # the time-lapse's fork panel (its widgets: sub_key)
SCATTER_FORK_EXPANDER = "scatter.fork_expander"  # keyed: stays open across reruns
SCATTER_TIMELAPSE_GIF_MADE = "scatter.timelapse_gif_made"  # (run path, steps, GIF bytes)
ATTRIBUTES_OPEN = "attributes.open"  # the panel's expander: its body runs only while open
ATTRIBUTES_MODE = "attributes.mode"  # two classes or two scatter groups
ATTRIBUTES_CLASS_A = "attributes.class_a"
ATTRIBUTES_CLASS_B = "attributes.class_b"
ATTRIBUTES_NAME = "attributes.name"  # the new vector's name field
ATTRIBUTES_REMOVE = "attributes.remove"  # the vectors picked for removal
INTERP_STEPS = "interpolation.steps"
INTERP_METHOD = "interpolation.method"  # "lerp" or "slerp"
INTERP_SCATTER = "interpolation.scatter"
INTERP_SOURCE = "interpolation.source"  # family: per endpoint "A" / "B", where it comes from
INTERP_INDEX = "interpolation.index"  # family: per endpoint, the test image's index
INTERP_SEED = "interpolation.seed"  # family: per endpoint, the prior sample's seed
INSPECT_ERROR_CHART = "inspector.error"
INSPECT_STD_CHART = "inspector.std"
INSPECT_SAMPLES_K = "inspector.samples_k"
INSPECT_OWN_SLIDERS = "inspector.own_sliders"  # "Open in sliders" for the user's image
INSPECT_SCATTER = "inspector.scatter"
DISENT_DIM = "disentanglement.dim"
SAMPLES_TEMPERATURE = "samples.temperature"
SAMPLES_N = "samples.n"
SAMPLES_K = "samples.k"  # mixture components of the aggregate posterior's GMM
COMPARE_CURVES = "compare.curves"
COMPARE_MAP = "compare.map"  # family: one latent map per compared run

_DEFAULTS = {
    SIDEBAR_NOTICE: None,
    SLIDERS_Z: None,
    SLIDERS_RUN: None,
    SLIDERS_FROZEN: None,
    SLIDERS_SEED: 0,
    SCATTER_SELECTED: None,
    INTERP_PATH: None,
    SAMPLES_SEED: 0,
}


def init() -> None:
    """Set defaults once per session (called at the top of app.py)."""
    for key, value in _DEFAULTS.items():
        st.session_state.setdefault(key, value)


def live_setting_key(setting: str, run_name: str, in_force: float) -> str:
    """Widget key of the sidebar's live `setting` ("beta", "lr") input for a run, while
    `in_force` is the value the trainer uses: a new value in force is a new, fresh input."""
    return f"live_{setting}.{run_name}.{in_force!r}"


def sub_key(prefix: str, part: str) -> str:
    """A key of the family `prefix` (one per run, endpoint, chart or fork panel), e.g. a
    run's own Rename field, so that each run starts afresh."""
    return f"{prefix}.{part}"


def slider_key(dim: int) -> str:
    """Widget key of the slider for latent dimension `dim`."""
    return f"sliders.dim.{dim}"


def spatial_slider_key(kind: str, index: int) -> str:
    """Widget key of a spatial latent's slider: a principal "direction" or a "channel"."""
    return f"sliders.spatial.{kind}.{index}"


def attribute_slider_key(name: str) -> str:
    """Widget key of the st.slider for the attribute vector called `name`."""
    return f"sliders.attr.{name}"


# -- the open run (in the URL) --
def open_run_ref() -> str:
    return st.query_params.get(RUN_PARAM, "")


def set_open_run_ref(ref: str) -> None:
    if ref != open_run_ref():
        st.query_params.pop(Z_PARAM, None)  # the point was the other run's
    if ref:
        st.query_params[RUN_PARAM] = ref
    else:
        st.query_params.pop(RUN_PARAM, None)


def attached_runs() -> tuple[str, ...]:
    """Run paths this browser session attached: beyond the root, only these open."""
    return st.session_state.get(SIDEBAR_ATTACHED, ())


def add_attached_run(path: str) -> None:
    # A new tuple each time: nothing mutable is shared between sessions.
    st.session_state[SIDEBAR_ATTACHED] = (*attached_runs(), path)


# -- the latent point shared by sliders, scatter and interpolation --
def latent_z(run_key: str, latent_dim: int) -> list[float]:
    """The current point for this run; when the run (or its size) changed, the URL's ?z=
    if it has one of this size (a "Copy state" link), else zeros."""
    if st.session_state.get(SLIDERS_RUN) != (run_key, latent_dim):
        set_latent_z(run_key, _z_from_url(latent_dim) or [0.0] * latent_dim)
    return list(st.session_state[SLIDERS_Z])


def _z_from_url(latent_dim: int) -> list[float] | None:
    """?z= as D finite floats; None if absent or malformed (then set_latent_z drops it)."""
    text = st.query_params.get(Z_PARAM)
    try:
        z = [float(v) for v in text.split(",")] if text else []
    except ValueError:
        return None
    ok = len(z) == latent_dim and all(math.isfinite(v) for v in z)
    return z if ok else None


def follow_latent_z(z: Sequence[float]) -> None:
    """Record the point the sliders show, without moving the slider widgets (they made it).

    The address bar's ?z= follows it, so copying the address or reloading keeps the point;
    the origin goes without one."""
    z = [float(v) for v in z]
    st.session_state[SLIDERS_Z] = z
    if not any(z):
        st.query_params.pop(Z_PARAM, None)
    elif st.query_params.get(Z_PARAM) != (text := z_param(z)):
        st.query_params[Z_PARAM] = text


def z_param(z: Sequence[float]) -> str:
    """z as ?z= carries it: float32 to 9 significant digits, which round-trips exactly."""
    return ",".join(f"{float(v):.9g}" for v in array("f", [float(v) for v in z]))


def set_latent_z(run_key: str, z: Sequence[float]) -> None:
    """Move the point and the slider widgets with it.

    Call from widget callbacks or before the sliders are drawn: Streamlit forbids writing
    a widget's key after the widget exists in the same run.
    """
    z = [float(v) for v in z]
    st.session_state[SLIDERS_RUN] = (run_key, len(z))
    follow_latent_z(z)
    for dim, value in enumerate(z):
        st.session_state[slider_key(dim)] = max(-3.0, min(3.0, round(value, 2)))


def selected_index() -> int | None:
    return st.session_state.get(SCATTER_SELECTED)


def set_selected_index(index: int | None) -> None:
    st.session_state[SCATTER_SELECTED] = index


# -- one image inspected, the user's own image, disentanglement (issue 10) --
INSPECT_MODE = "inspector.mode"  # "A test image" or "Your own image" (segmented control)
INSPECT_INDEX = "inspector.index"  # the index input's widget key; mirrors SCATTER_SELECTED
INSPECT_SEED = "inspector.seed"  # draws of "Random test image" so far
OWN_IMAGE = "inspector.own_image"  # the user's image: see own_image(); None when there is none
OWN_IMAGE_ERROR = "inspector.own_image_error"  # why the last upload / drawing was refused
OWN_UPLOAD = "inspector.upload"  # the file uploader's widget key
OWN_UPLOAD_SEEN = "inspector.upload_seen"  # file_id of the upload already taken in
OWN_CANVAS = "inspector.canvas"  # the drawing canvas's widget key
OWN_INVERT = "inspector.invert"  # "Invert": shown when the image's polarity is the data's opposite
OWN_SAMPLES_SEED = "inspector.samples_seed"  # seed of the posterior samples shown
OWN_SOURCE = "Your image"  # the interpolation endpoint source that uses it
DISENT_REQUEST = "disentanglement.request"  # (run path, snapshot version) MIG was asked for
DISENT_CHART = "disentanglement.chart"  # the MI heat map's widget key (selection state)
SLIDERS_FOCUS_DIM = "sliders.focus_dim"  # (run path, dim) picked on the MI heat map
SLIDERS_TRAVERSAL = "sliders.traversal"  # the sliders view's "Traversal grid" toggle
SLIDERS_TRAVERSAL_DIMS = "sliders.traversal_dims"  # its dimensions (rows) multiselect


def own_image(run_key: str, image_shape: tuple[int, ...]) -> dict | None:
    """The user's image for this run: {"pixels": uint8 (C, H, W), "notes": [...], "source":
    "upload" | "drawing"}; None when there is none, or it was made for another run's shape."""
    own = st.session_state.get(OWN_IMAGE)
    if not own or own["run"] != run_key or tuple(own["pixels"].shape) != tuple(image_shape):
        return None
    return own


def set_own_image(
    run_key: str, pixels, notes: Sequence[str], source: str, as_taken=None, inverted=False
) -> None:
    """Keep the preprocessed input (a small uint8 numpy array, never a tensor). `as_taken`:
    the pixels before an inversion, kept where the image's polarity differs from the run's
    data (the Invert toggle switches between them); `inverted`: whether `pixels` are so."""
    st.session_state[OWN_IMAGE] = {
        "run": run_key,
        "pixels": pixels,
        "notes": list(notes),
        "source": source,
        "as_taken": as_taken,
        "inverted": inverted,
    }
    st.session_state[OWN_IMAGE_ERROR] = None
    st.session_state[OWN_INVERT] = inverted  # the toggle starts at what was done


def refuse_own_image(message: str) -> None:
    """A bad upload: show only its message, and no stale image under it."""
    st.session_state[OWN_IMAGE] = None
    st.session_state[OWN_IMAGE_ERROR] = message


def current_view() -> str:
    """The view this page shows (a label of app.VIEWS): the selector's value, or before the
    selector is drawn on a fresh page (the sidebar comes first), the address's ?view=."""
    return st.session_state.get(APP_VIEW) or st.query_params.get(APP_VIEW) or "Training"


def open_view(label: str) -> None:
    """Switch to another view (a label of app.VIEWS); call from a widget callback."""
    st.session_state[APP_VIEW] = label


APP_NEXT_VIEW = "app.next_view"  # a view to show after the next rerun (a new run: Training)


def open_view_after_rerun(label: str) -> None:
    """Show view `label` on the next run of the page; callable anywhere, before st.rerun()."""
    st.session_state[APP_NEXT_VIEW] = label


def apply_next_view() -> None:
    """Switch to the view asked for by open_view_after_rerun; app.py calls this before it
    draws the view selector (a widget's key cannot change once the widget exists)."""
    label = st.session_state.pop(APP_NEXT_VIEW, None)
    if label is not None:
        st.session_state[APP_VIEW] = label
