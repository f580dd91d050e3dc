"""Custom Streamlit components: browser-side widgets that plain st.* widgets cannot provide.

Each is a module named like its frontend folder: `live_charts` (live_charts/), `live_sliders`
(live_sliders/), `canvas` (draw_canvas/); import the module, e.g.
`from explorer.components import live_sliders`.
"""

from explorer.components.canvas import draw_canvas

__all__ = ["draw_canvas"]
