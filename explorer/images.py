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


def scatter_gif(
    frames: np.ndarray,
    labels: np.ndarray,
    titles: Sequence[str],
    ranges: tuple[tuple[float, float], ...],
    colors: Sequence[str],
    size: int = 320,
    frame_ms: int = 250,
    class_names: Sequence[str] = (),
) -> bytes:
    """A looping GIF of scatter frames (T, N, 2): 2-px dots coloured by label (colors[label],
    the app's one class -> colour map), fixed axes `ranges` ((x0, x1), (y0, y1)), grey
    cross-hairs through the origin, a title per frame and a legend of the classes below."""
    from PIL import ImageColor, ImageDraw

    (x0, x1), (y0, y1) = ranges
    top = 16  # title band
    palette = np.array([ImageColor.getrgb(c)[:3] for c in colors], dtype=np.uint8)
    labels = np.asarray(labels)
    dot_colors = palette[labels % len(palette)]  # (N, 3)
    legend = _legend(
        [(_label_name(c, class_names), palette[c % len(palette)]) for c in np.unique(labels)],
        size,
    )
    origin = (round(-x0 / (x1 - x0) * (size - 2)), top + round(y1 / (y1 - y0) * (size - 2)))
    pictures = []
    for xy, title in zip(np.asarray(frames, dtype=np.float64), titles, strict=True):
        canvas = np.full((size + top, size, 3), 255, dtype=np.uint8)  # (H, W, 3)
        if 0 <= origin[0] < size:
            canvas[top:, origin[0]] = 220
        if top <= origin[1] < size + top:
            canvas[origin[1], :] = 220
        px = np.round((xy[:, 0] - x0) / (x1 - x0) * (size - 2))  # (N,)
        py = top + np.round((y1 - xy[:, 1]) / (y1 - y0) * (size - 2))  # (N,) y grows down
        inside = (px >= 0) & (px < size - 1) & (py >= top) & (py < size + top - 1)
        px, py = px[inside].astype(int), py[inside].astype(int)
        for dx in (0, 1):
            for dy in (0, 1):
                canvas[py + dy, px + dx] = dot_colors[inside]
        picture = Image.fromarray(np.concatenate([canvas, legend]))  # legend band below
        ImageDraw.Draw(picture).text((4, 2), title, fill=(0, 0, 0))
        pictures.append(picture)
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0
    )
    return buffer.getvalue()


LEGEND_ROW_PX, SWATCH_PX = 14, 8


def _label_name(label: int, class_names: Sequence[str]) -> str:
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)


def _legend(entries: Sequence[tuple[str, np.ndarray]], width: int) -> np.ndarray:
    """A white band (H, width, 3): a colour swatch and the class name per entry, in rows."""
    from PIL import ImageDraw

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    places, x, row = [], 4, 0
    for name, _ in entries:
        span = SWATCH_PX + 4 + int(measure.textlength(name)) + 10
        if x > 4 and x + span > width:
            x, row = 4, row + 1  # wrap to the next row
        places.append((x, row))
        x += span
    band = Image.new("RGB", (width, (row + 1) * LEGEND_ROW_PX + 4), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    for (name, rgb), (x, row) in zip(entries, places, strict=True):
        y = 2 + row * LEGEND_ROW_PX
        fill = tuple(int(v) for v in rgb)
        draw.rectangle([x, y + 2, x + SWATCH_PX - 1, y + 1 + SWATCH_PX], fill=fill)
        draw.text((x + SWATCH_PX + 4, y), name, fill=(0, 0, 0))
    return np.asarray(band)
