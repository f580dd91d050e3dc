"""Compare 2-4 runs: curves on shared axes, latent maps, prior samples, a summary table.

Runs whose latent sizes match share one projection basis (PCA of the first run's codes),
so a fork and its parent are drawn in the same coordinates. Live runs keep updating.
"""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from explorer import cache, charts, guard, images, runs, state
from explorer.components import ticker
from explorer.panels import explain
from vae_core import latent
from vae_core.metrics_log import MetricsView
from vae_core.rundir import RunDir

REFRESH_S = 3.0
SAMPLES = 16
WHAT = """
Pick two to four runs. Curves share their axes, so the runs read against each other; a
fork's curve starts at the step it branched from (◆). Latent maps use one projection when
the latent sizes match. Prior samples use the same seed and temperature for every run: a
plain autoencoder (β = 0) shows what a model that never pulled its codes onto N(0, I)
decodes from the prior.
"""


def render(run: RunDir) -> None:
    """Run picker, then the comparison in a fragment that polls while any run is live."""
    explain.what_am_i_looking_at(WHAT, "Compare")
    names = runs.run_names()
    default = [run.path.name] if run.path.name in names else []
    parent = runs.parent_of(run)  # by its id: still found after a rename
    if parent is not None and parent.path.name in names:
        default.append(parent.path.name)
    chosen = st.multiselect(
        "Runs to compare", names, default=default, max_selections=4, key=state.COMPARE_RUNS
    )
    if len(chosen) < 2:
        st.info("Pick at least two runs (up to four).")
        return
    root = runs.runs_root()
    compared = [RunDir(root / name) for name in chosen]
    live = any(runs.run_status(r).is_live for r in compared)
    st.fragment(_comparison)(tuple(str(r.path) for r in compared), REFRESH_S if live else None)


@guard.shows_run_errors
def _comparison(run_paths: tuple[str, ...], refresh_s: float | None) -> None:
    ticker.every(refresh_s, key=state.COMPARE_CLOCK)  # first: drawn even when a run is damaged
    compared = [RunDir(p) for p in run_paths]
    curves = []
    for r in compared:
        parent = r.read_parent()
        curves.append(
            (r.path.name, cache.metrics_log(str(r.path)).refresh(), parent and parent["step"])
        )
    st.plotly_chart(charts.compare_curves_figure(curves), key=state.COMPARE_CURVES, width="stretch")
    st.dataframe([_summary(r, m) for r, (_, m, _) in zip(compared, curves, strict=True)])
    ready = [r for r in compared if r.snapshot_version() > 0]
    if len(ready) < len(compared):
        st.caption("Runs without a snapshot yet are left out of the maps and samples.")
    if ready:
        _latent_maps(ready)
        _prior_samples(ready)


def _summary(run: RunDir, metrics: MetricsView) -> dict[str, object]:
    """One table row: the newest test row's numbers (train's before the first eval)."""
    test = metrics.newest("test") or {}
    train = metrics.newest("train") or {}
    row = test or train
    iwae = test.get("iwae")
    return {
        "run": run.path.name,
        "state": runs.state_line(runs.run_status(run)),
        "step": row.get("step"),
        "ELBO": row.get("elbo"),
        "KL": row.get("kl"),
        "active units": row.get("active_units", train.get("active_units")),
        "IWAE NLL": -iwae if isinstance(iwae, float | int) else None,
        "from": "test" if test else "train",
    }


def _latent_maps(compared: list[RunDir]) -> None:
    st.subheader("Latent maps")
    encoded = [cache.encoded(str(r.path), r.snapshot_version()) for r in compared]
    sizes = {codes.mu.shape[1] for codes, _ in encoded}
    shared = len(sizes) == 1
    basis = encoded[0][1]
    if shared:
        st.caption(f"One projection for all: {basis.method.upper()} of {compared[0].path.name}.")
    else:
        st.caption("Latent sizes differ: each map has its own projection basis.")
    for col, r, (codes, own) in zip(st.columns(len(compared)), compared, encoded, strict=True):
        coords = basis.transform(codes.mu) if shared else own.coords
        class_names = cache.test_data(str(r.path)).info.class_names
        axes = ("PC1", "PC2") if basis.method == "pca" else ("z0", "z1")
        fig = charts.scatter_figure(
            coords, codes.labels, codes.indices, class_names, axis_titles=axes, height=360
        )
        fig.update_layout(  # a narrow column: the class legend goes below the map
            title={"text": html.escape(r.path.name)},
            legend={"orientation": "h", "y": -0.25, "title": {"text": ""}},
        )
        col.plotly_chart(fig, key=state.sub_key(state.COMPARE_MAP, r.path.name), width="stretch")


def _prior_samples(compared: list[RunDir]) -> None:
    st.subheader("Prior samples")
    col_t, col_seed = st.columns(2)
    temperature = col_t.slider("Temperature T", 0.0, 2.0, 1.0, 0.05, key=state.COMPARE_TEMPERATURE)
    seed = int(col_seed.number_input("Seed", 0, 2**31 - 1, 0, key=state.COMPARE_SEED))
    for col, r in zip(st.columns(len(compared)), compared, strict=True):
        decoded = cache.prior_samples(str(r.path), r.snapshot_version(), SAMPLES, temperature, seed)
        grid = latent.image_grid(decoded, nrow=int(np.sqrt(SAMPLES)))
        col.image(
            images.png_bytes(grid, target_px=240),
            caption=f"{r.path.name}: T = {temperature:.2f}, seed {seed}",
            output_format="PNG",
        )
