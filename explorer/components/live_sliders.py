"""Latent sliders whose decoded image follows the thumb while it is dragged.

`st.slider` reports only on release, so the decoding happens in the browser: the frontend
in `live_sliders/` runs the decoder exported by `vae_core.export.onnx_decoder` with ONNX
Runtime Web (wasm, one thread), vendored by npm into `live_sliders/node_modules` and served
from there (its wasm binary from the app's own route, explorer/ort_files.py, so the page needs
explorer/app.py's server), never from a CDN. The model crosses the websocket only when its version
changes; the latent vector comes back to Python on release and on keyboard steps. A decoder
that cannot be exported, or that the browser's runtime rejects, gets a one-line reason from
`live_sliders_blocker` and the caller draws server-side sliders instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st
import streamlit.components.v1 as components

if TYPE_CHECKING:  # explorer/ort_files.py (the server's wiring) imports this: no torch here
    from vae_core.export import OnnxDecoder

FRONTEND_DIR = Path(__file__).with_name("live_sliders")
_FRONTEND_FILES = (
    "index.html",
    "style.css",
    *(f"{m}.mjs" for m in ("main", "state", "protocol", "runtime", "sliders", "drawing", "bench")),
)
# What the page loads of the npm package (`make setup` installs it): the wasm build's ES
# module, its Emscripten glue and the (single-threaded use of the) SIMD wasm binary.
ORT_DIR = FRONTEND_DIR / "node_modules" / "onnxruntime-web" / "dist"
_ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
NO_ORT = "ONNX Runtime Web is not installed here (`make setup` installs it with npm)"


def is_available() -> bool:
    """Whether the component can be served here (frontend files present, pyarrow importable).

    Custom components need pyarrow; a broken install loses the frontend files. Either way
    the app should fall back to the server-side slider grid.
    """
    files_present = all((FRONTEND_DIR / name).is_file() for name in _FRONTEND_FILES)
    return files_present and importlib.util.find_spec("pyarrow") is not None


def ort_installed() -> bool:
    """Whether the vendored ONNX Runtime Web files the page loads are on disk."""
    return all((ORT_DIR / name).is_file() for name in _ORT_FILES)


def live_sliders_blocker(decoder: OnnxDecoder | str, key: str = "live_sliders") -> str | None:
    """Why live drag cannot run this decoder (one line), or None when it can.

    Args:
        decoder: the exported decoder, or the reason its export failed.
        key: the widget key `live_sliders` is (or was) drawn with.

    A browser that could not load a decoder reports it; the reason is kept per graph
    signature, so later snapshots of the same architecture are not tried again.
    """
    if isinstance(decoder, str):
        return decoder
    if not ort_installed():
        return NO_ORT
    memo: dict[str, Any] = st.session_state.setdefault(f"{key}::live_sliders", {})
    value = st.session_state.get(key)
    if isinstance(value, dict) and value.get("error") and value.get("signature"):
        memo["rejected"] = (value["signature"], str(value["error"])[:300])
    rejected = memo.get("rejected")
    if rejected is not None and rejected[0] == decoder.signature:
        return f"the browser cannot run this decoder ({rejected[1]})"
    return None


def _component() -> Any:
    # Declared per call, not at import: registration needs the running script's runtime,
    # and re-registering the same directory is a cheap no-op.
    return components.declare_component("live_sliders", path=str(FRONTEND_DIR))


def _check_args(
    D: int,
    z: Sequence[float],
    kl: Sequence[float] | None,
    order: Sequence[int] | None,
) -> None:
    if len(z) != D:
        raise ValueError(f"z has {len(z)} values, the decoder takes latent_dim={D}")
    if kl is not None and len(kl) != D:
        raise ValueError(f"kl_per_dim has {len(kl)} values, expected {D}")
    if order is not None and sorted(order) != list(range(D)):
        raise ValueError(f"order must be a permutation of range({D}), got {list(order)}")


def _check_tracks(
    D: int, histograms: dict[str, Any] | None, attributes: Sequence[dict[str, Any]]
) -> None:
    """Per-dimension histograms need D rows; an attribute's direction needs D values."""
    if histograms is not None:
        rows = {k: len(histograms[k]) for k in ("ranges", "q", "p")}
        if set(rows.values()) != {D}:
            raise ValueError(f"histograms need {D} rows of ranges, q and p, got {rows}")
    for attribute in attributes:
        if len(attribute["direction"]) != D:
            raise ValueError(
                f"attribute {attribute['name']!r} has {len(attribute['direction'])} values, "
                f"the decoder takes latent_dim={D}"
            )


def _weights_needed(memo: dict[str, Any], value: Any, version: str) -> bool:
    """Send weights on a new version, or when the browser asks (e.g. its iframe was remounted)."""
    request = value.get("request") if isinstance(value, dict) else None
    if request is not None and request != memo.get("served_request"):
        return True
    return memo.get("sent_version") != version


