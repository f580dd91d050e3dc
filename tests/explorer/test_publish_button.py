"""The sidebar's Publish button: present for a run with a snapshot, and the bytes it
downloads are the run's self-contained page at that snapshot version."""

from __future__ import annotations

import json
import re

from explorer.panels import publish
from vae_core.rundir import RunDir


def test_publish_downloads_the_runs_page(app, runs_root, run_name) -> None:
    at = app(run_name)
    assert not at.exception
    (button,) = [b for b in at.get("download_button") if b.proto.label.startswith("Publish")]
    assert not button.proto.disabled
    run = RunDir(runs_root / run_name)
    version = run.snapshot_version()
    html = publish.page_bytes(str(run.path), version)  # what the click runs, off the script
    assert html is publish.page_bytes(str(run.path), version)  # cached per version
    (data,) = re.findall(rb'<script type="application/json" id="payload">(.*?)</script>', html)
    payload = json.loads(data)
    assert payload["card"]["snapshot_version"] == version
    assert payload["card"]["name"] == run_name and payload["decoder"] is not None
