"""Fixtures for the explorer tests: a small finished run, trained in-process on shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer import live_feed, state

RUN_NAME = "finished-shapes"
LATENT_DIM = 5


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """The app holds its process to one torch thread (runs.keep_ui_threads); AppTest runs it
    in this one, so each test gives the rest of the suite its thread count back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def app_path() -> str:
    return str(Path(__file__).resolve().parents[2] / "explorer" / "page.py")


@pytest.fixture
def app(app_path: str):
    """Build and run the app: `app(run, view, live=True, **session_state)`."""

    def make(
        run: str | None = None, view: str | None = None, live: bool = True, **session: Any
    ) -> AppTest:
        """`live=False` turns the live-drag component off: the st.slider fallback is drawn."""
        at = AppTest.from_file(app_path, default_timeout=60)
        at.session_state[state.SLIDERS_LIVE] = live
        if run is not None:
            at.query_params[state.RUN_PARAM] = run
        if view is not None:
            at.session_state[state.APP_VIEW] = view
        for key, value in session.items():
            at.session_state[key] = value
        return at.run()

    return make


@pytest.fixture(scope="session")
def run_name() -> str:
    return RUN_NAME


@pytest.fixture(scope="session")
def latent_dim() -> int:
    return LATENT_DIM


@pytest.fixture(scope="session")
def finished_run_root(tmp_path_factory: pytest.TempPathFactory, train_shapes_run) -> Path:
    """A runs root holding one finished 1-epoch run on 28px shapes (a few seconds)."""
    root = tmp_path_factory.mktemp("runs")
    train_shapes_run(root / RUN_NAME, latent_dim=LATENT_DIM, num_samples=512, epochs=1, log_every=2)
    return root


@pytest.fixture
def runs_root(finished_run_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """VAE_EXPLORER_RUNS pointing at the root with the finished run."""
    monkeypatch.setenv("VAE_EXPLORER_RUNS", str(finished_run_root))
    return finished_run_root


@pytest.fixture
def empty_runs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("VAE_EXPLORER_RUNS", str(root))
    return root


def components_named(at: AppTest, name: str) -> list[Any]:
    """The instances of custom component `name` (live_charts, live_sliders, ticker, ...) on
    the page after a run of the app."""
    return [e for e in at.get("component_instance") if e.proto.component_name.endswith(name)]


@pytest.fixture
def components_of():
    """components_named, for tests (a fixture: test modules do not import conftest)."""
    return components_named


@pytest.fixture
def live_charts_of():
    """What the Training view's live charts are sent after a run of the app, as one iframe
    fetches it from the panel's live feed (everything first, then what changed since its
    last fetch): slot name -> its update ({"figure": JSON} | {"traces": ...} | {"text": ...}
    | {"image": ...} | {"readouts": ...})."""
    held: dict[str, int] = {}  # feed token -> the update this "iframe" holds

    def ops(at: AppTest) -> dict[str, Any]:
        (element,) = components_named(at, "live_charts")
        token = json.loads(element.proto.json_args)["feed"]
        update = live_feed.poll(token, have=held.get(token, 0))
        assert update is not None, "the panel published no feed"
        held[token] = update["seq"]
        return update["ops"]

    return ops
