"""The explorer's first page (sidebar, run list, New run form) is drawn before torch is
imported, so a cold start costs little more than Streamlit's own (issue 13; measured by
bench/cold_start.py). Each check runs in a fresh interpreter: this one has torch loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_core.config import ModelConfig, TrainConfig
from vae_core.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
# Seconds each to import; the views that need them import them on first use.
HEAVY = ("torch", "torchvision", "safetensors.torch", "sklearn", "numpy")
FIRST_PAGE_MODULES = (
    "explorer.views.sidebar",
    "explorer.runs",
    "explorer.access",
    "explorer.guard",
    "explorer.state",
    "vae_core",
    "vae_core.catalog",
    "vae_core.config",
    "vae_core.rundir",
    "vae_core.status",
    "vae_core.control",
    "vae_core.safetensors_io",
    "vae_core.run_errors",
    "vae_core.settings",
    "vae_core.process",
    "vae_core.atomic",
)
REPORT = f"import json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


def _heavy_modules_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """HEAVY modules loaded once `code` has run in a fresh Python (its last stdout line)."""
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", FIRST_PAGE_MODULES)
def test_first_page_module_imports_no_heavy_library(module: str) -> None:
    assert _heavy_modules_after(f"import {module}") == []


@pytest.mark.parametrize("with_run", [False, True], ids=["empty root", "a run to pick"])
def test_first_page_of_the_app_draws_start_without_importing_torch(
    with_run: bool, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    if with_run:  # the run list shows it; none is open, so the New run form is too
        RunDir(root / "a-run").create().write_config(
            ModelConfig(image_shape=(1, 28, 28)), TrainConfig(dataset="shapes")
        )
    code = (
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('explorer/page.py', default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "assert 'Start' in [b.label for b in at.button], [b.label for b in at.button]\n"
        f"assert {with_run} == any(o.endswith(' a-run') for s in at.selectbox"
        " for o in s.options)"
    )
    loaded = _heavy_modules_after(code, env={"VAE_EXPLORER_RUNS": str(root)})
    assert loaded == []


def test_the_lazy_names_of_vae_core_still_resolve() -> None:
    from vae_core import VAE, RunDir, VAEOutput
    from vae_core.models import VAE as models_vae
    from vae_core.models import VAEOutput as models_output
    from vae_core.rundir import RunDir as rundir_run_dir

    assert (VAE, VAEOutput, RunDir) == (models_vae, models_output, rundir_run_dir)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = __import__("vae_core").nothing


def test_the_servers_wiring_loads_no_torch() -> None:
    """explorer/app.py is imported by the server before any page: it only wires the routes."""
    code = "import streamlit as st\nfrom explorer import app\nassert isinstance(app.app, st.App)\n"
    assert _heavy_modules_after(code, env={}) == []
