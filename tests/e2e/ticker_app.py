"""A tiny Streamlit app around components.ticker, for its browser test.

Run: streamlit run tests/e2e/ticker_app.py
A fragment with a 0.25 s clock counts its own runs in a caption ("runs N").
"""

from __future__ import annotations

import streamlit as st

from explorer.components import ticker

st.session_state.setdefault("runs", 0)


@st.fragment
def counted() -> None:
    ticker.every(0.25, key="clock")
    st.session_state.runs += 1
    st.caption(f"runs {st.session_state.runs}")


counted()
