"""A drawing pad for the user's own input image: white strokes on black, mouse, pen or touch.

`streamlit-drawable-canvas` is unmaintained, so the frontend is a small hand-written one in
`draw_canvas/`, declared like the live sliders. When a stroke ends the browser sends the
whole drawing as a PNG data URL; vae_core.user_image preprocesses it exactly like an upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components

FRONTEND_DIR = Path(__file__).with_name("draw_canvas")
_FRONTEND_FILES = ("index.html", "main.mjs", "style.css")


def is_available() -> bool:
    """Whether the frontend files are present (a broken install may lose them)."""
    return all((FRONTEND_DIR / name).is_file() for name in _FRONTEND_FILES)


def _component() -> Any:
    # Declared per call, not at import: registration needs the running script's runtime.
    return components.declare_component("draw_canvas", path=str(FRONTEND_DIR))


def new_drawing(memo: dict[str, Any], value: Any) -> tuple[bool, str | None]:
    """(changed, PNG data URL or None when cleared) for a browser report not seen before."""
    if not isinstance(value, dict) or value.get("event") in (None, memo.get("seen_event")):
        return False, None
    memo["seen_event"] = value["event"]
    png = value.get("png")
    return True, png if isinstance(png, str) else None


def draw_canvas(
    *, key: str = "draw_canvas", size_px: int = 224, line_width: int = 18
) -> tuple[bool, str | None]:
    """Draw the pad; returns (changed, drawing).

    changed is True once per finished stroke (or Clear); drawing is then the pad as a
    `data:image/png;base64,...` URL, or None after Clear. `line_width` is in canvas pixels:
    18 of 224 is about 2 pixels of a 28-pixel image, an MNIST pen stroke.
    """
    memo: dict[str, Any] = st.session_state.setdefault(f"{key}::draw_canvas", {})
    value = _component()(key=key, default=None, size=int(size_px), line_width=int(line_width))
    return new_drawing(memo, value)
