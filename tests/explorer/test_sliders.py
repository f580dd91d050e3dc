"""explorer.views.sliders: the display order of the latent sliders."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _order_script() -> None:
    import streamlit as st

    from explorer import state
    from explorer.views import sliders

    if st.session_state.get("full_run", True):
        st.session_state[state.SLIDERS_RESORT] = True  # as sliders.render does
    st.session_state["shown"] = sliders.display_order(st.session_state["kl"])


def test_kl_order_is_sorted_again_on_full_runs_only() -> None:
    at = AppTest.from_function(_order_script, default_timeout=30)
    at.session_state["kl"] = [0.1, 2.0, 0.5]
    at.run()
    assert at.session_state["shown"] == [1, 2, 0]
    at.session_state["kl"] = [3.0, 0.0, 1.0]  # training moved the ranking...
    at.session_state["full_run"] = False  # ...and the user stepped a slider
    at.run()
    assert at.session_state["shown"] == [1, 2, 0]  # the sliders stay where they are
    at.session_state["full_run"] = True
    at.run()
    assert at.session_state["shown"] == [0, 2, 1]
    at.session_state["kl"] = [1.0, 0.0]  # another run, another size: sorted regardless
    at.session_state["full_run"] = False
    at.run()
    assert at.session_state["shown"] == [0, 1]


def _frozen_script() -> None:
    import streamlit as st

    from explorer import state
    from explorer.views import sliders
    from vae_core.rundir import RunDir

    st.session_state[state.SLIDERS_FREEZE] = st.session_state["freeze"]
    net, version = sliders.decode_model(RunDir(st.session_state["run"]))
    st.session_state["seen"] = (version, float(next(net.parameters()).detach().sum()))


def test_freeze_weights_survives_newer_snapshots_and_cache_eviction(
    runs_root, run_name, tmp_path
) -> None:
    import shutil

    import streamlit as st
    import torch

    from vae_core.checkpoint import snapshot_model
    from vae_core.rundir import RunDir

    run = RunDir(tmp_path / "run")
    shutil.copytree(runs_root / run_name, run.path)
    at = AppTest.from_function(_frozen_script, default_timeout=60)
    at.session_state["run"], at.session_state["freeze"] = str(run.path), True
    at.run()
    frozen = at.session_state["seen"]
    newer, _ = snapshot_model(run)
    with torch.no_grad():
        for p in newer.parameters():
            p.add_(1.0)
    run.publish_snapshot(newer, step=999)
    st.cache_resource.clear()  # what an eviction does
    at.run()
    assert at.session_state["seen"] == frozen
    at.session_state["freeze"] = False
    at.run()
    version, weight_sum = at.session_state["seen"]
    assert version == frozen[0] + 1 and weight_sum != frozen[1]
