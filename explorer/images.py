"""uint8 images (H, W, C) from vae_core.latent -> PNG / GIF bytes for st.image and downloads.

Images are upscaled by whole factors with nearest-neighbour so 28-pixel digits stay crisp
in the browser instead of being smoothed by it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of (H, W, C) or (H, W) by an integer factor."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def fit_factor(image: np.ndarray, target_px: int) -> int:
    """The whole-number scale that brings the longer side closest to `target_px` (>= 1)."""
    longest = max(image.shape[:2])
    return max(1, round(target_px / longest))


def _to_pil(image: np.ndarray) -> Image.Image:
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]  # (H, W, 1) -> (H, W): PIL's greyscale mode
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3) uint8, got {image.shape}")
    return Image.fromarray(image)


def png_bytes(image: np.ndarray, target_px: int | None = None) -> bytes:
    """One uint8 image as PNG, optionally upscaled towards `target_px` on its long side."""
    if target_px:
        image = upscale(image, fit_factor(image, target_px))
    buffer = io.BytesIO()
    # compress_level 1: the slider view encodes on every step; size barely matters here.
    _to_pil(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def gif_bytes(
    frames: Sequence[np.ndarray], frame_ms: int = 120, target_px: int | None = None
) -> bytes:
    """An endlessly looping GIF that plays the frames forward then back (a smooth loop)."""
    if len(frames) == 0:
        raise ValueError("a GIF needs at least one frame")
    if target_px:
        factor = fit_factor(frames[0], target_px)
        frames = [upscale(f, factor) for f in frames]
    sequence = list(frames) + list(frames[-2:0:-1])  # ping-pong, endpoints shown once
    pictures = [_to_pil(f) for f in sequence]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=frame_ms,
        loop=0,
    )
    return buffer.getvalue()
