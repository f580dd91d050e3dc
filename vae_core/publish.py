"""Publish a run as one self-contained HTML page that explores it with no server.

The page holds everything inline: the decoder as an ONNX graph (exported by
vae_core.export, so it is the same graph the app's live sliders run) with float32 weights in
base64, run by a small plain-JS interpreter of the ONNX ops the built-in decoders use; the
encoded test codes, their 2D view and a sprite sheet of the test images; the aggregate
posterior's histograms for the slider tracks. It makes no network request and opens from
file:// or any static host. A decoder whose graph uses other ops is published without live
decoding (onnxruntime-web's wasm alone is over 10 MB), and the page says so in one line.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_core import aggregate, inspect_image, latent
from vae_core.atomic import atomic_write_bytes
from vae_core.checkpoint import snapshot_model
from vae_core.data import ImageDataset, load_dataset
from vae_core.export import ExportError, onnx_decoder
from vae_core.latent import EncodedSet, Projection
from vae_core.metrics_log import summarize
from vae_core.models import LatentVariableModel
from vae_core.rundir import RunDir

PAYLOAD_FORMAT = 1
DEFAULT_POINTS = 2000  # test images on the scatter (the size target)
MAX_POINTS = 5000  # the app's scatter cap (explorer.cache.SCATTER_MAX_POINTS)
MAX_SLIDERS = 64  # sliders drawn, by KL; the other dims stay at the loaded code
SPRITE_COLUMNS = 50
HISTOGRAM_BINS = 24
PAGE_DIR = Path(__file__).with_name("publish_page")
# The ONNX ops the page's interpreter (publish_page/onnx_mini.js) runs; keep the two in step.
PAGE_OPS = frozenset(
    {
        "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "Tanh",
        "Clip", "Reshape", "Flatten", "Identity", "Constant", "ConvTranspose", "Conv",
    }
)  # fmt: skip


@dataclass(frozen=True)
class PublishedPage:
    html: bytes
    payload: dict[str, Any]  # what the page reads, weights and images as base64

    @property
    def live_decode(self) -> bool:
        return self.payload["decoder"] is not None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _floats_b64(array: np.ndarray) -> str:
    return _b64(np.ascontiguousarray(array, dtype="<f4").tobytes())


# --- the decoder: the exported ONNX graph as JSON + one float32 buffer ---------------------


def decoder_graph(model: LatentVariableModel, version: int) -> tuple[dict | None, str]:
    """The display decoder's ONNX graph for the page's interpreter, or (None, why not)."""
    try:
        exported = onnx_decoder(model, version=version)
    except ExportError as error:
        return None, f"live decoding is off: {error}"
    import onnx  # only publishing and exporting need it
    from onnx import numpy_helper

    graph = onnx.load_from_string(exported.onnx).graph
    missing = sorted({n.op_type for n in graph.node} - PAGE_OPS)
    if missing:
        return None, (
            f"live decoding is off in this page: the decoder uses ONNX ops the page's small "
            f"interpreter lacks ({', '.join(missing)})"
        )
    chunks: list[np.ndarray] = []
    tensors: dict[str, dict[str, Any]] = {}
    offset = 0

    def add(name: str, array: np.ndarray) -> None:
        nonlocal offset
        if array.dtype.kind == "f":
            flat = array.astype("<f4").ravel()
            tensors[name] = {"shape": list(array.shape), "offset": offset, "length": flat.size}
            chunks.append(flat)
            offset += flat.size
        else:  # shapes and other small integer constants
            tensors[name] = {"shape": list(array.shape), "ints": array.ravel().tolist()}

    for init in graph.initializer:
        add(init.name, numpy_helper.to_array(init))
    nodes = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":  # folded into the tensors, as an initializer is
            add(node.output[0], numpy_helper.to_array(attrs["value"]))
            continue
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        nodes.append(
            {"op": node.op_type, "in": list(node.input), "out": list(node.output), "attrs": attrs}
        )
    weights = np.concatenate(chunks) if chunks else np.zeros(0, "<f4")
    return {
        "input": graph.input[0].name,
        "output": graph.output[0].name,
        "nodes": nodes,
        "tensors": tensors,
        "weights_b64": _floats_b64(weights),
        "num_floats": int(weights.size),
        "image_shape": list(exported.image_shape),
        "onnx_bytes": len(exported.onnx),
    }, ""


# --- the rest of the payload ---------------------------------------------------------------


def _sprite_png(images: np.ndarray) -> str:
    """uint8 (N, H, W, C) -> one PNG, SPRITE_COLUMNS images per row, no padding, base64."""
    from PIL import Image

    grid = latent.image_grid(images, SPRITE_COLUMNS, padding=0) if len(images) > 1 else images[0]
    pixels = grid[..., 0] if grid.shape[-1] == 1 else grid  # (H', W') grey or (H', W', 3)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG", optimize=True)
    return _b64(buffer.getvalue())


def _run_card(run: RunDir, model: LatentVariableModel, step: int) -> dict[str, Any]:
    model_config, train_config = run.read_config()
    view = summarize(run.read_metrics())
    test, train = view.newest("test"), view.newest("train")
    card = model_config.card
    return {
        "name": run.path.name,
        "dataset": train_config.dataset,
        "model": card.source if card is not None else model_config.architecture,
        "likelihood": model_config.likelihood,
        "latent_dim": model.config.latent_dim,
        "beta": (train or {}).get("beta", train_config.beta),
        "epochs": (test or train or {}).get("epoch", 0),
        "epochs_planned": train_config.epochs,
        "test_elbo": (test or {}).get("elbo"),
        "step": step,
    }


def _scatter(codes: EncodedSet, projection: Projection | None) -> dict[str, Any]:
    """2D coordinates of the codes; PCA (or identity) also carries its map, so the page can
    place the sliders' point and the interpolation path on it."""
    if projection is None or len(projection.coords) < len(codes):
        projection = latent.project_2d(codes.mu)
    view: dict[str, Any] = {
        "method": projection.method,
        "coords_b64": _floats_b64(projection.coords[: len(codes)]),
    }
    if projection.method == "pca":
        view["components"] = np.round(projection.components, 6).tolist()
        view["mean"] = np.round(projection.mean, 6).tolist()
    return view


