"""Your own VAE: importing classes vae_core does not know, the contract, fine-tuning, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vae_core.checkpoint import load_run_model
from vae_core.cli import main
from vae_core.config import ModelImportError, TrainConfig
from vae_core.fork import fork_run
from vae_core.import_run import card_from_flags, import_model
from vae_core.imported import build_inner
from vae_core.rundir import RunDir
from vae_core.status import IMPORTED_REASON
from vae_core.train import train

SHAPES_FLAGS = ["--dataset", "shapes", "--image-size", "28", "--num-samples", "512"]


def _import(tmp_path: Path, cls: str, *flags: str) -> tuple[int, RunDir]:
    run_dir = tmp_path / cls
    code = main(
        [
            "import",
            "--run-dir",
            str(run_dir),
            "--model",
            f"foreign_vaes:{cls}",
            *SHAPES_FLAGS,
            *flags,
        ]
    )
    return code, RunDir(run_dir)


@pytest.mark.parametrize(
    ("cls", "latent_shape"),
    [("GroupNormVAE", [8]), ("NormalVAE", [6]), ("SpatialVAE", [2, 7, 7])],
)
def test_foreign_vae_imports_with_the_latent_shape_found_by_the_dry_run(
    tmp_path, user_vaes, capsys, cls, latent_shape
) -> None:
    code, run = _import(tmp_path, cls)
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["latent_shape"] == latent_shape and summary["trainable"] is True
    model_config, train_config = run.read_config()
    assert model_config.card.source == f"foreign_vaes:{cls}"
    assert model_config.latent_dim == math.prod(latent_shape)
    assert train_config.dataset == "shapes"
    assert run.read_status().state == "finished" and run.read_status().reason == IMPORTED_REASON
    assert run.read_status().is_resumable  # Resume in the app fine-tunes it
    assert run.read_status().display_state == "imported"
    model = load_run_model(run)
    mu, logvar = model.encode(torch.rand(3, 1, 28, 28))
    assert mu.shape == logvar.shape == (3, math.prod(latent_shape))
    assert model.decode_image(mu).shape == (3, 1, 28, 28)


def test_imported_weights_are_the_users_and_are_hashed(tmp_path, user_vaes) -> None:
    card, likelihood = card_from_flags("foreign_vaes:GroupNormVAE", None, '{"zdim": 5}')
    original = build_inner(card)
    weights = tmp_path / "mine.safetensors"
    save_file(original.state_dict(), weights)
    config = TrainConfig(dataset="shapes", dataset_options={"image_size": 28, "num_samples": 512})
    path, model_config = import_model(tmp_path / "run", card, config, likelihood, weights)
    assert len(model_config.card.weights_sha256) == 64
    weights.unlink()  # the run keeps its own copy
    model = load_run_model(RunDir(path))
    z = torch.randn(4, 5)
    torch.testing.assert_close(model.decode(z), original.decode(z))


def test_a_normal_posterior_gives_its_loc_and_log_variance(tmp_path, user_vaes) -> None:
    _, run = _import(tmp_path, "NormalVAE")
    model = load_run_model(run)
    x = torch.rand(2, 1, 28, 28)
    q = model.inner.encode(x)
    mu, logvar = model.encode(x)
    torch.testing.assert_close(mu, q.loc)
    torch.testing.assert_close(logvar, 2 * torch.log(q.scale))


@pytest.mark.slow
def test_imported_model_fine_tunes_then_forks(tmp_path, user_vaes) -> None:
    _, run = _import(tmp_path, "SpatialVAE", "--batch-size", "128")
    before = load_run_model(run).state_dict()
    model_config, train_config = run.read_config()
    summary = train(model_config, train_config, run, resume=True)
    assert summary["step"] == 4 and math.isfinite(summary["test"]["elbo"])
    after = load_run_model(run).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    fork = fork_run(run, tmp_path / "fork", beta=0.5, epochs=2)
    assert fork.read_config()[0].card == model_config.card
    assert fork.read_parent()["step"] == 4


def test_a_frozen_model_stays_explore_only(tmp_path, user_vaes, capsys) -> None:
    code, run = _import(tmp_path, "FrozenVAE")
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip())["trainable"] is False
    assert main(["train", "--resume", "--run-dir", str(run.path)]) == 2
    assert "can be explored, not trained: every weight is frozen" in capsys.readouterr().err


def test_sample_and_eval_work_on_an_imported_run(tmp_path, user_vaes, capsys) -> None:
    _, run = _import(tmp_path, "GroupNormVAE")
    out = tmp_path / "grid.png"
    assert main(["sample", "--run-dir", str(run.path), "--n", "4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    assert main(["eval", "--run-dir", str(run.path)]) == 0
    assert math.isfinite(json.loads(capsys.readouterr().out.strip())["test_loss"])


def test_a_card_naming_a_callable_that_is_no_module_is_never_called(tmp_path) -> None:
    marker = tmp_path / "ran"
    card, _ = card_from_flags("subprocess:Popen", None, json.dumps({"args": f"touch {marker}"}))
    with pytest.raises(ModelImportError, match=r"not a torch\.nn\.Module class"):
        build_inner(card)
    assert not marker.exists()


def _bad_weights(tmp_path: Path, name: str, state: dict[str, torch.Tensor]) -> str:
    path = tmp_path / name
    save_file(state, path)
    return str(path)


def _pickle(tmp_path: Path) -> str:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, path)
    return str(path)


BAD_INPUTS = {
    "missing module": (["--model", "no_such_module:VAE"], "cannot import module 'no_such_module'"),
    "missing class": (["--model", "foreign_vaes:Nope"], "is not a torch.nn.Module class"),
    "bad kwargs": (
        ["--model", "foreign_vaes:GroupNormVAE", "--kwargs", '{"depth": 3}'],
        "does not construct with kwargs",
    ),
    "kwargs not JSON": (
        ["--model", "foreign_vaes:GroupNormVAE", "--kwargs", "{zdim"],
        "not valid JSON",
    ),
    "encode returns one tensor": (
        ["--model", "foreign_vaes:OneTensorEncoder"],
        "it must return (mu, logvar) tensors or a torch.distributions.Normal",
    ),
    "decode of the wrong size": (
        ["--model", "foreign_vaes:WrongSizeDecoder"],
        "decode(z) gave (8, 1, 14, 14) but the dataset's images are (8, 1, 28, 28)",
    ),
    "latent too big": (
        ["--model", "foreign_vaes:SpatialVAE", "--kwargs", '{"channels": 1400}'],
        "the latent (1400, 7, 7) has 68,600 values; at most 65,536",
    ),
    "range reversed": (["--model", "foreign_vaes:NormalVAE", "--input-range", "1,0"], "LOW < HIGH"),
    "range that does not fit": (
        [
            "--model",
            "foreign_vaes:NormalVAE",
            "--likelihood",
            "gaussian",
            "--input-range",
            "0,0.001",
        ],
        "outside the input range 0,0.001",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_creates_nothing(
    tmp_path, user_vaes, capsys, case
) -> None:
    flags, expected = BAD_INPUTS[case]
    run_dir = tmp_path / "run"
    code = main(["import", "--run-dir", str(run_dir), *flags, *SHAPES_FLAGS])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_bad_weights_exit_2_naming_the_problem(tmp_path, user_vaes, capsys) -> None:
    good = build_inner(card_from_flags("foreign_vaes:GroupNormVAE", None, '{"zdim": 4}')[0])
    state = good.state_dict()
    nan = {
        k: torch.full_like(v, float("nan")) if k == "to_stats.bias" else v for k, v in state.items()
    }
    renamed = {k.replace("stem", "trunk"): v for k, v in state.items()}
    cases = {
        _pickle(tmp_path): "is a pickle (.pt), which is never loaded here",
        _bad_weights(tmp_path, "nan.safetensors", nan): "NaN or inf values in ['to_stats.bias']",
        _bad_weights(tmp_path, "renamed.safetensors", renamed): "missing stem.0.bias",
        _bad_weights(tmp_path, "other.safetensors", {"x": torch.zeros(2)}): "unexpected x",
    }
    for weights, expected in cases.items():
        run_dir = tmp_path / "run"
        flags = ["--model", "foreign_vaes:GroupNormVAE", "--kwargs", '{"zdim": 4}']
        code = main(
            ["import", "--run-dir", str(run_dir), *flags, "--weights", weights, *SHAPES_FLAGS]
        )
        err = capsys.readouterr().err
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
        assert not run_dir.exists()


def test_run_folder_is_never_reused(tmp_path, user_vaes, capsys) -> None:
    assert _import(tmp_path, "NormalVAE")[0] == 0
    assert _import(tmp_path, "NormalVAE")[0] == 2 and "already exists" in capsys.readouterr().err


def _tiny_autoencoder_kl(folder: Path) -> torch.nn.Module:
    """A diffusers AutoencoderKL with random weights (8 and 16 channels, 4 latent channels),
    saved as diffusers saves one: config.json + diffusion_pytorch_model.safetensors."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=32,
    )
    vae.save_pretrained(folder)
    return vae.eval()


