"""A user's own image (an upload or a drawing) turned into the exact input a run's encoder sees.

`preprocess(data, image_shape)` decodes PNG / JPEG bytes safely (byte cap, pixel cap read from
the header before any pixel is decoded, decompression bombs, truncated files), converts the
mode to the run's channels, centre-crops and resizes like the folder dataset, and returns
uint8 (C, H, W) pixels with plain-language notes on every conversion made. Every refusal is
one UserImageError (a ValueError) whose message can be shown to the user as is.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vae_core.data import MAX_IMAGE_PIXELS

MAX_UPLOAD_BYTES = 10 * 1024**2  # 10 MiB: a large phone JPEG, far above any drawing
MAX_UPLOAD_PIXELS = MAX_IMAGE_PIXELS  # the folder dataset's per-file cap, read from the header
FORMATS = ("PNG", "JPEG")  # what the uploader offers; the canvas sends PNG
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # modes that hold one colour channel
_MODE_NAMES = {"P": "palette colour", "YCbCr": "YCbCr colour", "CMYK": "CMYK colour"}
_DATA_URL_PREFIX = "data:image/png;base64,"


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
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x its own pixel limit; refuse those files too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image, mode, (width, height) = _open_checked(data, max_pixels, (W, H))
    notes = []
    image, note = _flatten_alpha(image)
    notes += [note] if note else []
    image, note = _convert_channels(image, C)
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
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Open, check format and header size, then decode every pixel (truncation shows here).

    Returns the upright image, the file's mode and its (width, height) from the header.
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
    if width * height > max_pixels:
        raise UserImageError(
            f"the image is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; upload a smaller image"
        )
    try:
        image.draft(image.mode, target)  # JPEG: decode at a reduced scale when it can
        image.load()
        return ImageOps.exif_transpose(image), mode, (width, height)  # phone photos upright
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UserImageError(_bomb_message(err)) from err
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises all three on damage
        raise UserImageError(f"the image file is truncated or damaged ({err})") from err


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


def _convert_channels(image: Image.Image, channels: int) -> tuple[Image.Image, str | None]:
    """To "L" (1 channel) or "RGB" (3), saying so when the file's kind differs from the run's."""
    is_grey = image.mode in _GREY_MODES
    target = "L" if channels == 1 else "RGB"
    plural = "channel" if channels == 1 else "channels"
    note = None
    if is_grey and channels == 3:
        note = f"converted grayscale → RGB to match the run's {channels} {plural}"
    elif not is_grey and channels == 1:
        name = _MODE_NAMES.get(image.mode, image.mode)
        note = f"converted {name} → grayscale to match the run's {channels} {plural}"
    if image.mode in ("I", "I;16", "F"):  # 16-bit / float greys: scale to 0..255, not clip
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size and values.max() > 0 else 1.0
        image = Image.fromarray(np.round(values / top * 255).astype(np.uint8))
    return image.convert(target), note


def _size_text(num_bytes: int) -> str:
    if num_bytes >= 1024**2:
        return f"{num_bytes / 1024**2:.1f} MiB"
    return f"{num_bytes / 1024:.0f} KiB" if num_bytes >= 1024 else f"{num_bytes} bytes"
