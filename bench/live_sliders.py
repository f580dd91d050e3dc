"""Live-drag sliders in headless Chromium: frames per second while dragging, ms per decode and
the time to the first decoded image, on ONNX Runtime Web (wasm, one thread).

Run: python bench/live_sliders.py [--runs 3] [--steps 100] [--interval-ms 8] [--cases mlp,...]
                                  [--no-explorer]
For each decoder (tests/e2e/live_sliders_models.py: the built-in MLP, latent 20, 28x28; the
built-in conv, 32x32 RGB; an imported-style GroupNorm + SiLU + ConvTranspose decoder, 28x28;
a ~1.2M-parameter decoder, 4x8x8 latent -> 64x64 RGB) it starts tests/e2e/live_sliders_app.py,
then `--runs` times opens a fresh page (empty cache), waits for the first image, drags one
slider with the mouse in `steps` moves, then once per animation frame from inside the page,
and reads the component's counters. Prints min / median / max over the runs, and the
model's size on the websocket. Then, in the explorer itself (explorer/app.py on an MLP run,
latent 20, trained here first), the time from a click on "Latent sliders" to the first image,
on a fresh browser context each time (an empty cache: the runtime is downloaded again); the
first open of a snapshot also exports its decoder to ONNX, so it is given apart. That is the
issue's "first image after the sliders view opens"; "first s" above also holds Streamlit's own
page load. (The hand-written JS interpreter this replaced was compared by this bench in the
commit that added ONNX Runtime Web: it decoded 3-5x faster.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from playwright.sync_api import Browser, Frame, Page, sync_playwright

from tools import devserver
from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir
from vae_core.train import train

E2E = Path(__file__).resolve().parents[1] / "tests" / "e2e"
APP = E2E / "live_sliders_app.py"

# case -> (decoder, latent_dim, frames/s goal while dragging)
CASES = {
    "mlp": ("mlp", 20, 60),
    "conv-rgb": ("conv-rgb", 20, 60),
    "groupnorm": ("groupnorm", 16, 30),
    "big": ("big", 256, 15),
}
LABELS = {
    "mlp": "built-in MLP, latent 20, 28x28",
    "conv-rgb": "built-in conv, latent 20, 32x32 RGB",
    "groupnorm": "imported GroupNorm+SiLU+ConvT, latent 16, 28x28",
    "big": "imported ~1.2M params, 4x8x8 -> 64x64 RGB",
}
STATS = "({...window.__liveSlidersStats})"
# A drag driven from inside the page: one slider step per animation frame for `ms`, so the
# frame rate is the decoder's, not how fast Playwright can deliver mouse moves (on a loaded
# machine that is ~30 a second). Returns decoded frames and animation frames (the cap).
IN_PAGE_DRAG = """async (ms) => {
  const input = document.getElementById("z0");
  input.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true }));
  const before = window.__liveSlidersStats.frames;
  const start = performance.now();
  let ticks = 0;
  await new Promise((resolve) => {
    const tick = (now) => {
      const t = (now - start) / ms;
      if (t >= 1) return resolve();
      ticks += 1;
      input.value = String(0.9 * Number(input.max) * t);
      input.dispatchEvent(new Event("input", { bubbles: true }));
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await new Promise((r) => requestAnimationFrame(r));
  const seconds = (performance.now() - start) / 1000;
  window.dispatchEvent(new PointerEvent("pointerup"));
  return { fps: (window.__liveSlidersStats.frames - before) / seconds, raf: ticks / seconds };
}"""


def _drag(page: Page, frame: Frame, steps: int, interval_s: float) -> dict[str, float]:
    """Hold the z0 thumb and move it right in `steps` moves, one every `interval_s`."""
    box = frame.locator("#z0").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    before = frame.evaluate(STATS)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        page.mouse.move(x + 0.45 * box["width"] * i / steps, y)
        time.sleep(max(0.0, start + i * interval_s - time.perf_counter()))
    after = frame.evaluate(f"new Promise((r) => requestAnimationFrame(() => r({STATS})))")
    seconds = time.perf_counter() - start
    page.mouse.up()
    frames = after["frames"] - before["frames"]
    in_page = frame.evaluate(IN_PAGE_DRAG, 2000)
    return {
        "fps": in_page["fps"],
        "raf": in_page["raf"],
        "mouse_fps": frames / seconds,
        "decode_ms": 1000 / frame.evaluate("window.__liveSlidersThroughput(30)"),
    }


def _measure(browser: Browser, url: str, steps: int, interval_s: float) -> dict[str, float]:
    # a fresh context: an empty HTTP cache, as on a first visit (the wasm is fetched again)
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    received: list[int] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(len(p))))
    opened = time.time()
    page.goto(url)
    frame = devserver.live_sliders_frame(page, timeout_s=120)
    frame.wait_for_function("window.__liveSlidersStats.firstFrameAt !== null", timeout=60_000)
    first = frame.evaluate("window.__liveSlidersStats.firstFrameAt") / 1000 - opened
    result = {"first_s": first, "ws_bytes": sum(received), **_drag(page, frame, steps, interval_s)}
    result["backend"] = frame.evaluate("window.__liveSlidersStats.backend")
    result["load_ms"] = frame.evaluate("window.__liveSlidersStats.loadMs")
    result["runtime_ms"] = frame.evaluate("window.__liveSlidersStats.runtimeReadyMs")
    context.close()
    return result


def _train_mlp_run(path: Path) -> None:
    """A small MLP VAE (latent 20) on 28 px shapes, as the explorer's sliders will show it."""
    model = ModelConfig(image_shape=(1, 28, 28), architecture="mlp", latent_dim=20)
    options = {"image_size": 28, "num_samples": 2048}
    config = TrainConfig(
        dataset="shapes", dataset_options=options, epochs=2, log_every=10, num_threads=1
    )
    train(model, config, RunDir(path))


def _view_switch(browser: Browser, url: str) -> float:
    """Open the explorer on the Training view, then click "Latent sliders": seconds from the
    click to the first decoded image, on a fresh context (empty cache)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url)
        button = page.get_by_test_id("stButtonGroup").get_by_text("Latent sliders", exact=True)
        button.wait_for(timeout=120_000)
        devserver.live_charts_frame(page)  # the Training view is drawn
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
        clicked = time.time()
        button.click()
        frame = devserver.live_sliders_frame(page, timeout_s=120)
        return frame.evaluate("window.__liveSlidersStats.firstFrameAt") / 1000 - clicked
    finally:
        context.close()


def _explorer_first_image(browser: Browser, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vae-bench-") as root:
        _train_mlp_run(Path(root) / "mlp")
        env = {"VAE_EXPLORER_RUNS": root}
        with devserver.serve("explorer/app.py", env=env) as url:
            seconds = [_view_switch(browser, f"{url}/?run=mlp") for _ in range(runs + 1)]
    print(
        f"explorer, MLP latent 20: click on Latent sliders -> first image: "
        f"{_spread(seconds[1:], '.2f')} s (goal 1.5 s: "
        f"{'met' if statistics.median(seconds[1:]) <= 1.5 else 'MISSED'}); "
        f"the snapshot's first open, with its ONNX export: {seconds[0]:.2f} s"
    )


def _verdict(fps: list[float], raf: list[float], goal: float) -> str:
    """Met when the drag reaches the goal, or every frame the display draws (headless
    Chromium animates at 59-60 a second: a 60 f/s goal is then a frame on each one)."""
    cap = statistics.median(raf)
    if statistics.median(fps) >= goal:
        return "met"
    # Only a display cap near the goal: a slow decode on the page's one thread lowers both.
    if 0.95 * goal <= cap <= goal and statistics.median(fps) >= 0.97 * cap:
        return f"met (every frame the display draws: {cap:.0f}/s)"
    return "MISSED"


def _spread(values: list[float], fmt: str) -> str:
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=8.0, help="time between moves")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--no-explorer", action="store_true", help="skip the explorer's view")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"min/median/max of {args.runs} runs. frames/s: a drag stepped once per animation "
        "frame in the page (anim/s: the display's cap); mouse: Playwright's mouse moves; "
        "decode: ms per decode, no drawing; first: page opened -> first image (s); load: "
        "model received -> its first image (ms); runtime: component loaded -> runtime ready (ms)"
    )
    print(
        f"{'decoder':48} {'backend':15} {'frames/s':>15} {'anim/s':>6} {'mouse f/s':>15} "
        f"{'decode ms':>17} {'first s':>15} {'load ms':>13} {'runtime ms':>14}"
    )
    with sync_playwright() as p:
        browser = devserver.launch_chromium(p)
        for case in args.cases.split(","):
            name, latent_dim, goal = CASES[case]
            with devserver.serve(APP, args=(name, str(latent_dim), "16")) as url:
                runs = [
                    _measure(browser, url, args.steps, args.interval_ms / 1000)
                    for _ in range(args.runs)
                ]
                fps = [r["fps"] for r in runs]
                column = {k: [r[k] for r in runs] for k in runs[0] if k != "backend"}
                print(
                    f"{LABELS[case]:48} {runs[0]['backend']:15} {_spread(fps, '.0f'):>15} "
                    f"{statistics.median(column['raf']):6.0f} "
                    f"{_spread(column['mouse_fps'], '.0f'):>15} "
                    f"{_spread(column['decode_ms'], '.2f'):>17} "
                    f"{_spread(column['first_s'], '.2f'):>15} "
                    f"{_spread(column['load_ms'], '.0f'):>13} "
                    f"{_spread(column['runtime_ms'], '.0f'):>14}"
                    f"  goal {goal} f/s {_verdict(fps, column['raf'], goal)};"
                    f" {runs[0]['ws_bytes']:,} B on the websocket",
                    flush=True,
                )
        if not args.no_explorer:
            _explorer_first_image(browser, args.runs)
        browser.close()


if __name__ == "__main__":
    main()
