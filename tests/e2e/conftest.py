"""Fixtures shared by the browser tests: a runs root whose trainers die with the module, the
live sliders' test decoders, a served run with a 2-D latent, and `checks` (idle, no
exception, screenshots), which wait on the app's own state, never on a fixed sleep.
Screenshots go to $VAE_E2E_SHOTS (default tests/e2e/screenshots)."""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tools import devserver
from vae_core.process import kill_trainer
from vae_core.rundir import list_runs


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty runs root; trainers the app started in it are killed at the end."""
    root = tmp_path_factory.mktemp("runs")
    yield root
    for run in list_runs(root):  # trainers run in their own session: kill them by pid
        kill_trainer(run, signal.SIGKILL)


@pytest.fixture(scope="session")
def live_models() -> ModuleType:
    """tests/e2e/live_sliders_models.py: the decoders the live-drag app serves (this folder is
    not a package, and the app imports the module from beside itself)."""
    path = Path(__file__).with_name("live_sliders_models.py")
    spec = importlib.util.spec_from_file_location("live_sliders_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCREENSHOTS = Path(os.environ.get("VAE_E2E_SHOTS", Path(__file__).with_name("screenshots")))
TIMEOUT_MS = 120_000
# Every visible plotly chart has drawn its plot (a rerun that moves a chart redraws it).
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
    .filter(chart => chart.offsetParent !== null)
    .every(chart => [...chart.querySelectorAll('.js-plotly-plot .main-svg')]
        .some(svg => svg.getBoundingClientRect().height > 100))"""


class PageChecks:
    """What every browser test asks of the page, waiting on the app's own state (Streamlit's
    script-run state, the charts' drawn plots), never on a fixed sleep."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # the screenshots' name prefix: one per test module

    @staticmethod
    def idle(page, timeout_ms: int = TIMEOUT_MS) -> None:
        """Wait until the script run the last action asked for has finished. A widget event
        sets the app's state to 'rerunRequested' at once, so no rerun is missed."""
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
            timeout=timeout_ms
        )

    @staticmethod
    def no_exception(page) -> None:
        assert page.locator('[data-testid="stException"]').count() == 0

    def shot(self, page, name: str, full_page: bool = True) -> None:
        """A screenshot once the page is idle and every visible chart has drawn."""
        self.idle(page)
        page.wait_for_function(CHARTS_DRAWN, timeout=TIMEOUT_MS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{self.prefix}_{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def checks(request: pytest.FixtureRequest) -> PageChecks:
    """PageChecks named after the test module (test_health_e2e.py -> health_*.png)."""
    name = Path(request.module.__file__).stem.removeprefix("test_").removesuffix("_e2e")
    return PageChecks(name)


@pytest.fixture(scope="session")
def two_d_run_url(tmp_path_factory: pytest.TempPathFactory, train_shapes_run) -> Iterator[str]:
    """The app serving a run with a 2-D latent on shapes (the scatter is z itself), trained
    in-process first: its URL with ?run= set; add &view=... to open a view."""
    root = tmp_path_factory.mktemp("runs-2d")
    options = {"batch_size": 32, "lr": 3e-3, "log_every": 10}
    train_shapes_run(root / "two-d", latent_dim=2, num_samples=1024, epochs=4, **options)
    with devserver.serve("explorer/app.py", env={"VAE_EXPLORER_RUNS": str(root)}) as url:
        yield f"{url}/?run=two-d"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless system Chromium for a module's tests (skipped where there is none)."""
    if not Path(devserver.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {devserver.CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = devserver.launch_chromium(p)
        yield browser
        browser.close()
