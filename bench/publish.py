"""Size of the published page and time from opening it to its first decoded image.

    python bench/publish.py [--mlp-run RUN] [--conv-run RUN] [--run NAME=RUN ...] [--epochs 1]

Without runs it trains the MLP and the conv VAE (latent 20, the CLI's defaults) on
Fashion-MNIST for --epochs. Each run is published with 2,000 points (the issue's size
target: <= 4 MB for the MLP), then opened 3 times from file:// in headless Chromium, each in
a fresh browser context, every non-file request aborted; the time is the page's own
performance.now() when the first decoded image is drawn (0 = navigation start).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from vae_core.config import ModelConfig, TrainConfig
from vae_core.publish import build_page
from vae_core.rundir import RunDir
from vae_core.train import train

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
OPENS = 3


def train_run(architecture: str, epochs: int, folder: Path) -> RunDir:
    run = RunDir(folder / f"fashion-{architecture}")
    model_config = ModelConfig(image_shape=(1, 28, 28), architecture=architecture, latent_dim=20)
    train(model_config, TrainConfig(dataset="fashion-mnist", epochs=epochs, seed=1), run)
    return run


def first_decode_ms(browser, page_file: Path) -> float:
    context = browser.new_context()  # nothing cached from the previous open
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
    page.goto(page_file.as_uri())
    page.wait_for_function("window.vaePage && vaePage.firstDecodeMs !== null", timeout=60_000)
    ms = page.evaluate("vaePage.firstDecodeMs")
    context.close()
    return ms


def measure(name: str, run: RunDir, browser, folder: Path) -> dict:
    t0 = time.perf_counter()
    page = build_page(run)
    build_s = time.perf_counter() - t0
    out = folder / f"{name}.html"
    out.write_bytes(page.html)
    decoder = page.payload["decoder"]
    opens = [first_decode_ms(browser, out) for _ in range(OPENS)] if decoder else []
    return {
        "model": name,
        "bytes": len(page.html),
        "mb": round(len(page.html) / 1e6, 3),
        "points": page.payload["points"],
        "decoder_floats": decoder["num_floats"] if decoder else 0,
        "sprite_b64_bytes": len(page.payload["sprite"]["png_b64"]),
        "build_s": round(build_s, 2),
        "live_decode": decoder is not None,
        "first_decode_ms": {
            "min": round(min(opens), 1),
            "median": round(statistics.median(opens), 1),
            "max": round(max(opens), 1),
        }
        if opens
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mlp-run", default=None, help="an MLP run (default: train one)")
    parser.add_argument("--conv-run", default=None, help="a conv run (default: train one)")
    parser.add_argument("--run", action="append", default=[], help="NAME=RUN, another run")
    parser.add_argument("--epochs", type=int, default=1, help="epochs for the runs trained here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        runs = {
            "mlp": RunDir(args.mlp_run) if args.mlp_run else train_run("mlp", args.epochs, folder),
            "conv": RunDir(args.conv_run)
            if args.conv_run
            else train_run("conv", args.epochs, folder),
        }
        runs |= {k: RunDir(v) for k, v in (item.split("=", 1) for item in args.run)}
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for name, run in runs.items():
            print(json.dumps(measure(name, run, browser, folder)))
        browser.close()


if __name__ == "__main__":
    main()
