"""Live-drag sliders: decoded frames per second during a scripted drag in headless Chromium.

Run: python bench/live_drag.py [--steps 100] [--interval-ms 8]
For an MLP (20-d) and a conv (28x28, channels 32-64, 20-d) decoder it starts
tests/e2e/live_drag_app.py, drags one slider in `steps` mouse moves, and prints the weights
payload size (raw float32, base64, and bytes over the websocket) and the decoded frames/s.
"""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path

import torch
from playwright.sync_api import Frame, Page, sync_playwright

from explorer import devserver
from vae_core.config import ModelConfig
from vae_core.export import decoder_payload
from vae_core.models import VAE

APP = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "live_drag_app.py"
CASES = {"mlp 20-d": ("mlp", 20), "conv 28x28 (32, 64) 20-d": ("conv", 20)}


def _payload_sizes(architecture: str, latent_dim: int) -> tuple[int, int]:
    """(raw float32 bytes, base64 characters) of the decoder weights."""
    config = ModelConfig(architecture=architecture, latent_dim=latent_dim)
    payload = decoder_payload(VAE(config))
    return len(base64.b64decode(payload["weights_b64"])), len(payload["weights_b64"])


def _drag(page: Page, frame: Frame, steps: int, interval_s: float) -> dict[str, float]:
    """Hold the z0 thumb and move it right in `steps` moves, one every `interval_s`."""
    box = frame.locator("#z0").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    before = frame.evaluate("({...window.__liveDecoderStats})")
    start = time.perf_counter()
    for i in range(1, steps + 1):
        page.mouse.move(x + 0.45 * box["width"] * i / steps, y)
        time.sleep(max(0.0, start + i * interval_s - time.perf_counter()))
    after = frame.evaluate(
        "new Promise((r) => requestAnimationFrame(() => r({...window.__liveDecoderStats})))"
    )
    seconds = time.perf_counter() - start
    page.mouse.up()
    frames = after["frames"] - before["frames"]
    return {
        "seconds": seconds,
        "inputs": after["inputs"] - before["inputs"],
        "frames": frames,
        "fps": frames / seconds,
        "decode_ms": after["meanDecodeMs"],
        "decodes_per_s": frame.evaluate("window.__liveDecoderThroughput(300)"),
    }


def _measure(browser, url: str, steps: int, interval_s: float) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    received: list[int] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(len(p))))
    page.goto(url)
    frame = devserver.live_decoder_frame(page)
    first_render = sum(received)
    result = _drag(page, frame, steps, interval_s)
    page.wait_for_function("document.body.innerText.includes('script runs: 2')")
    result["ws_first_render"] = first_render
    result["ws_rerun"] = sum(received) - first_render  # the rerun after release: no weights
    page.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=8.0, help="time between moves")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with sync_playwright() as p:
        browser = devserver.launch_chromium(p)
        for name, (architecture, latent_dim) in CASES.items():
            raw, b64 = _payload_sizes(architecture, latent_dim)
            with devserver.serve(APP, args=(architecture, str(latent_dim))) as url:
                r = _measure(browser, url, args.steps, args.interval_ms / 1000)
            print(
                f"{name}: weights {raw:,} B float32 ({b64:,} chars as base64); websocket "
                f"{r['ws_first_render']:,} B first render, {r['ws_rerun']:,} B on a rerun\n"
                f"  drag: {args.steps} moves in {r['seconds']:.2f} s -> {r['inputs']} input "
                f"events, {r['frames']} frames = {r['fps']:.1f} frames/s; "
                f"decode {r['decode_ms']:.2f} ms, {r['decodes_per_s']:.0f} decodes/s max"
            )
        browser.close()


if __name__ == "__main__":
    main()
