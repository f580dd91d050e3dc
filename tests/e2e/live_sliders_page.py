"""A tiny Streamlit app around the live-drag sliders, for the browser tests and the benchmark.

The page behind tests/e2e/live_sliders_app.py (which serves it beside the wasm route):
    streamlit run tests/e2e/live_sliders_app.py -- [decoder] [latent_dim] [top_dims]
`decoder` is one of live_sliders_models.SHAPES (default mlp), or "unsupported": an ONNX model
with an op no runtime has, which the browser rejects. `?decoder=NAME` in the URL picks
another of SHAPES at its own latent size (one server for the browser parity test). It builds
the (seeded) decoder, shows the component and writes back what it reports.
LIVE_DRAG_VERSION_FILE=path in the environment: the snapshot version is read from this file
every 0.3 s (a "training run" publishing snapshots while the user drags).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import live_sliders_models  # beside this script, which streamlit puts on sys.path
import streamlit as st

from explorer.components.live_sliders import live_sliders, live_sliders_blocker
from vae_core.export import OnnxDecoder, onnx_decoder

VERSION_FILE = os.environ.get("LIVE_DRAG_VERSION_FILE")


def _unsupported_onnx(latent_dim: int) -> OnnxDecoder:
    """A valid ONNX graph whose only op (in a made-up domain) no runtime implements."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["z"], ["image"], domain="org.example.missing")
    graph = helper.make_graph(
        [node],
        "unsupported",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent_dim])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("org.example.missing", 1)]
    # IR 8 as torch writes: onnx's newest IR version would be refused before the op is seen
    data = helper.make_model(graph, ir_version=8, opset_imports=opsets).SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))  # valid ONNX: only the op is missing
    return OnnxDecoder(data, latent_dim, (1, 28, 28), "1", "unsupported-graph")


@st.cache_resource
def _decoder(name: str, latent_dim: int, version: int) -> OnnxDecoder:
    if name == "unsupported":
        return _unsupported_onnx(latent_dim)
    model = live_sliders_models.build(name, latent_dim, version)
    return onnx_decoder(model, version=version, latent_dim=latent_dim)


def _version() -> int:
    return int(Path(VERSION_FILE).read_text() or 1) if VERSION_FILE else 1


name = sys.argv[1] if len(sys.argv) > 1 else "mlp"
latent_dim = int(sys.argv[2]) if len(sys.argv) > 2 else 8
if st.query_params.get("decoder") in live_sliders_models.SHAPES:
    name = st.query_params["decoder"]
    latent_dim = live_sliders_models.SHAPES[name][0]
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


def _sliders() -> None:
    version = _version()
    decoder = _decoder(name, latent_dim, version)
    reason = live_sliders_blocker(decoder)
    if reason is not None:
        st.text(f"Live drag is off: {reason}")
        st.slider("z0 (server-side)", -3.0, 3.0, 0.0)
        return
    reported = live_sliders(decoder, st.session_state["z"], kl, order, top_dims=top_dims)
    if reported is not None:
        st.session_state["z"] = reported
    st.text(f"published version: {version}")


# Hiding and showing the component remounts its iframe, which then has to ask for weights.
if not st.checkbox("Hide sliders"):
    # a fragment rerun on a timer picks up new versions mid-drag, as the app's would
    (st.fragment(run_every=0.3)(_sliders) if VERSION_FILE else _sliders)()
st.text(f"reported z: {[round(v, 2) for v in st.session_state['z']]}")
st.text(f"script runs: {st.session_state['runs']}")
st.text(f"order: {order}")
