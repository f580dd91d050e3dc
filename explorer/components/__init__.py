"""Custom Streamlit components: browser-side widgets that plain st.* widgets cannot provide."""

from explorer.components.canvas import draw_canvas
from explorer.components.live_sliders import (
    is_available,
    live_drag_blocker,
    live_latent_sliders,
)

__all__ = ["draw_canvas", "is_available", "live_drag_blocker", "live_latent_sliders"]
