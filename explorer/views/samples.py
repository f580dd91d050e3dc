"""A grid of decoded samples from the prior N(0, T^2 I) with temperature and reseed."""

from __future__ import annotations

import streamlit as st

from explorer import cache, images, state
from explorer.views import waiting
from vae_core import latent
from vae_core.rundir import RunDir

GRID_SIZES = (16, 36, 64)
WHAT = """
How a VAE generates: draw z ~ N(0, T² I) and decode it. Each image is the decoder's output
(Bernoulli probabilities, Gaussian means for colour data), not a pixel sample. T = 1 samples the
model's prior; T < 1 stays near its centre (typical, cleaner, less varied), T > 1 goes beyond it.
This works only because the KL term pulls the codes of the data onto the prior: with β = 0 (a
plain autoencoder) they can sit anywhere, and prior samples decode to nothing like the data.
"""


def render(run: RunDir) -> None:
    """Temperature, grid size and reseed, then the grid and a PNG download."""
    with st.popover("What am I looking at?", icon=":material/help:"):
        st.markdown(WHAT)
    if not waiting.until_snapshot(run, "Prior samples"):
        return
    version = run.snapshot_version()
    col_t, col_n, col_seed = st.columns([2, 1, 1])
    temperature = col_t.slider(
        "Temperature T",
        0.0,
        2.0,
        1.0,
        0.05,
        key="samples.temperature",
        help="z ~ N(0, T² I): below 1 gives typical, sharper samples; above 1 more varied ones",
    )
    n = col_n.selectbox("Samples", GRID_SIZES, index=1, key="samples.n")
    col_seed.button("Reseed", on_click=_reseed, width="stretch")
    seed = st.session_state[state.SAMPLES_SEED]
    decoded = cache.prior_samples(str(run.path), version, n, temperature, seed)
    nrow = round(n**0.5)
    grid = latent.image_grid(decoded, nrow=nrow)
    png = images.png_bytes(grid, target_px=64 * nrow)
    st.image(
        png,
        caption=f"{n} samples, T = {temperature:.2f}, seed {seed}, snapshot v{version}",
        output_format="PNG",
    )
    st.download_button("Download PNG", png, "samples.png", "image/png", on_click="ignore")


def _reseed() -> None:
    st.session_state[state.SAMPLES_SEED] += 1
