"""Imported VAEs (classes vae_core does not know) in headless Chromium: every view opens on a
vector and a spatial latent without an exception or an error line. Screenshots go to
$VAE_E2E_SHOTS (default /tmp/vae-explorer-e2e)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tools import devserver
from vae_core.config import TrainConfig
from vae_core.import_run import card_from_flags, import_model

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

USER_VAES = Path(__file__).resolve().parents[1] / "user_vaes"
SHOTS = Path(os.environ.get("VAE_E2E_SHOTS", "/tmp/vae-explorer-e2e"))
TIMEOUT_MS = 120_000
VIEWS = (
    "Training",
    "Latent sliders",
    "Scatter",
    "Interpolation",
    "Inspect image",
    "Prior samples",
    "Compare",
)


@pytest.fixture(scope="module")
def imported_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    if not Path(devserver.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {devserver.CHROMIUM}")
    root = tmp_path_factory.mktemp("runs")
    data = TrainConfig(dataset="shapes", dataset_options={"image_size": 28, "num_samples": 512})
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(USER_VAES))
        for cls in ("GroupNormVAE", "SpatialVAE"):
            card, likelihood = card_from_flags(f"foreign_vaes:{cls}", None)
            import_model(root / cls, card, data, likelihood)
    env = {"VAE_EXPLORER_RUNS": str(root), "PYTHONPATH": str(USER_VAES)}
    with devserver.serve("explorer/app.py", env=env) as url:
        with playwright_api.sync_playwright() as p:
            browser = devserver.launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.set_default_timeout(TIMEOUT_MS)
            yield page, url
            browser.close()


def _settled(page) -> None:
    """The script run has ended: the header is drawn and no run is in progress."""
    page.get_by_test_id("stHeading").first.wait_for()
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


@pytest.mark.parametrize("run", ["GroupNormVAE", "SpatialVAE"])
def test_every_view_opens_on_an_imported_model_in_chromium(imported_url, run) -> None:
    page, url = imported_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        page.goto(f"{url}/?run={run}&view={quote(view)}")
        _settled(page)
        if view == "Latent sliders" and run == "SpatialVAE":
            page.get_by_text("direction 1 ·").first.wait_for()
            page.get_by_text("decoded on the server in").first.wait_for()
        page.screenshot(path=str(SHOTS / f"imported_{run}_{view}.png"), full_page=True)
        exceptions = page.locator('[data-testid="stException"]')
        assert exceptions.count() == 0, (view, exceptions.all_inner_texts())
        errors = page.locator('[data-testid="stAlertContentError"]')
        assert errors.count() == 0, (view, errors.all_inner_texts())
