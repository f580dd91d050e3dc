"""Where the data lives, in headless Chromium: histograms on the live sliders' tracks, an
attribute-vector slider that moves z in the browser, the prior-hole map behind the scatter,
and prior vs aggregate-posterior samples. Screenshots go to tests/e2e/screenshots/latent_*.

The run (a 2-D latent on shapes, so the scatter is z itself) is trained in-process first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer import devserver
from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir
from vae_core.train import train

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).with_name("screenshots")
TIMEOUT_MS = 60_000
RUN = "two-d"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("runs")
    model_config = ModelConfig(
        image_shape=(1, 28, 28), architecture="mlp", latent_dim=2, hidden_dim=64
    )
    train_config = TrainConfig(
        dataset="shapes",
        dataset_options={"image_size": 28, "num_samples": 1024},
        epochs=4,
        batch_size=32,
        lr=3e-3,
        log_every=10,
        num_threads=1,
    )
    train(model_config, train_config, RunDir(root / RUN))
    with devserver.serve("explorer/app.py", env={"VAE_EXPLORER_RUNS": str(root)}) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator[object]:
    with devserver.chromium_page(
        f"{app_url}/?run={RUN}&view=Latent+sliders", height=1000, timeout_ms=TIMEOUT_MS
    ) as page:
        yield page


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"latent_{name}.png"), full_page=True)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def _idle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


def _values(frame) -> list[float]:
    return frame.evaluate("[...document.querySelectorAll('output')].map(o => Number(o.value))")


def test_histograms_attribute_slider_hole_map_and_aggregate_samples(page) -> None:
    # -- every live slider track carries a histogram of q with the prior drawn over it --
    frame = devserver.live_sliders_frame(page)
    frame.wait_for_function("document.querySelectorAll('svg.hist path.q').length === 2")
    bars = frame.locator("svg.hist path.q").first.get_attribute("d")
    assert bars.count("M") == 32  # one bar per bin
    assert frame.locator("svg.hist polyline.p").count() == 2
    stats = frame.evaluate("({...window.__liveSlidersStats})")
    print(f"histograms drawn in {stats['histogramMs']:.2f} ms")  # reported by the -s run

    # -- an attribute vector from two classes appears at once as a slider after the dims --
    main = page.get_by_test_id("stMain")
    main.get_by_text("Attribute vectors", exact=True).first.click()
    main.get_by_test_id("stMetric").filter(has_text="AUC").wait_for()
    main.get_by_role("button", name="Add slider").click()
    frame = devserver.live_sliders_frame(page)
    frame.locator("#a0").wait_for()
    before = _values(frame)
    frame.locator("#a0").focus()
    for _ in range(60):
        frame.page.keyboard.press("ArrowRight")
    frame.wait_for_function(
        "before => [...document.querySelectorAll('output')].some("
        "(o, i) => Math.abs(Number(o.value) - before[i]) > 0.2)",
        arg=before,
    )
    after = _values(frame)
    assert after[:2] != before[:2]  # z0, z1 moved together, along the vector
    _idle(page)
    SCREENSHOTS.mkdir(exist_ok=True)
    frame.frame_element().screenshot(path=str(SCREENSHOTS / "latent_sliders_live.png"))
    _shot(page, "sliders_attribute")
    _no_exception(page)

    # -- the prior-hole map shades the scatter's plane; the slider point gets a badge --
    page.get_by_test_id("stButtonGroup").get_by_text("Scatter", exact=True).click()
    _idle(page)
    main.get_by_text("Prior-hole map", exact=True).click()
    _idle(page)
    plot = page.locator(".js-plotly-plot:visible").first
    plot.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".some(gd => gd._fullData && gd._fullData[0].type === 'heatmap')"
    )
    assert main.get_by_text("manifold").count() >= 1
    _shot(page, "hole_map")
    _no_exception(page)

    # -- prior samples beside samples of the aggregate posterior's mixture --
    page.get_by_test_id("stButtonGroup").get_by_text("Prior samples", exact=True).click()
    _idle(page)
    main.get_by_test_id("stImage").filter(has_text="the same noise").wait_for()
    main.get_by_test_id("stImage").filter(has_text="36 samples").wait_for()
    _shot(page, "samples")
    _no_exception(page)
