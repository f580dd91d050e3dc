"""Peak memory one *Your own image* upload adds to the process that decodes it.

    python bench/upload_memory.py [--runs 3] [--size 64] [--channels 3]

Worst cases for the decoder: a transparent 6320 x 6320 PNG (150 KiB of file, 152 MiB decoded:
refused from its header), the largest PNGs still accepted (RGBA and palette, at the decode
limit), a 24-megapixel phone JPEG and an MPO. Each run is a fresh process that imports the
decoder, holds the file's bytes, resets its peak RSS (/proc/self/clear_refs), calls
vae_core.user_image.preprocess once and reports VmHWM minus the RSS before: every byte the
upload's decode added, including Pillow's C buffers that tracemalloc does not see. Prints
min / median / max over the runs for each case; the goal is <= 100 MB.
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

GOAL_MB = 100.0
REPO = Path(__file__).resolve().parents[1]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _transparent_png(side: int) -> bytes:
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (side // 4, side // 4, side // 2, side // 2))
    return _png(image)


def _palette_png(side: int) -> bytes:
    image = Image.new("P", (side, side), 0)
    image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.paste(200, (side // 4, side // 4, side // 2, side // 2))
    return _png(image)


def _photo_jpeg(width: int, height: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    extra = {"save_all": True, "append_images": [image]} if fmt == "MPO" else {}
    image.save(buffer, format=fmt, quality=90, **extra)
    return buffer.getvalue()


CASES: dict[str, Callable[[], bytes]] = {
    "transparent PNG 6320x6320 (refused)": lambda: _transparent_png(6320),
    "transparent PNG 4096x4096 (largest RGBA kept)": lambda: _transparent_png(4096),
    "palette PNG 3660x3660 (largest P kept)": lambda: _palette_png(3660),
    "phone JPEG 6000x4000": lambda: _photo_jpeg(6000, 4000),
    "phone MPO 4000x3000, 2 frames": lambda: _photo_jpeg(4000, 3000, "MPO"),
}


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def child(path: str, shape: tuple[int, int, int]) -> None:
    """In a fresh process: decode the file once and print the peak memory it added (MB)."""
    from vae_core import user_image

    data = Path(path).read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    before = _status_kib("VmRSS")
    try:
        taken = user_image.preprocess(data, shape)
        outcome = "kept: " + "; ".join(taken.notes)
    except user_image.UserImageError as err:
        outcome = f"refused: {err}"
    added_mb = (_status_kib("VmHWM") - before) * 1024 / 1e6
    print(f"{added_mb:.1f}\t{outcome}")


def measure(path: Path, shape: tuple[int, int, int]) -> tuple[float, str]:
    """(MB added, outcome) of one decode in a fresh process."""
    command = [sys.executable, __file__, "--child", str(path), *map(str, shape)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    added, outcome = result.stdout.strip().splitlines()[-1].split("\t", 1)
    return float(added), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="the run's image side")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], tuple(int(v) for v in args.child[1:]))
        return
    shape = (args.channels, args.size, args.size)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CASES.items():
            path = Path(tmp) / "upload"
            path.write_bytes(make())
            results = [measure(path, shape) for _ in range(args.runs)]
            added = sorted(mb for mb, _ in results)
            worst = max(worst, added[-1])
            print(
                f"{name}: {path.stat().st_size / 1024:.0f} KiB file, peak added "
                f"min {added[0]:.1f} / median {statistics.median(added):.1f} / "
                f"max {added[-1]:.1f} MB ({results[0][1][:90]})"
            )
    verdict = "meets" if worst <= GOAL_MB else "MISSES"
    print(f"worst case {worst:.1f} MB: {verdict} the goal of <= {GOAL_MB:.0f} MB per upload")


if __name__ == "__main__":
    main()