def build_payload(
    run: RunDir,
    points: int = DEFAULT_POINTS,
    projection: Projection | None = None,
    model: tuple[LatentVariableModel, int] | None = None,
    data: ImageDataset | None = None,
) -> dict[str, Any]:
    """Everything the page shows, JSON-able.

    Args:
        run: a run with a snapshot (FileNotFoundError, one line, without).
        points: test images on the scatter, 1..MAX_POINTS.
        projection: a 2D view of the first `points` (or more) test codes, e.g. the app's
            t-SNE; default PCA.
        model: (model, snapshot version) already loaded; default the run's snapshot.
        data: the run's test split already loaded; default loaded here.
    """
    if not 1 <= points <= MAX_POINTS:
        raise ValueError(f"--points must be in 1..{MAX_POINTS}, got {points}")
    net, version = model if model is not None else snapshot_model(run)
    step = int(run.snapshot_metadata().get("step", 0))
    if data is None:
        _, cfg = run.read_config()
        data = load_dataset(cfg.dataset, "test", cfg.data_dir, **cfg.dataset_options)
    codes = latent.encode_dataset(net, data, points)
    kl = inspect_image.mean_kl_per_dim(codes.mu, codes.logvar)  # (D,)
    histograms = aggregate.slider_histograms(codes.mu, codes.logvar, bins=HISTOGRAM_BINS)
    images = data.images[: len(codes)].permute(0, 2, 3, 1).numpy()  # (N, H, W, C) uint8
    decoder, no_decode_reason = decoder_graph(net, version)
    names = list(data.info.class_names)
    return {
        "format": PAYLOAD_FORMAT,
        "card": _run_card(run, net, step) | {"snapshot_version": version},
        "latent_dim": int(codes.mu.shape[1]),
        "image_shape": [images.shape[3], images.shape[1], images.shape[2]],  # (C, H, W)
        "kl_per_dim": np.round(kl, 5).tolist(),
        "kl_order": latent.kl_order(kl)[:MAX_SLIDERS],
        "active": latent.active_dims(kl).tolist(),
        "histograms": histograms.to_lists(),
        "points": len(codes),
        "mu_b64": _floats_b64(codes.mu),
        "labels": codes.labels.tolist(),
        "class_names": names,
        "scatter": _scatter(codes, projection),
        "sprite": {"png_b64": _sprite_png(images), "columns": SPRITE_COLUMNS},
        "decoder": decoder,
        "no_decode_reason": no_decode_reason,
    }


def _inline(payload: dict[str, Any]) -> bytes:
    """The template with its style, script and payload inlined."""
    template = (PAGE_DIR / "page.html").read_text()
    style = (PAGE_DIR / "page.css").read_text()
    script = "\n".join((PAGE_DIR / name).read_text() for name in ("onnx_mini.js", "page.js"))
    # "</" inside a <script> would end it early; JSON and JS read "<\/" as "</".
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    title = f"VAE explorer: {payload['card']['name']}"
    html = (
        template.replace("{{TITLE}}", _escape(title))
        .replace("/*{{STYLE}}*/", style)
        .replace("{{PAYLOAD}}", data)
        .replace("/*{{SCRIPT}}*/", script.replace("</script", "<\\/script"))
    )
    return html.encode("utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_page(
    run: RunDir,
    points: int = DEFAULT_POINTS,
    projection: Projection | None = None,
    model: tuple[LatentVariableModel, int] | None = None,
    data: ImageDataset | None = None,
) -> PublishedPage:
    """The page as bytes (see build_payload for the arguments)."""
    payload = build_payload(run, points, projection, model, data)
    return PublishedPage(html=_inline(payload), payload=payload)


def publish(
    run_dir: str | Path, out: str | Path, force: bool = False, points: int = DEFAULT_POINTS
) -> dict[str, Any]:
    """Write the run's page to `out` atomically; refuses an existing `out` without `force`
    and an `out` that cannot be written, before any work (one-line errors)."""
    run, out = RunDir(run_dir), Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give a file name such as page.html")
    if out.exists() and not force:
        raise FileExistsError(f"--out {out} exists; add --force to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: its folder {out.parent} does not exist")
    if not _writable(out.parent):
        raise PermissionError(f"--out {out}: cannot write in {out.parent}")
    if not run.snapshot_path.is_file():
        run.read_config()  # "not a run directory" first, when it is not one
        raise FileNotFoundError(f"{run.path} has no snapshot yet: nothing to publish")
    page = build_page(run, points)
    atomic_write_bytes(out, page.html)
    return {
        "out": str(out),
        "bytes": len(page.html),
        "points": page.payload["points"],
        "live_decode": page.live_decode,
        **({"note": page.payload["no_decode_reason"]} if not page.live_decode else {}),
    }


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)
