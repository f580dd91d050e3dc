"""VAE Latent Explorer: train a VAE in the background and explore its latent space live.

    streamlit run explorer/app.py

The sidebar starts / attaches / controls a run; the tabs read that run's directory.
"""

from __future__ import annotations

import streamlit as st

from explorer import state
from explorer.views import interpolation, samples, scatter, sidebar, sliders, training

st.set_page_config(page_title="VAE Latent Explorer", page_icon="🧭", layout="wide")
state.init()

run = sidebar.render()
if run is None:
    st.header("VAE Latent Explorer")
    st.markdown(
        "Pick a dataset and a model under **New run** in the sidebar and press **Start**, "
        "or pick / attach an existing run. Training runs in the background; the tabs show "
        "its curves live, and let you move through the latent space while it learns."
    )
    st.stop()

st.header(run.path.name)
tab_train, tab_sliders, tab_scatter, tab_interp, tab_samples = st.tabs(
    ["Training", "Latent sliders", "Scatter", "Interpolation", "Prior samples"]
)
with tab_train:
    training.render(run)
with tab_sliders:
    sliders.render(run)
with tab_scatter:
    scatter.render(run)
with tab_interp:
    interpolation.render(run)
with tab_samples:
    samples.render(run)
