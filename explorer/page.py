"""The page: the sidebar and the selected view (explorer/app.py serves it).

The sidebar starts / attaches / controls a run; the selected view reads that run's directory.
Only the selected view runs, so a slider step never competes with redrawing live charts,
and only the selected view is imported: the sidebar and the run list are drawn before torch
is (tests/test_first_page.py keeps that true).
"""

from __future__ import annotations

import importlib

import streamlit as st

from explorer import access, guard, runs, state
from explorer.panels import waiting
from explorer.views import sidebar

VIEWS = {  # label -> module in explorer.views, imported when first shown
    "Training": "training",
    "Latent sliders": "sliders",
    "Scatter": "scatter",
    "Interpolation": "interpolation",
    "Inspect image": "inspector",
    "Disentanglement": "disentanglement",
    "Prior samples": "samples",
    "Compare": "compare",
}

st.set_page_config(page_title="VAE Latent Explorer", page_icon="🧭", layout="wide")
access.check_origin()  # before anything: a page from another origin gets one line, no app
runs.keep_ui_threads()  # before torch loads: one thread per session's script run
state.init()

run = sidebar.render()
if run is None:
    st.header("VAE Latent Explorer")
    st.markdown(
        "Pick a dataset and a model under **New run** in the sidebar and press **Start**, "
        "or pick / attach an existing run. Training runs in the background; the views show "
        "its curves live, and let you move through the latent space while it learns."
    )
    st.stop()

st.header(access.plain(run.path.name))
state.apply_next_view()  # a run just started or forked opens in Training
view = st.segmented_control(
    "View",
    list(VIEWS),
    default="Training",
    required=True,
    key=state.APP_VIEW,
    bind="query-params",
    label_visibility="collapsed",
)
if not waiting.until_started(run):  # launched, its trainer not yet writing the run
    st.stop()
render = importlib.import_module(f"explorer.views.{VIEWS[view]}").render
runs.keep_ui_threads()  # and now that the view has loaded torch
guard.shows_run_errors(render)(run)
