"""Export a VAE's decoder for decoding outside PyTorch: as ONNX for ONNX Runtime Web in the
browser's live-drag sliders (`onnx_decoder`), and as a compact JSON-able op list for the
hand-written JavaScript interpreter of the two built-in decoders (`decoder_payload`).

ONNX goes through `torch.onnx.export(..., dynamo=False)`, the TorchScript exporter: it needs
only the `onnx` package (the dynamo exporter also needs `onnxscript`), runs about five times
faster (it is re-run for every new snapshot) and traces any `nn.Module`. What it traces is
`model.decoded_to_image(model.decode(z))`, never the decoder's internals, so an imported model
exports as long as it has those two methods; its output is already the displayed image.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vae_core.models import VAE, ConvDecoder, MLPDecoder

PAYLOAD_FORMAT = 1  # bump when the op vocabulary or buffer layout changes

Shape = tuple[int, ...]
Op = dict[str, Any]


class _WeightPacker:
    """Collects named tensors into one float32 buffer; offsets count float32 elements."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.offsets: dict[str, list[int]] = {}
        self._length = 0

    def add(self, name: str, tensor: torch.Tensor) -> str:
        flat = tensor.detach().to("cpu", torch.float32).contiguous().view(-1).numpy()
        self.offsets[name] = [self._length, int(flat.size)]
        self.chunks.append(flat.astype("<f4", copy=False))
        self._length += int(flat.size)
        return name

    def tobytes(self) -> bytes:
        return np.concatenate(self.chunks).astype("<f4", copy=False).tobytes()


def _linear_op(
    layer: nn.Linear, name: str, shape: Shape, packer: _WeightPacker
) -> tuple[Op, Shape]:
    if shape != (layer.in_features,):
        raise ValueError(f"{name}: expects ({layer.in_features},) input, got {shape}")
    op = {
        "op": "linear",
        "in": layer.in_features,
        "out": layer.out_features,
        # weight is (out, in), row-major: out[j] = b[j] + sum_i w[j * in + i] * x[i]
        "w": packer.add(f"{name}.weight", layer.weight),
        "b": packer.add(f"{name}.bias", layer.bias),
    }
    return op, (layer.out_features,)


def _conv_transpose_op(
    layer: nn.ConvTranspose2d, name: str, shape: Shape, packer: _WeightPacker
) -> tuple[Op, Shape]:
    kh, kw = layer.kernel_size
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    unsupported = (
        kh != kw
        or sh != sw
        or ph != pw
        or layer.groups != 1
        or layer.dilation != (1, 1)
        or layer.output_padding != (0, 0)
        or layer.bias is None
    )
    if unsupported:
        raise ValueError(f"{name}: only square, ungrouped, undilated transposed convs export")
    c_in, H, W = shape
    if c_in != layer.in_channels:
        raise ValueError(f"{name}: expects {layer.in_channels} channels, got {c_in}")
    H_out = (H - 1) * sh - 2 * ph + kh  # PyTorch's ConvTranspose2d size, no output_padding
    W_out = (W - 1) * sw - 2 * pw + kw
    op = {
        "op": "conv_transpose2d",
        "in_ch": layer.in_channels,
        "out_ch": layer.out_channels,
        "kernel": kh,
        "stride": sh,
        "padding": ph,
        "in_hw": [H, W],
        "out_hw": [H_out, W_out],
        # weight is (in_ch, out_ch, k, k), row-major
        "w": packer.add(f"{name}.weight", layer.weight),
        "b": packer.add(f"{name}.bias", layer.bias),
    }
    return op, (layer.out_channels, H_out, W_out)


def _module_ops(
    module: nn.Module, name: str, shape: Shape, packer: _WeightPacker
) -> tuple[list[Op], Shape]:
    """Ops for one leaf layer or a Sequential of them, and the shape they produce."""
    if isinstance(module, nn.Sequential):
        ops: list[Op] = []
        for child_name, child in module.named_children():
            child_ops, shape = _module_ops(child, f"{name}.{child_name}", shape, packer)
            ops += child_ops
        return ops, shape
    if isinstance(module, nn.Linear):
        op, shape = _linear_op(module, name, shape, packer)
        return [op], shape
    if isinstance(module, nn.ConvTranspose2d):
        op, shape = _conv_transpose_op(module, name, shape, packer)
        return [op], shape
    if isinstance(module, nn.ReLU):
        return [{"op": "relu"}], shape
    raise TypeError(f"{name}: cannot export a {type(module).__name__} to the browser decoder")


