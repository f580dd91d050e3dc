"""Decoded samples from the prior N(0, T^2 I) beside samples from the aggregate posterior
(a Gaussian mixture fitted to the encoded test set), same noise, temperature and reseed."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import cache, images, state
from explorer.panels import explain, waiting
from vae_core import latent
from vae_core.rundir import RunDir

GRID_SIZES = (16, 36, 64)
MIXTURE_SIZES = (5, 10, 20)  # components of the aggregate posterior's Gaussian mixture
WHAT = """
How a VAE generates: draw z ~ N(0, T² I) and decode it. Each image is the decoder's output
(Bernoulli probabilities, Gaussian means for colour data), not a pixel sample. T = 1 samples the
model's prior; T < 1 stays near its centre (typical, cleaner, less varied), T > 1 goes beyond it.
This works only because the KL term pulls the codes of the data onto the prior: with β = 0 (a
plain autoencoder) they can sit anywhere, and prior samples decode to nothing like the data.

The KL term never pulls them all the way: the aggregate posterior q(z) = (1/N) Σᵢ q(z|xᵢ) of
the encoded test images leaves *holes* the prior still samples. The right grid samples q
instead: a K-component Gaussian mixture with diagonal covariances, fitted by EM to one draw of
q(z|xᵢ) per image; z = μ_k + σ_k · T ε uses the left grid's ε, so the grids differ only in
where the noise is put. Samples that look better on the right mean the prior has holes.
"""


def render(run: RunDir) -> None:
    """Temperature, grid size and reseed, then the grid and a PNG download."""
    explain.what_am_i_looking_at(WHAT, "Prior samples")
    if not waiting.until_snapshot(run, "Prior samples"):
        return
    version = run.snapshot_version()
    col_t, col_n, col_k, col_seed = st.columns([2, 1, 1, 1])
    temperature = col_t.slider(
        "Temperature T",
        0.0,
        2.0,
        1.0,
        0.05,
        key=state.SAMPLES_TEMPERATURE,
        help="z ~ N(0, T² I): below 1 gives typical, sharper samples; above 1 more varied ones",
    )
    n = col_n.selectbox("Samples", GRID_SIZES, index=1, key=state.SAMPLES_N)
    k = col_k.selectbox(
        "Mixture K", MIXTURE_SIZES, index=1, key=state.SAMPLES_K, help="aggregate posterior's GMM"
    )
    col_seed.button("Reseed", on_click=_reseed, width="stretch")
    seed = st.session_state[state.SAMPLES_SEED]
    run_path = str(run.path)
    _prior_mismatch_note(run_path, version)
    col_prior, col_agg = st.columns(2)
    with col_prior:
        st.markdown("**Prior** N(0, T² I)")
        decoded = cache.prior_samples(run_path, version, n, temperature, seed)
        caption = f"{n} samples, T = {temperature:.2f}, seed {seed}, snapshot v{version}"
        png = _grid(decoded, n, caption)
        st.download_button("Download PNG", png, "samples.png", "image/png", on_click="ignore")
    with col_agg:
        st.markdown(f"**Aggregate posterior** q(z), a {k}-component Gaussian mixture")
        decoded = cache.aggregate_samples(run_path, version, n, temperature, seed, k)
        _grid(
            decoded, n, f"the same noise, through the mixture fitted to the test codes (v{version})"
        )


PRIOR_MISMATCH = 10.0  # E[z^2] of the codes this many times off the prior's 1: say so


def _prior_mismatch_note(run_path: str, version: int) -> None:
    """Say plainly when the data's codes do not fill N(0, I), so prior draws are not images."""
    moment = latent.aggregate_second_moment(cache.encoded(run_path, version)[0])
    if 1 / PRIOR_MISMATCH <= moment <= PRIOR_MISMATCH:
        return
    st.info(
        f"The encoded test images have E[z²] = {moment:.3g} per dimension where the prior "
        "N(0, I) has 1: this model was trained with a tiny KL weight (or none), so its codes "
        "do not fill the prior and prior draws (left) are not images of the data. The "
        "aggregate-posterior samples (right) draw from where the data's codes are."
    )


def _grid(decoded: np.ndarray, n: int, caption: str) -> bytes:
    """Show decoded samples (n, H, W, C) as a square-ish grid; returns its PNG."""
    nrow = round(n**0.5)
    png = images.png_bytes(latent.image_grid(decoded, nrow=nrow), target_px=64 * nrow)
    st.image(png, caption=caption, output_format="PNG")
    return png


def _reseed() -> None:
    st.session_state[state.SAMPLES_SEED] += 1
