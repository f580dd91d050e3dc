"""The "What am I looking at?" popover each view opens with."""

from __future__ import annotations

import streamlit as st

from explorer import state


def what_am_i_looking_at(text: str, view: str) -> None:
    """The markdown explaining `view` (its label in the view picker), drawn only while its
    popover is open: closed, its paragraphs would still be rendered again by every rerun, a
    live panel's ticks included."""
    key = state.sub_key(state.HELP_OPEN, view)
    with st.popover(
        "What am I looking at?", icon=":material/help:", key=key, on_change="rerun"
    ) as box:
        if box.open:
            st.markdown(text)
