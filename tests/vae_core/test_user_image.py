"""vae_core.user_image: the user's bytes become the run's input, or one clear refusal."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vae_core import user_image
from vae_core.user_image import UserImageError, bytes_from_data_url, preprocess


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims width x height (its data is one row)."""
    data = _encode(Image.new("L", (1, 1)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    start = data.index(b"IHDR") - 4
    new_chunk = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return data[:start] + new_chunk + data[start + 25 :]


def test_a_grey_png_becomes_the_runs_shape_without_notes() -> None:
    pixels = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    taken = preprocess(_encode(Image.fromarray(pixels)), (1, 28, 28))
    assert taken.pixels.shape == (1, 28, 28) and taken.pixels.dtype == np.uint8
    np.testing.assert_array_equal(taken.pixels[0], pixels)  # same size: untouched
    assert taken.notes == () and taken.original_mode == "L"


def test_a_large_rgb_jpeg_is_cropped_resized_and_converted_with_notes() -> None:
    image = Image.new("RGB", (300, 200), (200, 40, 40))
    taken = preprocess(_encode(image, "JPEG"), (1, 32, 32))
    assert taken.pixels.shape == (1, 32, 32)
    assert taken.original_size == (300, 200)
    assert "converted RGB → grayscale to match the run's 1 channel" in taken.notes
    assert any("resized 300×200 → 32×32" in note for note in taken.notes)


def test_a_grey_image_for_an_rgb_run_is_converted_and_said() -> None:
    taken = preprocess(_encode(Image.new("L", (64, 64), 128)), (3, 64, 64))
    assert taken.pixels.shape == (3, 64, 64)
    assert np.all(taken.pixels == 128)
    assert taken.notes == ("converted grayscale → RGB to match the run's 3 channels",)


def test_transparency_is_filled_with_black() -> None:
    image = Image.new("RGBA", (28, 28), (255, 255, 255, 0))
    image.putpixel((3, 4), (255, 255, 255, 255))
    taken = preprocess(_encode(image), (1, 28, 28))
    assert taken.pixels[0, 4, 3] == 255 and taken.pixels.sum() == 255
    assert "transparent pixels filled with black" in taken.notes


def test_centre_crop_keeps_the_middle_of_a_wide_image() -> None:
    wide = np.zeros((28, 84), dtype=np.uint8)
    wide[:, 28:56] = 255  # the middle third is white
    taken = preprocess(_encode(Image.fromarray(wide)), (1, 28, 28))
    assert taken.pixels.min() == 255


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not an image at all", "not an image"),
        (b"%PDF-1.4 not a picture", "not an image"),
    ],
)
def test_non_images_are_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(UserImageError, match=message) as caught:
        preprocess(data, (1, 28, 28))
    assert "\n" not in str(caught.value)


def test_other_image_formats_are_refused() -> None:
    with pytest.raises(UserImageError, match="GIF image; upload a PNG or JPEG"):
        preprocess(_encode(Image.new("L", (8, 8)), "GIF"), (1, 28, 28))


def test_a_file_over_the_byte_cap_is_refused_before_decoding() -> None:
    data = _encode(Image.new("L", (28, 28)))
    with pytest.raises(UserImageError, match="over the limit of 50 bytes"):
        preprocess(data, (1, 28, 28), max_bytes=50)
    assert user_image.MAX_UPLOAD_BYTES >= 1024**2


def test_an_image_over_the_pixel_cap_is_refused_from_its_header() -> None:
    data = _encode(Image.new("L", (200, 100)))
    with pytest.raises(UserImageError, match="200×100 = 20,000 pixels, over the limit of 10,000"):
        preprocess(data, (1, 28, 28), max_pixels=10_000)


def test_a_decompression_bomb_is_refused_without_decoding() -> None:
    bomb = _png_claiming(100_000, 100_000)  # 10^10 pixels declared in a ~70-byte file
    assert len(bomb) < 100
    with pytest.raises(UserImageError, match="decompression bomb"):
        preprocess(bomb, (1, 28, 28))


def test_pillows_bomb_warning_is_a_refusal_too() -> None:
    # 10^8 pixels: above Pillow's warning limit (~8.9e7), below its error limit.
    with pytest.raises(UserImageError, match="decompression bomb"):
        preprocess(_png_claiming(10_000, 10_000), (1, 28, 28), max_pixels=10**12)


def test_the_pixel_cap_is_read_from_the_header() -> None:
    # 8000 x 8000 = 6.4e7 pixels: under Pillow's limits, over the folder dataset's cap.
    with pytest.raises(UserImageError, match="over the limit of 40,000,000"):
        preprocess(_png_claiming(8000, 8000), (1, 28, 28))


def test_a_truncated_file_is_refused() -> None:
    rng = np.random.default_rng(0)
    data = _encode(Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)))
    with pytest.raises(UserImageError, match="truncated or damaged"):
        preprocess(data[: len(data) // 2], (1, 28, 28))
    with pytest.raises(UserImageError, match="truncated or damaged"):
        preprocess(data[:20], (1, 28, 28))  # cut inside the header


def test_a_canvas_data_url_round_trips() -> None:
    png = _encode(Image.new("L", (10, 10), 255))
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert bytes_from_data_url(url) == png
    with pytest.raises(UserImageError, match="PNG data URL"):
        bytes_from_data_url("data:text/plain;base64,aGk=")
    with pytest.raises(UserImageError, match="not valid base64"):
        bytes_from_data_url("data:image/png;base64,***")
    with pytest.raises(UserImageError, match="over the limit"):
        bytes_from_data_url("data:image/png;base64," + "A" * 400, max_bytes=100)
