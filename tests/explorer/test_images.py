"""explorer.images: uint8 arrays to PNG / GIF bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explorer import images


def test_png_of_a_greyscale_image_is_greyscale_and_upscaled_by_a_whole_factor() -> None:
    image = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28, 1)
    decoded = Image.open(io.BytesIO(images.png_bytes(image, target_px=256)))
    assert decoded.mode == "L"
    assert decoded.size == (252, 252)  # 28 * 9, the whole factor nearest to 256
    assert np.array_equal(np.asarray(decoded)[::9, ::9], image[..., 0])


def test_png_keeps_rgb_pixels_exactly() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(images.png_bytes(image))))
    assert np.array_equal(decoded, image)


def test_upscale_repeats_each_pixel() -> None:
    image = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert images.upscale(image, 2).tolist() == [
        [1, 1, 2, 2],
        [1, 1, 2, 2],
        [3, 3, 4, 4],
        [3, 3, 4, 4],
    ]
    with pytest.raises(ValueError):
        images.upscale(image, 0)


def test_gif_loops_forward_and_back() -> None:
    frames = [np.full((4, 4, 1), v, np.uint8) for v in (0, 100, 200, 255)]
    gif = Image.open(io.BytesIO(images.gif_bytes(frames, frame_ms=50)))
    assert gif.n_frames == 6  # 0 1 2 3 2 1
    assert gif.info["loop"] == 0


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        images.png_bytes(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        images.gif_bytes([])
