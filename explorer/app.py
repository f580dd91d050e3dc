"""VAE Latent Explorer: train a VAE in the background and explore its latent space live.

    streamlit run explorer/app.py

This file is the server's wiring: Streamlit serves the page script (explorer/page.py) and,
beside it, the route the Training panel's charts fetch their ticks from (explorer.live_feed)
and the one the live-drag sliders load ONNX Runtime's wasm from (explorer.ort_files).
`streamlit run` finds the `st.App` below and serves it; nothing else runs here.
"""

import streamlit as st

from explorer import live_feed, ort_files

base = st.get_option("server.baseUrlPath")
app = st.App("page.py", routes=[*live_feed.routes(base), *ort_files.routes(base)])
