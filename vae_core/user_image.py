"""A user's own image (an upload or a drawing) turned into the exact input a run's encoder sees.

`preprocess(data, image_shape)` decodes PNG / JPEG bytes safely (byte cap, pixel cap read from
the header before any pixel is decoded, decompression bombs, truncated files), converts the
mode to the run's channels, centre-crops and resizes like the folder dataset, and returns
uint8 (C, H, W) pixels with plain-language notes on every conversion made. Every refusal is
one UserImageError (a ValueError) whose message can be shown to the user as is.

Memory is bounded before decoding: a JPEG decodes straight at a reduced scale, the memory a
decode would take is read from the header and refused above MAX_DECODE_BYTES, the decoded
image is box-reduced to about three times the run's size at once, and at most
MAX_CONCURRENT_DECODES uploads decode at the same time in this process
(bench/upload_memory.py measures the peak).
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vae_core.data import MAX_IMAGE_PIXELS

MAX_UPLOAD_BYTES = 10 * 1024**2  # 10 MiB: a large phone JPEG, far above any drawing
MAX_UPLOAD_PIXELS = MAX_IMAGE_PIXELS  # the folder dataset's per-file cap, read from the header
# What one decode may hold, read from the header: a 4096 x 4096 RGBA PNG. A PNG cannot be
# decoded at a reduced scale, and a transparent 6320 x 6320 one is 150 KiB of file but 152 MiB
# decoded (and as much again per conversion), so remote uploads could exhaust the server.
MAX_DECODE_BYTES = 64 * 1024**2
MAX_CONCURRENT_DECODES = 2  # uploads decoding at once in this process; others wait their turn
DECODE_WAIT_S = 30.0  # then refuse rather than hold the page
# MPO: a phone JPEG holding more than one frame (stereo, depth); its first frame is the photo.
FORMATS = ("PNG", "JPEG", "MPO")  # what the uploader offers; the canvas sends PNG
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # modes that hold one colour channel
_MODE_NAMES = {"P": "palette colour", "YCbCr": "YCbCr colour", "CMYK": "CMYK colour"}
_DATA_URL_PREFIX = "data:image/png;base64,"
# Bytes per pixel Pillow holds for a mode (1, L, P: one byte; 16-bit grey: two; the rest four).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_decodes = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
# Box-reduce to at least this many times the run's size before the bicubic resize: within 1%
# of resizing the full decode (at 2x, up to 10 grey levels off on average for fine detail).
REDUCING_GAP = 3
BAND_BYTES = 4 * 1024**2  # of the decoded image converted and reduced at a time
_ORIENTATION = 0x0112  # the EXIF tag; 5-8 mean the image is shown turned by 90 degrees


class UserImageError(ValueError):
    """The bytes cannot be used as an input image; the message says why, in one line."""


@dataclass(frozen=True)
class UserImage:
    pixels: np.ndarray  # (C, H, W) uint8: the encoder's input times 255
    notes: tuple[str, ...]  # each conversion made, e.g. "converted RGB → grayscale ..."
    original_size: tuple[int, int]  # (width, height) of the decoded file
    original_mode: str  # PIL mode of the file, e.g. "RGB", "L", "RGBA"


def preprocess(
    data: bytes,
    image_shape: tuple[int, int, int],
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> UserImage:
    """PNG / JPEG bytes -> the run's (C, H, W) uint8 input, centre-cropped and resized.

    Raises UserImageError for a file over `max_bytes` or `max_pixels`, a non-image, another
    format, a decompression bomb or a truncated / damaged file.
    """
    C, H, W = image_shape
    if len(data) == 0:
        raise UserImageError("the file is empty; upload a PNG or JPEG image")
    if len(data) > max_bytes:
        raise UserImageError(
            f"the file is {_size_text(len(data))}, over the limit of {_size_text(max_bytes)}; "
            "upload a smaller image"
        )
    if not _decodes.acquire(timeout=DECODE_WAIT_S):
        raise UserImageError("the server is busy decoding other images; try again in a moment")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its own pixel limit; refuse those files too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image, mode, (width, height), frames = _open_checked(data, max_pixels, (W, H))
    finally:
        _decodes.release()
    notes = [f"took the first of the {frames} frames of this MPO photo"] if frames > 1 else []
    image, note = _flatten_alpha(image)
    notes += [note] if note else []
    image, note = _convert_channels(image, C, mode)
    notes += [note] if note else []
    if (width, height) != (W, H):
        notes.append(f"resized {width}×{height} → {W}×{H} (centre crop, as the folder dataset)")
    # The folder dataset's transform (vae_core.data._decode_image): square crop, bicubic.
    square = ImageOps.fit(image, (W, H), Image.Resampling.BICUBIC)
    pixels = np.asarray(square, dtype=np.uint8).reshape(H, W, C)  # (H, W, C)
    return UserImage(
        pixels=np.ascontiguousarray(pixels.transpose(2, 0, 1)),  # (C, H, W)
        notes=tuple(notes),
        original_size=(width, height),
        original_mode=mode,
    )


def bytes_from_data_url(url: str, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The PNG bytes of a `data:image/png;base64,...` URL (what the drawing canvas sends)."""
    if not isinstance(url, str) or not url.startswith(_DATA_URL_PREFIX):
        raise UserImageError("the drawing did not arrive as a PNG data URL")
    payload = url[len(_DATA_URL_PREFIX) :]
    if len(payload) > max_bytes * 4 // 3 + 4:  # base64 is 4/3 the size; check before decoding
        raise UserImageError(f"the drawing is over the limit of {_size_text(max_bytes)}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise UserImageError(f"the drawing's data URL is not valid base64 ({err})") from err


def _open_checked(
    data: bytes, max_pixels: int, target: tuple[int, int]
) -> tuple[Image.Image, str, tuple[int, int], int]:
    """Open, check format and header size, then decode every pixel (truncation shows here).

    Returns the upright image reduced to about REDUCING_GAP times `target`, the file's mode, its
    (width, height) from the header and its number of frames (MPO: the first is used).
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        raise UserImageError("this file is not an image; upload a PNG or JPEG") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UserImageError(_bomb_message(err)) from err
    except (OSError, SyntaxError, ValueError) as err:  # e.g. a header cut short
        raise UserImageError(f"the image file is truncated or damaged ({err})") from err
    if image.format not in FORMATS:
        raise UserImageError(f"this is a {image.format} image; upload a PNG or JPEG")
    mode, (width, height) = image.mode, image.size  # from the header: nothing decoded yet
    frames = getattr(image, "n_frames", 1) if image.format == "MPO" else 1
    if width * height > max_pixels:
        raise UserImageError(
            f"the image is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; upload a smaller image"
        )
    try:
        image.draft(image.mode, target)  # JPEG: decode at a reduced scale when it can
        _check_decode_bytes(image, (width, height))
        image.load()
        image = _reduced(image, target)
        return ImageOps.exif_transpose(image), mode, (width, height), frames
    except UserImageError:
        raise  # a ValueError too, but already the one line to show
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UserImageError(_bomb_message(err)) from err
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises all three on damage
        raise UserImageError(f"the image file is truncated or damaged ({err})") from err


def _check_decode_bytes(image: Image.Image, size: tuple[int, int]) -> None:
    """Refuse, from the header (after any draft), an image whose decode would hold more than
    MAX_DECODE_BYTES (every later step works on bands or on the reduced image)."""
    held = image.size[0] * image.size[1] * _PIXEL_BYTES.get(image.mode, 4)
    if held > MAX_DECODE_BYTES:
        raise UserImageError(
            f"the image is {size[0]}×{size[1]} ({image.mode}): decoding it would take "
            f"{_size_text(held)}, over the limit of {_size_text(MAX_DECODE_BYTES)}; upload a "
            "smaller image (a JPEG decodes at a reduced size)"
        )


def _working_mode(image: Image.Image) -> str:
    """The mode to reduce in: palette indices, 1-bit, 16-bit grey and colour-key transparency
    cannot be averaged as they are."""
    keyed = "transparency" in image.info
    if image.mode in ("P", "PA"):
        return "RGBA" if keyed or image.mode == "PA" else "RGB"
    if image.mode == "1":
        return "L"
    if image.mode.startswith("I;16"):
        return "I"
    if keyed and image.mode in ("L", "RGB"):
        return "LA" if image.mode == "L" else "RGBA"
    return image.mode


def _reduced(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """The centre crop ImageOps.fit would take, box-reduced by a whole factor to at least
    REDUCING_GAP times `target`, built band by band: Pillow's reduce and convert copy the whole
    image (RGBA is premultiplied first), so bands keep the peak near the decode itself."""
    W, H = target
    if image.getexif().get(_ORIENTATION, 1) >= 5:  # shown turned by 90°: crop the turned shape
        W, H = H, W
    left, top, right, bottom = _centre_crop(image.size, (W, H))
    factor = _factor((right - left, bottom - top), (W, H))
    # Whole blocks only (a partial last block would shift the picture); < factor pixels go.
    left, right = _trimmed(left, right, factor)
    top, bottom = _trimmed(top, bottom, factor)
    mode = _working_mode(image)
    band_rows = max(factor, BAND_BYTES // (4 * (right - left)) // factor * factor)
    out = Image.new(mode, (-(-(right - left) // factor), -(-(bottom - top) // factor)))
    for y in range(top, bottom, band_rows):
        band = image.crop((left, y, right, min(y + band_rows, bottom))).convert(mode)
        out.paste(band.reduce(factor) if factor > 1 else band, (0, (y - top) // factor))
    out.info = {k: v for k, v in image.info.items() if k != "transparency"}  # EXIF, for upright
    return out


def _factor(crop: tuple[int, int], target: tuple[int, int]) -> int:
    """The reduction: at most crop / (REDUCING_GAP * target), preferring one down to half of
    that which divides the crop exactly (nothing trimmed, nothing shifted)."""
    most = max(1, min(crop[0] // (REDUCING_GAP * target[0]), crop[1] // (REDUCING_GAP * target[1])))
    exact = [f for f in range(most, (most - 1) // 2, -1) if crop[0] % f == crop[1] % f == 0]
    return exact[0] if exact else most


def _trimmed(start: int, stop: int, factor: int) -> tuple[int, int]:
    """(start, stop) narrowed about its middle to a whole number of `factor`-pixel blocks."""
    extra = (stop - start) % factor
    return start + extra // 2, stop - (extra - extra // 2)


def _centre_crop(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest centred box with `target`'s aspect ratio."""
    (width, height), (W, H) = size, target
    crop_w, crop_h = min(width, round(height * W / H)), min(height, round(width * H / W))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def _bomb_message(err: BaseException) -> str:
    return (
        "the image declares far more pixels than its file size can hold (a decompression "
        f"bomb); it was not decoded ({' '.join(str(err).split())[:160]})"
    )


def _flatten_alpha(image: Image.Image) -> tuple[Image.Image, str | None]:
    """Composite transparency onto black, the background of the shapes and MNIST images."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image, None
    rgba = image.convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] == 255:  # an alpha channel, all opaque (a canvas)
        return rgba.convert("L" if image.mode == "LA" else "RGB"), None
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    flat = Image.alpha_composite(background, rgba)
    flat = flat.convert("L" if image.mode == "LA" else "RGB")
    return flat, "transparent pixels filled with black"


def _convert_channels(
    image: Image.Image, channels: int, file_mode: str
) -> tuple[Image.Image, str | None]:
    """To "L" (1 channel) or "RGB" (3), saying so when the file's kind differs from the run's
    (grey for colour, colour for grey, or CMYK's inks for RGB light)."""
    is_grey = image.mode in _GREY_MODES
    target = "L" if channels == 1 else "RGB"
    plural = "channel" if channels == 1 else "channels"
    note = None
    if is_grey and channels == 3:
        note = f"converted grayscale → RGB to match the run's {channels} {plural}"
    elif not is_grey and channels == 1:
        name = _MODE_NAMES.get(image.mode, image.mode)
        note = f"converted {name} → grayscale to match the run's {channels} {plural}"
    elif file_mode == "CMYK":  # inks to light without the file's colour profile: colours shift
        note = (
            f"converted CMYK colour → RGB to match the run's {channels} {plural} (no colour "
            "profile applied, so colours may differ from a print viewer's)"
        )
    if image.mode in ("I", "I;16", "F"):  # 16-bit / float greys: scale to 0..255, not clip
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size and values.max() > 0 else 1.0
        image = Image.fromarray(np.round(values / top * 255).astype(np.uint8))
    return image.convert(target), note


def _size_text(num_bytes: int) -> str:
    if num_bytes >= 1024**2:
        return f"{num_bytes / 1024**2:.1f} MiB"
    return f"{num_bytes / 1024:.0f} KiB" if num_bytes >= 1024 else f"{num_bytes} bytes"


POLARITY_SAMPLE = 256  # dataset images whose borders decide its background


def background_is_dark(pixels: np.ndarray) -> bool:
    """Whether the border of an image (C, H, W), or of a batch (N, C, H, W), is mostly dark:
    the background of a centred subject (MNIST: white on black; a pen drawing: black on
    white). The median of the one-pixel ring, below mid-grey."""
    p = np.asarray(pixels)
    ring = np.concatenate([p[..., 0, :], p[..., -1, :], p[..., 1:-1, 0], p[..., 1:-1, -1]], -1)
    return float(np.median(ring)) < 128


def inverted(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels with black and white swapped."""
    return 255 - np.asarray(pixels, dtype=np.uint8)
