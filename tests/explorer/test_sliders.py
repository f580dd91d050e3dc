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
    at = AppTest.from_function(_order_script)
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