def _rgb_folder(folder: Path, n: int = 24) -> Path:
    from PIL import Image

    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.slow
def test_diffusers_autoencoder_imports_through_the_adapter(tmp_path, capsys) -> None:
    vae = _tiny_autoencoder_kl(tmp_path / "vae")
    images = _rgb_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    dataset = ["--dataset", "folder", "--folder", str(images), "--image-size", "32"]
    code = main(
        ["import", "--run-dir", str(run_dir), "--diffusers", str(tmp_path / "vae"), *dataset]
    )
    assert code == 0, capsys.readouterr().err
    model_config, _ = RunDir(run_dir).read_config()
    card = model_config.card
    assert card.source == "diffusers" and card.latent_shape == (4, 16, 16)
    assert card.input_range == (-1.0, 1.0) and card.scaling_factor == pytest.approx(0.18215)
    assert model_config.likelihood == "gaussian"
    model = load_run_model(RunDir(run_dir))
    z = torch.randn(2, 4 * 16 * 16)  # the explorer's z: the diffusion model's scaled latent
    expected = (vae.decode(z.view(2, 4, 16, 16) / card.scaling_factor).sample + 1) / 2
    torch.testing.assert_close(model.decode(z), expected)
    x = torch.rand(2, 3, 32, 32)
    mean = vae.encode(2 * x - 1).latent_dist.mean
    torch.testing.assert_close(model.encode(x)[0], card.scaling_factor * mean.flatten(1))


def test_diffusers_folder_without_config_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "vae").mkdir()
    code = main(
        ["import", "--run-dir", str(tmp_path / "run"), "--diffusers", str(tmp_path / "vae")]
    )
    assert code == 2 and "is not a diffusers AutoencoderKL folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
