"""The Publish button: downloads the open run as one self-contained HTML page
(vae_core.publish), built when clicked, off the script thread, once per snapshot version.
Nothing here imports torch at import time: the sidebar draws it on the first page.
"""

from __future__ import annotations

import streamlit as st

from explorer import guard, state
from vae_core.rundir import RunDir

HELP = (
    "One HTML file that explores this snapshot with no server: sliders decoded in the page, "
    "the map of 2,000 test images, interpolation and prior samples. Opens from a disk, a "
    "course page or a slide deck."
)


def render(run: RunDir) -> None:
    """A download button for the run's page (disabled before the first snapshot)."""
    try:
        version = run.snapshot_version()
    except guard.RUN_ERRORS:
        version = 0  # the run's other panels say what is damaged
    run_path = str(run.path)
    st.download_button(
        "Publish as one HTML page",
        data=lambda: page_bytes(run_path, version),  # called on click, on its own thread
        file_name=f"{run.path.name}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/public:",
        help=HELP if version else "Publishing needs a snapshot: the run has none yet.",
        disabled=version == 0,
        width="stretch",
        key=state.SIDEBAR_PUBLISH,
    )


def page_bytes(run_path: str, version: int) -> bytes:
    """The page of `run_path` at snapshot `version`, with the run's t-SNE (else UMAP) when one
    of this version has been computed, else PCA."""
    from explorer import cache, projections  # torch: paid on the first click only

    for method in ("tsne", "umap"):
        job = projections.job(run_path, method)
        if job is not None and job.version == version and job.projection is not None:
            return cache.published_page(run_path, version, job.projection, method)
    return cache.published_page(run_path, version, None, "pca")
