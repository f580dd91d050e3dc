"""A tiny Streamlit app around the live-drag sliders, for the browser test and the benchmark.

Run: streamlit run tests/e2e/live_drag_app.py -- [mlp|conv|conv-rgb] [latent_dim] [top_dims]
It builds a random-init VAE (seeded), shows the component and writes back what it reports.
"""

from __future__ import annotations

import sys

import streamlit as st
import torch

from explorer.components import live_latent_sliders
from vae_core.config import ModelConfig
from vae_core.export import decoder_payload
from vae_core.models import VAE


def _config(architecture: str, latent_dim: int) -> ModelConfig:
    if architecture == "conv":
        return ModelConfig(architecture="conv", latent_dim=latent_dim, conv_channels=(32, 64))
    if architecture == "conv-rgb":
        return ModelConfig(
            image_shape=(3, 32, 32),
            architecture="conv",
            latent_dim=latent_dim,
            conv_channels=(16, 32, 32),
            likelihood="gaussian",
        )
    return ModelConfig(architecture="mlp", latent_dim=latent_dim)


@st.cache_resource
def _payload(architecture: str, latent_dim: int) -> dict:
    torch.manual_seed(0)
    config = _config(architecture, latent_dim)
    model = VAE(config).eval()
    last = model.decoder.out if config.architecture == "mlp" else model.decoder.deconvs[-1]
    spread, center = (0.3, 0.5) if config.likelihood == "gaussian" else (2.0, 0.0)
    with torch.no_grad():
        # Random init decodes to near-uniform grey; rescale the last layer so drags show.
        out = model.decode(torch.randn(64, latent_dim))
        last.weight.mul_(spread / out.std())
        last.bias.sub_(out.mean()).mul_(spread / out.std()).add_(center)
    return decoder_payload(model, version=1)


architecture = sys.argv[1] if len(sys.argv) > 1 else "mlp"
latent_dim = int(sys.argv[2]) if len(sys.argv) > 2 else 8
top_dims = int(sys.argv[3]) if len(sys.argv) > 3 else None
kl = [2.0 / (d + 1) if d % 4 != 3 else 0.001 for d in range(latent_dim)]
order = sorted(range(latent_dim), key=lambda d: -kl[d])

st.session_state.setdefault("z", [0.0] * latent_dim)
st.session_state.setdefault("runs", 0)
st.session_state["runs"] += 1
if st.checkbox("Rotate the order on every run"):  # as a changing KL order does in training
    shift = st.session_state["runs"] % latent_dim
    order = order[shift:] + order[:shift]
if st.button("Reset"):
    st.session_state["z"] = [0.0] * latent_dim

# Hiding and showing the component remounts its iframe, which then has to ask for weights.
if not st.checkbox("Hide sliders"):
    payload = _payload(architecture, latent_dim)
    reported = live_latent_sliders(payload, st.session_state["z"], kl, order, top_dims=top_dims)
    if reported is not None:
        st.session_state["z"] = reported
st.text(f"reported z: {[round(v, 2) for v in st.session_state['z']]}")
st.text(f"script runs: {st.session_state['runs']}")
st.text(f"order: {order}")
