"""vae_core.publish: one self-contained HTML page per run, its payload, its refusals, and the
page's decoder against PyTorch in Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tools import devserver
from vae_core import cli
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import VAE, LatentVariableModel
from vae_core.publish import DEFAULT_POINTS, build_page, decoder_graph
from vae_core.rundir import RunDir

PAYLOAD = re.compile(rb'<script type="application/json" id="payload">(.*?)</script>', re.S)


def _train_config(model_config: ModelConfig, tmp_path: Path) -> TrainConfig:
    """A test set for the model's images: 28px shapes (grey), or a small RGB folder."""
    C, H, _ = model_config.image_shape
    if C == 1:
        return TrainConfig(dataset="shapes", dataset_options={"image_size": H, "num_samples": 512})
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(20):
        (folder / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (H, H, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "ab"[i % 2] / f"{i}.png")
    options = {"path": str(folder), "image_size": H, "channels": 3}
    return TrainConfig(dataset="folder", dataset_options=options, data_dir=str(tmp_path / "cache"))


def _snapshot_run(run: RunDir, model_config: ModelConfig, tmp_path: Path) -> VAE:
    """`run` holding a config and one snapshot of a fresh model (no training needed here)."""
    model = VAE(model_config).eval()
    run.write_config(model_config, _train_config(model_config, tmp_path))
    run.publish_snapshot(model, step=7)
    return model


def payload_of(html: bytes) -> dict:
    (data,) = PAYLOAD.findall(html)
    return json.loads(data)  # JSON reads the page's "<\/" as "</"


def floats(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), "<f4")


def test_the_page_holds_the_run_inline(tiny_model_config, tmp_run_dir, tmp_path):
    model = _snapshot_run(tmp_run_dir, tiny_model_config, tmp_path)
    page = build_page(tmp_run_dir, points=100)
    html, p = page.html, payload_of(page.html)
    C, H, W = tiny_model_config.image_shape
    D = tiny_model_config.latent_dim
    N = p["points"]
    assert N == min(100, N) and N >= 2  # the whole test split when it is smaller
    assert not re.search(rb"(src|href)=\"(https?:)?//|fetch\(|XMLHttpRequest|import\(", html)
    assert p["card"]["step"] == 7 and p["card"]["latent_dim"] == D
    assert p["image_shape"] == [C, H, W] and p["latent_dim"] == D
    assert floats(p["mu_b64"]).shape == (N * D,)
    assert floats(p["scatter"]["coords_b64"]).shape == (N * 2,)
    assert len(p["labels"]) == N and len(p["kl_per_dim"]) == D
    assert sorted(p["kl_order"]) == list(range(D)) and len(p["active"]) == D
    assert np.array(p["histograms"]["ranges"]).shape == (D, 2)
    assert np.array(p["histograms"]["q"]).shape == (D, 24)
    sprite = Image.open(io.BytesIO(base64.b64decode(p["sprite"]["png_b64"])))
    rows = -(-N // p["sprite"]["columns"])
    assert sprite.size == (min(N, p["sprite"]["columns"]) * W, rows * H)
    decoder = p["decoder"]
    decoder_params = sum(t.numel() for t in model.decoder.parameters())
    decoder_params += 2 if tiny_model_config.likelihood == "gaussian" else 0  # Clip's bounds
    assert decoder["num_floats"] == decoder_params
    assert floats(decoder["weights_b64"]).shape == (decoder_params,)
    assert {n["op"] for n in decoder["nodes"]} <= {"Gemm", "Relu", "Reshape", "ConvTranspose",
                                                    "Sigmoid", "Clip"}  # fmt: skip
    assert len(html) < 2_000_000


def test_cli_writes_the_page_and_says_its_size(tmp_run_dir, tmp_path, capsys):
    _snapshot_run(tmp_run_dir, ModelConfig(latent_dim=3, hidden_dim=16), tmp_path)
    out = tmp_path / "page.html"
    assert cli.main(["publish", "--run-dir", str(tmp_run_dir.path), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["bytes"] == out.stat().st_size and summary["live_decode"] is True
    assert summary["points"] == payload_of(out.read_bytes())["points"]
    assert DEFAULT_POINTS == 2000


def _refused(argv: list[str], capsys, *words: str) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's refusals exit from inside main
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


def test_bad_input_exits_2_in_one_line_and_leaves_nothing(tmp_run_dir, tmp_path, capsys):
    run = tmp_run_dir.path
    folder = tmp_path / "site"
    folder.mkdir()
    out = folder / "page.html"
    # a run with no snapshot yet
    tmp_run_dir.write_config(ModelConfig(latent_dim=3), _train_config(ModelConfig(), tmp_path))
    _refused(["publish", "--run-dir", str(run), "--out", str(out)], capsys, "no snapshot")
    # not a run at all
    _refused(["publish", "--run-dir", str(tmp_path), "--out", str(out)], capsys, "no config.json")
    _snapshot_run(tmp_run_dir, ModelConfig(latent_dim=3, hidden_dim=16), tmp_path)
    # an --out that cannot be written: its folder is missing, or is a file, or it is a folder
    for bad in (folder / "missing" / "p.html", tmp_run_dir.config_path / "p.html", folder):
        _refused(["publish", "--run-dir", str(run), "--out", str(bad)], capsys, "--out")
    # an existing --out without --force is left as it was; with --force it is replaced
    out.write_text("mine")
    _refused(["publish", "--run-dir", str(run), "--out", str(out)], capsys, "--force")
    assert out.read_text() == "mine"
    _refused(["publish", "--run-dir", str(run), "--out", str(out), "--points", "0"], capsys)
    assert sorted(p.name for p in folder.iterdir()) == ["page.html"]  # no temp file left
    assert cli.main(["publish", "--run-dir", str(run), "--out", str(out), "--force"]) == 0
    assert out.read_bytes().startswith(b"<!doctype html>")
    assert sorted(p.name for p in folder.iterdir()) == ["page.html"]


class _SoftplusDecoderVAE(LatentVariableModel):
    """A decoder with an op the page's interpreter lacks (Softplus)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ModelConfig(latent_dim=2, hidden_dim=8)
        self.net = nn.Linear(2, 784)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(z)).view(-1, 1, 28, 28)  # (B, 1, 28, 28)


def test_a_decoder_with_other_ops_is_published_without_live_decoding():
    graph, why = decoder_graph(_SoftplusDecoderVAE().eval(), version=1)
    assert graph is None
    assert why.startswith("live decoding is off") and "Softplus" in why and "\n" not in why


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = devserver.launch_chromium(p)
        yield browser
        browser.close()


def test_the_pages_decoder_matches_pytorch(tiny_model_config, tmp_run_dir, tmp_path, chromium):
    model = _snapshot_run(tmp_run_dir, tiny_model_config, tmp_path)
    out = tmp_path / "page.html"
    out.write_bytes(build_page(tmp_run_dir, points=50).html)
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_function("window.vaePage && window.vaePage.firstDecodeMs !== null")
    z = torch.randn(5, tiny_model_config.latent_dim, generator=torch.Generator().manual_seed(3))
    in_page = np.array([page.evaluate("z => window.vaePage.decode(z)", row.tolist()) for row in z])
    expected = model.decode_image(z).flatten(1).numpy()  # (5, C*H*W)
    assert in_page.shape == expected.shape
    assert np.abs(in_page - expected).max() < 1e-4
    assert errors == []
    page.close()
