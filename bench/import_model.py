"""Your own VAE: import time, server-side decode time and slider latency for imported models.

    .venv/bin/python bench/import_model.py [--repeats 3]

Models: the test suite's GroupNormVAE (28x28, latent 8) and, built here with random
weights, a decoder the size of a tiny image-diffusion autoencoder's (about 1.2M parameters,
4x8x8 latent -> 64x64 RGB). Slider latency is measured server-side (AppTest: one slider set,
one fragment rerun, one decode and PNG): the path of a spatial latent's principal-direction
sliders, and of any decoder when live drag is off (bench/live_sliders.py measures live drag).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
USER_VAES = REPO / "tests" / "user_vaes"


def _res(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.GroupNorm(8, channels),
        nn.SiLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.GroupNorm(8, channels),
        nn.SiLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


class TinyLatentDiffusionAE(nn.Module):
    """A 4x8x8 latent for 64x64 RGB, with a ~1.2M-parameter decoder (GroupNorm, SiLU,
    nearest upsampling, 3x3 convolutions), as in a small image-diffusion autoencoder."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1), nn.SiLU(),  # 32
            nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU(),  # 16
            nn.Conv2d(64, 64, 3, 2, 1), nn.SiLU(),  # 8
            nn.Conv2d(64, 8, 3, padding=1),
        )  # fmt: skip
        self.conv_in = nn.Conv2d(4, 128, 3, padding=1)
        self.mid = nn.ModuleList([_res(128), _res(128), _res(128)])
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(128, 128, 3, padding=1),  # 16
            nn.Upsample(scale_factor=2), nn.Conv2d(128, 64, 3, padding=1),  # 32
            _res(64),
            nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1),  # 64
            _res(32),
            nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 3, 3, padding=1),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.down(x).chunk(2, dim=1)  # (B, 4, 8, 8) each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = h + block(h)
        return self.up(h)


def _rgb_folder(folder: Path, n: int = 64) -> None:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def _import(run_dir: Path, flags: list[str]) -> float:
    """Wall seconds of `python -m vae_core import` (a fresh process, as the app runs it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(USER_VAES), str(HERE)])}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vae_core", "import", "--run-dir", str(run_dir), *flags],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - t0


def _decode_ms(run_dir: Path, repeats: int = 30) -> list[float]:
    from vae_core.checkpoint import load_run_model
    from vae_core.rundir import RunDir

    model = load_run_model(RunDir(run_dir))
    z = torch.randn(1, model.config.latent_dim)
    model.decode_image(z)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.decode_image(z)
        times.append(1000 * (time.perf_counter() - t0))
    return times


def _slider_ms(root: Path, name: str, spatial: bool, repeats: int = 5) -> list[float]:
    """One slider moved, the fragment rerun to a new decoded image (AppTest, no browser)."""
    from streamlit.testing.v1 import AppTest

    from explorer import state

    os.environ["VAE_EXPLORER_RUNS"] = str(root)
    at = AppTest.from_file(str(REPO / "explorer" / "page.py"), default_timeout=300)
    at.query_params[state.RUN_PARAM] = name
    at.session_state[state.APP_VIEW] = "Latent sliders"
    at.session_state[state.SLIDERS_LIVE] = False  # the server path (live drag: live_sliders.py)
    at.run()
    key = state.spatial_slider_key("direction", 0) if spatial else state.slider_key(0)
    slider = next(s for s in at.slider if s.key == key)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        slider.set_value(round(-2.0 + i * 0.7, 1)).run()
        times.append(1000 * (time.perf_counter() - t0))
        slider = next(s for s in at.slider if s.key == key)
    return times


def _line(label: str, values: list[float], unit: str) -> None:
    low, mid, high = min(values), statistics.median(values), max(values)
    print(f"{label:<48} min {low:8.1f}  median {mid:8.1f}  max {high:8.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path[:0] = [str(USER_VAES), str(HERE)]
    ae = TinyLatentDiffusionAE()
    params = sum(p.numel() for m in (ae.conv_in, ae.mid, ae.up) for p in m.parameters())
    print(f"tiny latent-diffusion decoder: {params / 1e6:.2f}M parameters, 4x8x8 -> 3x64x64")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        images = Path(tmp) / "images"
        _rgb_folder(images)
        shapes = ["--dataset", "shapes", "--image-size", "28", "--num-samples", "512"]
        folder = ["--dataset", "folder", "--folder", str(images), "--image-size", "64"]
        models = {
            "GroupNormVAE": (["--model", "foreign_vaes:GroupNormVAE", *shapes], False),
            "TinyLatentDiffusionAE": (
                [
                    "--model",
                    "import_model:TinyLatentDiffusionAE",
                    "--likelihood",
                    "gaussian",
                    *folder,
                ],
                True,
            ),
        }
        for name, (flags, spatial) in models.items():
            seconds = [_import(root / f"{name}-{i}", flags) for i in range(args.repeats)]
            _line(f"{name}: import (fresh process)", seconds, "s")
            _line(f"{name}: server decode, one image", _decode_ms(root / f"{name}-0"), "ms")
            _line(
                f"{name}: slider set -> new image (server)",
                _slider_ms(root, f"{name}-0", spatial),
                "ms",
            )


if __name__ == "__main__":
    main()
