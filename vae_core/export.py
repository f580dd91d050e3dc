"""Export a VAE's decoder as a compact, JSON-able spec for decoding outside PyTorch.

The browser's live-drag sliders (`explorer/components/live_decoder`) run the decoder in
JavaScript from this payload: an ordered list of ops plus one little-endian float32 buffer
(base64) holding every weight. The ops are derived by walking the decoder's modules, so a
decoder this module doesn't know raises instead of exporting something subtly different.
"""

from __future__ import annotations

import base64
import hashlib
import math
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
