"""A refresh clock that follows the tab's visibility: `st.fragment(run_every=...)` without
the cost of a tab nobody looks at.

Streamlit's `run_every` ticks on a browser timer whatever the tab's state, so a hidden tab
keeps rerunning its fragments (and a throttled one still does, once a second). `every(...)`
called inside a fragment draws an invisible iframe (`ticker/index.html`) that reports every
`seconds` while the page is visible, nothing while it is hidden, and once at once when it is
shown again; each report reruns that fragment.
"""

from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

FRONTEND_DIR = Path(__file__).with_name("ticker")


def every(seconds: float | None, *, key: str) -> None:
    """Rerun the enclosing fragment every `seconds` while the tab is visible; None or 0 stops
    the clock. Call it inside an `st.fragment` (outside one, each report reruns the page)."""
    interval_ms = int(1000 * seconds) if seconds else 0
    component = components.declare_component("ticker", path=str(FRONTEND_DIR))
    component(interval_ms=interval_ms, key=key, default=None)
