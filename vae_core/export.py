"""Export a VAE's decoder as ONNX, for ONNX Runtime Web in the browser's live-drag sliders.

`onnx_decoder` goes through `torch.onnx.export(..., dynamo=False)`, the TorchScript exporter:
it needs only the `onnx` package (the dynamo exporter also needs `onnxscript`), runs about
five times faster (it is re-run for every new snapshot) and traces any `nn.Module`. It traces
`model.decoded_to_image(model.decode(z))`, never the decoder's internals, so an imported model
exports as long as it has those two methods; its output is already the displayed image.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

ONNX_INPUT = "z"  # (B, D) float32
ONNX_OUTPUT = "image"  # (B, C, H, W) float32 in [0, 1]
ONNX_OPSET = 17  # ONNX Runtime Web 1.30 runs opsets up to 21; 17 has every op the exporter uses
# The TorchScript exporter keeps its settings in module globals: one export at a time (the
# app's sessions may export two runs' snapshots at once).
_EXPORT_LOCK = threading.Lock()


class ExportError(ValueError):
    """A decoder that cannot be exported; the message is one line for the page."""


@dataclass(frozen=True)
class OnnxDecoder:
    """One decoder as an ONNX model: input `z` (B, latent_dim), output `image` (B, C, H, W).

    `version` names these weights (the browser reloads only when it changes); `signature`
    names the graph without its weights, so a browser that rejected one snapshot's graph is
    not asked to load the next snapshot of the same architecture.
    """

    onnx: bytes
    latent_dim: int
    image_shape: tuple[int, int, int]
    version: str
    signature: str

    def spec(self) -> dict[str, Any]:
        """Everything but the model bytes, JSON-able."""
        return {
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "version": self.version,
            "signature": self.signature,
            "input": ONNX_INPUT,
            "output": ONNX_OUTPUT,
            "num_bytes": len(self.onnx),
        }


class _DisplayDecoder(nn.Module):
    """z (B, D) -> displayed image (B, C, H, W): the whole path the sliders show, for any model
    with `decode` and `decoded_to_image` (built-in VAEs and imported wrappers alike)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decoded_to_image(self.model.decode(z))


def _latent_dim(model: nn.Module, latent_dim: int | None) -> int:
    if latent_dim is not None:
        return int(latent_dim)
    config = getattr(model, "config", None)
    found = getattr(config, "latent_dim", None) or getattr(model, "latent_dim", None)
    if not found:
        raise ExportError("cannot export the decoder: its latent size is unknown")
    return int(found)


def _image_shape(wrapper: nn.Module, z: torch.Tensor) -> tuple[int, int, int]:
    """Decode `z` once in PyTorch: the shape it gives is the image shape; 4-D or refuse."""
    try:
        with torch.no_grad():
            out = wrapper(z)
    except Exception as error:  # an imported decoder may raise anything
        raise ExportError(f"the decoder fails on a zero latent: {_one_line(error)}") from error
    if out.ndim != 4 or out.shape[0] != z.shape[0] or out.shape[1] not in (1, 3):
        raise ExportError(f"decode gives shape {tuple(out.shape)}, not (B, 1 or 3, H, W)")
    return (int(out.shape[1]), int(out.shape[2]), int(out.shape[3]))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _graph_signature(onnx_bytes: bytes) -> str:
    """sha1 of the ONNX graph with its weights left out: the same for every snapshot of one
    architecture."""
    import onnx  # imported here: only exporting needs it

    model = onnx.load_from_string(onnx_bytes)
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
    return hashlib.sha1(model.SerializeToString()).hexdigest()[:16]


def onnx_decoder(
    model: nn.Module, version: int | str | None = None, latent_dim: int | None = None
) -> OnnxDecoder:
    """Export `model.decoded_to_image(model.decode(z))` as ONNX with a dynamic batch axis.

    Args:
        model: any module with `decode(z: (B, D)) -> (B, C, H, W)` and `decoded_to_image`;
            left as it is (the exporter traces in eval mode and restores the mode).
        version: names these weights, e.g. the snapshot version; None = a hash of the bytes.
        latent_dim: D; default `model.config.latent_dim` (or `model.latent_dim`).

    Raises:
        ExportError: the decoder cannot be traced or exported (one line saying why).
    """
    D = _latent_dim(model, latent_dim)
    wrapper = _DisplayDecoder(model)
    param = next(model.parameters(), None)
    # batch 2 at trace time: a batch of 1 invites the tracer to bake the size into reshapes
    z = torch.zeros(2, D, device=param.device if param is not None else "cpu")
    image_shape = _image_shape(wrapper, z)
    buffer = io.BytesIO()
    try:
        with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(
                wrapper,
                (z,),
                buffer,
                dynamo=False,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
            )
    except Exception as error:  # the exporter raises many types; the page needs one line
        raise ExportError(f"cannot export the decoder to ONNX: {_one_line(error)}") from error
    data = buffer.getvalue()
    return OnnxDecoder(
        onnx=data,
        latent_dim=D,
        image_shape=image_shape,
        version=str(hashlib.sha1(data).hexdigest()[:16] if version is None else version),
        signature=_graph_signature(data),
    )
