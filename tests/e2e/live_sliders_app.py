"""The live-drag test page (live_sliders_page.py) served as the explorer serves its pages:
beside the route ONNX Runtime's wasm comes from (explorer.ort_files).

Run: streamlit run tests/e2e/live_sliders_app.py -- [decoder] [latent_dim] [top_dims]
"""

import streamlit as st

from explorer import ort_files

app = st.App("live_sliders_page.py", routes=ort_files.routes(st.get_option("server.baseUrlPath")))