def _reshape(shape: Shape, new_shape: Shape) -> tuple[list[Op], Shape]:
    if math.prod(shape) != math.prod(new_shape):
        raise ValueError(f"cannot reshape {shape} to {new_shape}")
    return [{"op": "reshape", "shape": list(new_shape)}], new_shape


def _decoder_ops(
    decoder: nn.Module, latent_dim: int, packer: _WeightPacker
) -> tuple[list[Op], Shape]:
    """Mirror MLPDecoder.forward / ConvDecoder.forward as a flat op list."""
    relu: list[Op] = [{"op": "relu"}]
    shape: Shape = (latent_dim,)
    if isinstance(decoder, MLPDecoder):
        hidden, shape = _module_ops(decoder.hidden, "decoder.hidden", shape, packer)
        out, shape = _module_ops(decoder.out, "decoder.out", shape, packer)
        reshape, shape = _reshape(shape, tuple(decoder.image_shape))
        return hidden + relu + out + reshape, shape
    if isinstance(decoder, ConvDecoder):
        hidden, shape = _module_ops(decoder.hidden, "decoder.hidden", shape, packer)
        project, shape = _module_ops(decoder.project, "decoder.project", shape, packer)
        reshape, shape = _reshape(shape, tuple(decoder.start_shape))
        deconvs, shape = _module_ops(decoder.deconvs, "decoder.deconvs", shape, packer)
        return hidden + relu + project + relu + reshape + deconvs, shape
    raise TypeError(
        f"the browser decoder runs the built-in mlp and conv decoders, not {type(decoder).__name__}"
    )


def decoder_payload(model: VAE, version: int | str | None = None) -> dict[str, Any]:
    """The decoder as {"layers": ops, "weights_b64": float32 buffer, ...}, JSON-able.

    Args:
        model: the VAE whose decoder to export (its encoder is not included).
        version: identifies these weights (e.g. the run's snapshot version); the browser
            re-reads the weights only when it changes. None = a hash of the weights.

    Returns:
        {"format", "architecture", "likelihood", "image_shape": [C, H, W], "latent_dim",
        "layers": [...], "weights_b64", "offsets": {name: [start, length]} in float32
        elements, "num_floats", "version"}. The last op maps the decoder output to [0, 1]
        like `VAE.decode_image`: "sigmoid" (bernoulli) or "clamp01" (gaussian).
    """
    config = model.config
    packer = _WeightPacker()
    layers, shape = _decoder_ops(getattr(model, "decoder", model), config.latent_dim, packer)
    if shape != tuple(config.image_shape):
        raise ValueError(f"decoder produces {shape}, config says {config.image_shape}")
    layers.append({"op": "sigmoid" if config.likelihood == "bernoulli" else "clamp01"})
    raw = packer.tobytes()
    if version is None:
        version = hashlib.sha1(raw).hexdigest()[:16]
    return {
        "format": PAYLOAD_FORMAT,
        "architecture": config.architecture,
        "likelihood": config.likelihood,
        "image_shape": list(config.image_shape),
        "latent_dim": config.latent_dim,
        "layers": layers,
        "weights_b64": base64.b64encode(raw).decode("ascii"),
        "offsets": packer.offsets,
        "num_floats": len(raw) // 4,
        "version": version,
    }


# ---- ONNX for ONNX Runtime Web -----------------------------------------------------------------

ONNX_INPUT = "z"  # (B, D) float32
ONNX_OUTPUT = "image"  # (B, C, H, W) float32 in [0, 1]
ONNX_OPSET = 17  # ONNX Runtime Web 1.30 runs opsets up to 21; 17 has every op the exporter uses


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
        with warnings.catch_warnings(), torch.no_grad():
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
