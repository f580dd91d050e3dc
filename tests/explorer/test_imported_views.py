"""Every view on VAEs the project did not build: vector and spatial latents, a diffusers
AutoencoderKL through its adapter."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
import torch

from explorer import state
from vae_core.config import TrainConfig
from vae_core.import_run import card_from_flags, import_model

USER_VAES = Path(__file__).resolve().parents[1] / "user_vaes"
SHAPES = TrainConfig(dataset="shapes", dataset_options={"image_size": 28, "num_samples": 512})
VIEWS = [
    "Training",
    "Latent sliders",
    "Scatter",
    "Interpolation",
    "Inspect image",
    "Disentanglement",
    "Prior samples",
    "Compare",
]


def _diffusers_run(root: Path) -> None:
    from diffusers import AutoencoderKL
    from PIL import Image

    AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=32,
    ).save_pretrained(root / "sd-vae")
    folder = root / "images"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(24):
        pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    card, likelihood = card_from_flags(None, str(root / "sd-vae"))
    data = TrainConfig(dataset="folder", dataset_options={"path": str(folder), "image_size": 32})
    import_model(root / "runs" / "diffusers", card, data, likelihood)


@pytest.fixture(scope="module")
def imported_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A runs root with three imported models: vector, torch Normal, spatial, diffusers."""
    root = tmp_path_factory.mktemp("imported")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(USER_VAES))
        for cls in ("GroupNormVAE", "NormalVAE", "SpatialVAE"):
            card, likelihood = card_from_flags(f"foreign_vaes:{cls}", None)
            import_model(root / "runs" / cls, card, SHAPES, likelihood)
        _diffusers_run(root)
    sys.modules.pop("foreign_vaes", None)
    yield root / "runs"


@pytest.fixture
def imported_runs(imported_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(USER_VAES))
    monkeypatch.setenv("VAE_EXPLORER_RUNS", str(imported_root))
    return imported_root


@pytest.mark.slow
@pytest.mark.parametrize("run", ["GroupNormVAE", "NormalVAE", "SpatialVAE", "diffusers"])
def test_every_view_opens_on_an_imported_model(app, imported_runs, run) -> None:
    for view in VIEWS:
        at = app(run, view)
        assert not at.exception, (view, at.exception)
        assert not at.error, (view, [e.value for e in at.error])


def test_an_imported_decoder_gets_live_sliders_through_onnx(app, imported_runs, components_of):
    """GroupNorm, SiLU, transposed convolutions: exported to ONNX, decoded in the browser."""
    import json

    import onnx

    at = app("GroupNormVAE", "Latent sliders")
    assert not at.exception
    assert not any("Live drag is off" in c.value for c in at.caption)
    (live,) = components_of(at, "live_sliders")
    model = next(a.bytes for a in live.proto.special_args if a.key == "model")
    assert json.loads(live.proto.json_args)["decoder"]["latent_dim"] == 8
    ops = {node.op_type for node in onnx.load_from_string(model).graph.node}
    assert {"ConvTranspose", "Sigmoid"} <= ops  # the whole decoder, to display values


def _decoded_url(at) -> str:
    return next(
        img.url
        for e in at.get("image")
        for img in e.proto.imgs
        if img.caption.startswith("decoded on the server")
    )


@pytest.mark.parametrize("run", ["SpatialVAE", "diffusers"])
def test_principal_direction_sliders_move_the_decoded_image(app, imported_runs, run) -> None:
    at = app(run, "Latent sliders")
    assert not at.exception
    labels = [s.label for s in at.slider]
    assert any(
        label.startswith("direction 1 · ") and "of the variance" in label for label in labels
    )
    assert any(label == "channel 0 offset" for label in labels)
    before = _decoded_url(at)
    key = state.spatial_slider_key("direction", 0)
    next(s for s in at.slider if s.key == key).set_value(2.5).run()
    moved = _decoded_url(at)
    assert moved != before
    key = state.spatial_slider_key("channel", 1)
    next(s for s in at.slider if s.key == key).set_value(-2.0).run()
    assert _decoded_url(at) not in (before, moved)
    assert len(at.session_state[state.SLIDERS_Z]) == (98 if run == "SpatialVAE" else 1024)


def test_a_missing_class_costs_the_views_one_line_and_keeps_the_curves(
    app, imported_root, monkeypatch
) -> None:
    monkeypatch.setenv("VAE_EXPLORER_RUNS", str(imported_root))  # user_vaes not importable
    monkeypatch.delitem(sys.modules, "foreign_vaes", raising=False)
    st.cache_resource.clear()  # no model left over from the tests above
    st.cache_data.clear()
    at = app("GroupNormVAE", "Latent sliders")
    assert not at.exception
    assert any("cannot import module" in e.value and "PYTHONPATH" in e.value for e in at.error)
    assert not app("GroupNormVAE", "Training").exception


def _import_form(at, where: str, name: str) -> None:
    next(t for t in at.text_input if t.label.startswith("MODULE:CLASS")).input(where)
    next(t for t in at.text_input if t.label == "Run name").input(name)
    next(s for s in at.selectbox if s.key == "sidebar.import_dataset").set_value("shapes")
    next(s for s in at.selectbox if s.key == "sidebar.import_size").set_value(28)
    next(b for b in at.button if b.label == "Import").click().run(timeout=300)


@pytest.mark.slow
def test_open_your_own_model_form_imports_through_the_cli_command(
    app, empty_runs_root, user_vaes
) -> None:
    at = app(**{state.SIDEBAR_IMPORT_OPEN: True})  # the "Open your own model" expander, open
    _import_form(at, "foreign_vaes:NormalVAE", "mine")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (empty_runs_root / "mine" / "snapshot.safetensors").is_file()
    assert any("Imported mine" in s.value for s in at.success)
    _import_form(at, "foreign_vaes:OneTensorEncoder", "broken")
    assert any(e.value.startswith("Not imported:") and "distributions" in e.value for e in at.error)
    assert not (empty_runs_root / "broken").exists()


def test_a_remote_browser_gets_no_import_form_and_is_refused(tmp_path) -> None:
    from explorer import access, runs

    remote = access.policy("0.0.0.0", {access.REMOTE_TRAIN_ENV: "1"})
    choices = runs.ImportChoices(name="x", model="foreign_vaes:NormalVAE")
    with pytest.raises(PermissionError, match="only when the app is served on loopback"):
        runs.import_run(choices, tmp_path, remote)
    assert not (tmp_path / "x").exists()
