from __future__ import annotations

import os
import threading

import pytest
import torch

import vae_core.train as train_module
from vae_core.config import ModelConfig, TrainConfig
from vae_core.objectives import ElboTerms
from vae_core.process import wait_for_state
from vae_core.rundir import RunDir, load_checkpoint
from vae_core.train import beta_at, default_num_threads, train

SHAPES = {"image_size": 28, "num_samples": 384}


def tiny_configs(**overrides) -> tuple[ModelConfig, TrainConfig]:
    model_config = ModelConfig(image_shape=(1, 28, 28), latent_dim=4, hidden_dim=64)
    settings = {
        "dataset": "shapes",
        "dataset_options": SHAPES,
        "epochs": 2,
        "batch_size": 64,
        "log_every": 2,
        "num_threads": 1,
    }
    return model_config, TrainConfig(**{**settings, **overrides})


def test_beta_warms_up_linearly_then_holds():
    assert [beta_at(s, 4.0, 100) for s in (0, 50, 100, 500)] == [0.0, 2.0, 4.0, 4.0]
    assert beta_at(0, 4.0, 0) == 4.0


def test_default_threads_leave_one_core_for_the_ui():
    assert default_num_threads() == max(1, (os.cpu_count() or 1) - 1)


def test_train_writes_a_complete_run_directory(tmp_path):
    run = RunDir(tmp_path / "run")
    summary = train(*tiny_configs(), run)
    rows = run.read_metrics()
    train_rows = [r for r in rows if r.get("split") == "train"]
    test_rows = [r for r in rows if r.get("split") == "test"]
    assert [r["epoch"] for r in test_rows] == [1, 2]
    assert summary["step"] == 2 * 6 and summary["epoch"] == 2
    assert summary["test_loss"] == pytest.approx(-test_rows[-1]["elbo"])
    assert train_rows[-1]["elbo"] > train_rows[0]["elbo"]  # it learns
    for row in train_rows + test_rows:
        assert len(row["kl_per_dim"]) == 4
        assert row["kl"] == pytest.approx(sum(row["kl_per_dim"]))
        assert row["elbo"] == pytest.approx(-(row["recon"] + row["kl"]))
    assert {"beta", "lr", "samples_per_s", "step"} <= set(train_rows[0])
    assert run.read_status().state == "finished"
    assert load_checkpoint(run.latest_checkpoint()).step == 12
    assert run.snapshot_version() >= 2


def test_same_seed_gives_the_same_numbers(tmp_path):
    first = train(*tiny_configs(), RunDir(tmp_path / "a"))
    second = train(*tiny_configs(), RunDir(tmp_path / "b"))
    assert first["test_loss"] == second["test_loss"]


def test_resume_continues_exactly_where_training_stopped(tmp_path):
    straight = RunDir(tmp_path / "straight")
    train(*tiny_configs(), straight)
    split = RunDir(tmp_path / "split")
    model_config, train_config = tiny_configs()
    train_config.epochs = 1
    train(model_config, train_config, split)
    train_config.epochs = 2
    summary = train(model_config, train_config, split, resume=True)
    assert summary["step"] == 12
    a = load_checkpoint(straight.latest_checkpoint()).model_state
    b = load_checkpoint(split.latest_checkpoint()).model_state
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    steps = [r["step"] for r in split.read_metrics() if r.get("split") == "train"]
    assert steps == sorted(steps) and steps[-1] == 12  # curves continue, no restart at 0


def test_nan_loss_skips_steps_then_marks_the_run_failed_keeping_good_weights(tmp_path, monkeypatch):
    real = train_module.elbo_terms
    calls = {"n": 0}

    def poisoned(model, x):
        calls["n"] += 1
        terms = real(model, x)
        if calls["n"] > 3:  # from the 4th step on, the loss is NaN
            return ElboTerms(terms.recon * float("nan"), terms.kl_per_dim)
        return terms

    monkeypatch.setattr(train_module, "elbo_terms", poisoned)
    run = RunDir(tmp_path / "run")
    thread = threading.Thread(target=train, args=(*tiny_configs(epochs=50), run))
    thread.start()
    try:
        wait_for_state(run, {"failed"}, timeout_s=60)
        status = run.read_status()
        assert (
            "became NaN/inf at step 3" in status.reason
            and "lower the learning rate" in status.reason
        )
        assert status.step == 3
        ckpt = load_checkpoint(run.latest_checkpoint())
        assert ckpt.step == 3
        assert all(torch.isfinite(v).all() for v in ckpt.model_state.values())
    finally:
        run.send_control("stop")
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert run.read_status().state == "finished"
