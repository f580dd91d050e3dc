"""vae_core.user_image: the user's bytes become the run's input, or one clear refusal."""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from vae_core import user_image
from vae_core.user_image import UserImageError, bytes_from_data_url, preprocess


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_claiming(width: int, height: int, colour_type: int = 0) -> bytes:
    """A tiny valid-looking PNG whose header claims width x height (its data is one row);
    colour type 0 is grey, 6 RGBA."""
    data = _encode(Image.new("L", (1, 1)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
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


def _transparent_png(side: int) -> bytes:
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (side // 4, side // 4, side // 2, side // 2))
    return _encode(image)


def test_a_small_file_that_decodes_huge_is_refused_from_its_header() -> None:
    # A transparent 6320 x 6320 PNG is ~150 KiB of file and 152 MiB decoded: the header says so.
    with pytest.raises(UserImageError, match=r"decoding it would take 152\.4 MiB") as caught:
        preprocess(_png_claiming(6320, 6320, colour_type=6), (1, 28, 28))
    assert "\n" not in str(caught.value) and "damaged" not in str(caught.value)
    grey = _png_claiming(6320, 6320)  # 1 byte a pixel: 38 MiB, kept (decoding finds it cut)
    with pytest.raises(UserImageError, match="truncated or damaged"):
        preprocess(grey, (1, 28, 28))


def _peak_added_mb(data: bytes, shape: tuple[int, int, int], tmp_path: Path) -> float:
    """Peak RSS one preprocess() adds, in a fresh process (bench/upload_memory.py's child)."""
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    bench = Path(__file__).resolve().parents[2] / "bench" / "upload_memory.py"
    command = [sys.executable, str(bench), "--child", str(path), *map(str, shape)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return float(out.stdout.strip().splitlines()[-1].split("\t")[0])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_the_largest_png_kept_adds_at_most_100_mb_while_decoding(tmp_path: Path) -> None:
    side = 4096  # RGBA at 4 bytes a pixel: exactly the decode limit
    assert side * side * 4 == user_image.MAX_DECODE_BYTES
    assert _peak_added_mb(_transparent_png(side), (3, 64, 64), tmp_path) <= 100


@pytest.mark.parametrize("size", [(960, 640), (1001, 997)])  # reduced by 2 exactly; by 5, trimmed
def test_a_reduced_decode_matches_resizing_the_whole_image(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    detail = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    photo = detail.resize(size, Image.Resampling.BICUBIC)  # detail 4 output pixels wide
    taken = preprocess(_encode(photo), (3, 64, 64))
    whole = np.asarray(ImageOps.fit(photo, (64, 64), Image.Resampling.BICUBIC))
    difference = np.abs(taken.pixels.transpose(1, 2, 0).astype(int) - whole)
    assert difference.mean() < 1.0 and difference.max() <= 8


def test_concurrent_decodes_are_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    inside, most = 0, 0
    lock = threading.Lock()
    real_open = user_image._open_checked

    def counting_open(*args: object) -> object:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        try:
            return real_open(*args)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(user_image, "_open_checked", counting_open)
    data = _encode(Image.new("L", (64, 64), 9))
    threads = [threading.Thread(target=preprocess, args=(data, (1, 28, 28))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == user_image.MAX_CONCURRENT_DECODES


def test_a_decode_that_waits_too_long_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(user_image, "DECODE_WAIT_S", 0.01)
    for _ in range(user_image.MAX_CONCURRENT_DECODES):
        user_image._decodes.acquire()
    try:
        with pytest.raises(UserImageError, match="busy decoding other images"):
            preprocess(_encode(Image.new("L", (8, 8))), (1, 28, 28))
    finally:
        for _ in range(user_image.MAX_CONCURRENT_DECODES):
            user_image._decodes.release()


def test_an_mpo_phone_photo_gives_its_first_frame() -> None:
    first = Image.new("RGB", (120, 90), (250, 0, 0))
    buffer = io.BytesIO()
    first.save(buffer, format="MPO", save_all=True, append_images=[Image.new("RGB", (120, 90))])
    taken = preprocess(buffer.getvalue(), (3, 28, 28))
    red, green, blue = (int(c.mean()) for c in taken.pixels)
    assert red > 230 and green < 20 and blue < 20
    assert "took the first of the 2 frames of this MPO photo" in taken.notes


def test_a_cmyk_jpeg_for_a_colour_run_says_it_was_converted() -> None:
    cmyk = _encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG")  # red ink
    taken = preprocess(cmyk, (3, 28, 28))
    assert any(note.startswith("converted CMYK colour → RGB") for note in taken.notes)
    assert taken.pixels[0].mean() > 200 and taken.pixels[1].mean() < 60
    grey = preprocess(cmyk, (1, 28, 28))
    assert "converted CMYK colour → grayscale to match the run's 1 channel" in grey.notes


def test_big_palette_and_keyed_images_are_reduced_in_a_mode_that_averages() -> None:
    palette = Image.new("P", (900, 900), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.paste(1, (0, 0, 900, 450))  # top half white (index 1), bottom black (index 0)
    taken = preprocess(_encode(palette), (1, 28, 28))
    assert taken.pixels[0, :10].min() == 255 and taken.pixels[0, -10:].max() == 0
    keyed = Image.new("RGB", (900, 900), (255, 255, 255))
    keyed.info["transparency"] = (255, 255, 255)  # every pixel is the transparent colour
    taken = preprocess(_encode(keyed), (1, 28, 28))
    assert taken.pixels.max() == 0 and "transparent pixels filled with black" in taken.notes


def test_background_polarity_is_read_from_the_border() -> None:
    from vae_core.user_image import background_is_dark, inverted

    mnist_like = np.zeros((1, 28, 28), np.uint8)
    mnist_like[0, 8:20, 10:18] = 255  # a white digit in the middle
    assert background_is_dark(mnist_like)
    assert not background_is_dark(inverted(mnist_like))  # a pen drawing on paper
    batch = np.stack([mnist_like] * 3 + [inverted(mnist_like)])  # (N, C, H, W)
    assert background_is_dark(batch)  # the majority's background
    assert inverted(mnist_like)[0, 0, 0] == 255 and inverted(mnist_like).dtype == np.uint8
