"""A reproducible view: the sliders' current state as a URL, a JSON, a five-line Python
snippet that decodes the same image from the run folder with vae_core, and z.npy bytes.

z is written as float32 with 9 significant digits, which round-trips float32 exactly: the
snippet decodes bit for bit the image the app decodes from the same snapshot. No st.* calls.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np

from explorer.state import APP_VIEW, RUN_PARAM, Z_PARAM

SLIDERS_VIEW = "Latent sliders"  # the view's label in app.VIEWS, as ?view= carries it


@dataclass(frozen=True)
class ViewState:
    run_ref: str  # the ?run= value: a name under the runs root, or a path
    run_dir: str  # the run folder, absolute
    snapshot_version: int
    frozen: bool  # decoding with pinned weights ("Freeze weights")
    z: tuple[float, ...]  # (D,)
    slider_order: tuple[int, ...]
    projection: str  # the scatter's projection choice
    seed: int  # seed of the last "Random from prior"

    @property
    def z32(self) -> np.ndarray:
        return np.asarray(self.z, dtype=np.float32)  # (D,) what the decoder gets


def z_text(z: np.ndarray) -> list[str]:
    """float32 values as the shortest-enough decimal strings (9 significant digits)."""
    return [f"{v:.9g}" for v in np.asarray(z, dtype=np.float32).tolist()]


def url(base: str | None, view: ViewState) -> str:
    """The app's address that reopens this run in the sliders view at this z."""
    scheme, netloc, path, _, _ = urlsplit(base or "http://localhost:8501/")
    z = ",".join(z_text(view.z32))
    query = {RUN_PARAM: view.run_ref, APP_VIEW: SLIDERS_VIEW, Z_PARAM: z}
    return urlunsplit((scheme, netloc, path or "/", urlencode(query), ""))


def image_sha256(image: np.ndarray) -> str:
    """Digest of a decoded uint8 (H, W, C) image, to check a reproduction bit for bit."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def state_json(view: ViewState, image: np.ndarray) -> str:
    """The view as pretty JSON, with the shape and digest of the image it decodes to."""
    data = {
        "run": view.run_ref,
        "run_dir": view.run_dir,
        "view": SLIDERS_VIEW,
        "snapshot_version": view.snapshot_version,
        "frozen_weights": view.frozen,
        "z": [float(v) for v in z_text(view.z32)],
        "slider_order": list(view.slider_order),
        "projection": view.projection,
        "seed": view.seed,
        "image_shape": list(image.shape),
        "image_sha256": image_sha256(image),
    }
    return json.dumps(data, indent=1)


def python_snippet(view: ViewState) -> str:
    """Five lines that decode this z from the run folder's snapshot: (H, W, C) uint8."""
    z = ", ".join(z_text(view.z32))
    return (
        "import numpy as np\n"
        "from vae_core import checkpoint, latent, rundir\n"
        f"model, version = checkpoint.snapshot_model(rundir.RunDir({view.run_dir!r}))"
        f"  # the app: v{view.snapshot_version}\n"
        f"z = np.array([{z}], dtype=np.float32)  # (D,)\n"
        "image = latent.decode_latents(model, z)[0]  # (H, W, C) uint8, as the app decodes it\n"
    )


def z_npy(z: Sequence[float]) -> bytes:
    """np.save bytes of z as float32 (D,)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(z, dtype=np.float32))
    return buffer.getvalue()