def _weights_sent(memo: dict[str, Any], value: Any, version: str) -> None:
    """Remember that this version (and the browser's request for it) was served."""
    memo["sent_version"] = version
    if isinstance(value, dict) and value.get("request") is not None:
        memo["served_request"] = value["request"]


def _new_user_z(memo: dict[str, Any], value: Any) -> list[float] | None:
    """The z the user committed since the last run; None when nothing new happened."""
    if not isinstance(value, dict) or value.get("event") in (None, memo.get("seen_event")):
        return None
    return [float(v) for v in value["z"]]


def live_sliders(
    decoder: OnnxDecoder,
    z: Sequence[float],
    kl_per_dim: Sequence[float] | None = None,
    order: Sequence[int] | None = None,
    *,
    key: str = "live_sliders",
    limit: float = 3.0,
    step: float = 0.01,
    inactive_below: float = 0.01,
    image_px: int = 256,
    top_dims: int | None = None,
    histograms: dict[str, Any] | None = None,
    attributes: Sequence[dict[str, Any]] = (),
) -> list[float] | None:
    """Draw one slider per latent dimension beside the image they decode to, live in the browser.

    Args:
        decoder: `vae_core.export.onnx_decoder(model, version=...)` (cache it); its version
            decides when the model is sent again, so pass the snapshot version.
        z: the latent vector to show, (D,). Passing a different z than last run moves the
            sliders (reset, prior sample, a point picked elsewhere); feed back what this returns.
        kl_per_dim: KL per dimension in nats, shown in the labels; below `inactive_below`
            a dimension is marked inactive.
        order: the dimensions in display order, e.g. by decreasing KL; default 0..D-1.
        key: the component's widget key; one key per instance on a page.
        limit, step: slider range [-limit, limit] and step.
        image_px: target display size of the image's long side (upscaled by a whole factor).
        top_dims: how many dimensions (the first in `order`) the grid shows; the rest fold
            into a "more dimensions" disclosure below it. None shows all.
        histograms: {"ranges": (D, 2), "q": (D, B), "p": (D, B)} lists, as from
            `vae_core.aggregate.SliderHistograms.to_lists()`: each slider's own range and the
            aggregate posterior's and the prior's densities drawn above its track. None: no
            histograms, every slider on [-limit, limit].
        attributes: attribute sliders after the per-dimension ones, each {"name", "direction"
            (D,) unit vector, "range": [lo, hi], "q", "p" (B,)}. Such a slider shows z . v
            and moves z along v.

    Returns:
        The latent vector the user committed (released a drag or stepped with the keyboard)
        since the last run, or None when the user changed nothing.
    """
    _check_args(decoder.latent_dim, z, kl_per_dim, order)
    _check_tracks(decoder.latent_dim, histograms, attributes)
    version = decoder.version
    memo: dict[str, Any] = st.session_state.setdefault(f"{key}::live_sliders", {})
    # The browser's last report, read before drawing so this run already shows it: passing
    # the caller's older z would look to the browser like Python moving the sliders.
    value = st.session_state.get(key)
    user_z = _new_user_z(memo, value)
    seen_event = value["event"] if user_z is not None else memo.get("seen_event")
    send = _weights_needed(memo, value, version)
    if send:
        # Each sending differs: Streamlit sends a message it sent before as a reference to
        # the browser's copy, which a page rerunning several times a second has already
        # dropped ("Cached ForwardMsg MISS"): the weights would then never arrive.
        memo["sendings"] = memo.get("sendings", 0) + 1
    _component()(
        key=key,
        default=None,
        version=version,
        sending=memo.get("sendings") if send else None,
        decoder=decoder.spec() if send else None,
        # bytes travel as a binary protobuf field (about 25% smaller than base64 text)
        model=decoder.onnx if send else None,
        z=[float(v) for v in (z if user_z is None else user_z)],
        ack=seen_event,  # the newest browser change this z already includes
        kl=None if kl_per_dim is None else [float(v) for v in kl_per_dim],
        order=None if order is None else [int(d) for d in order],
        limit=float(limit),
        step=float(step),
        inactive_below=float(inactive_below),
        image_px=int(image_px),
        top_dims=None if top_dims is None else int(top_dims),
        histograms=histograms,
        attributes=[dict(a) for a in attributes],
    )
    # Only now: a rerun request (a fragment's clock, a newer drag) stops a run at its next
    # st.* call before that call's message goes out. Weights marked as sent before it would
    # never reach the browser (no first frame until the next snapshot), and a change marked
    # as seen would never reach the caller.
    memo["seen_event"] = seen_event
    if send:
        _weights_sent(memo, value, version)
    return user_z
