from __future__ import annotations

import json
import os
import time

import pytest
import torch

import vae_core.train as train_module
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.objectives import ElboTerms
from vae_core.run_errors import RunLocked
from vae_core.rundir import RunDir
from vae_core.train import RunInUse, TrainingDiverged, beta_at, default_num_threads, train

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
    assert beta_at(0, 4.0, 100, "constant") == 4.0


def test_cyclical_beta_ramps_over_the_first_part_of_each_period_then_holds():
    # Fu et al. 2019: period 100, ramp over the first half of it.
    betas = [beta_at(s, 2.0, 100, "cyclical", 0.5) for s in (0, 25, 50, 99, 100, 125, 250)]
    assert betas == [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 2.0]


def test_a_new_warm_up_length_restarts_the_warm_up_at_the_current_step():
    live = train_module.LiveSettings(beta=4.0, lr=1e-3, warmup_steps=0)
    assert live.beta_at(1000, 0.5) == 4.0
    live.update({"warmup_steps": 100}, step=1000)
    assert [live.beta_at(s, 0.5) for s in (1000, 1050, 1100)] == [0.0, 2.0, 4.0]
    live.update({"free_bits": 0.25}, step=1200)
    assert live.warmup_start == 1000 and live.free_bits == 0.25


def test_a_standalone_run_uses_every_core_by_default():
    assert default_num_threads() == os.cpu_count()


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
    assert {"beta", "lr", "samples_per_s", "step", "grad_norm_max", "bad_steps"} <= set(
        train_rows[0]
    )
    for row in train_rows:
        assert row["active_units"] == sum(k > 0.01 for k in row["kl_per_dim"])
        assert row["bad_steps"] == 0 and row["grad_norm_max"] >= row["grad_norm"] > 0
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


def test_resume_restores_the_schedules_exactly(tmp_path):
    """Cyclical beta, free bits and a warm-up restarted live all survive a stop + resume."""
    settings = {"beta_schedule": "cyclical", "warmup_steps": 12, "free_bits": 0.1, "epochs": 3}
    straight = RunDir(tmp_path / "straight")
    split = RunDir(tmp_path / "split")
    for run in (straight, split):
        run.path.mkdir()
        run.write_config(*tiny_configs(**settings))
        run.send_control(None, warmup_steps=10, free_bits=0.2)  # obeyed at the first step
    # spent_control_seq=0: what a launcher says when the change was sent after its launch
    train(*straight.read_config(), straight, resume=True, spent_control_seq=0)
    model_config, train_config = split.read_config()
    train_config.epochs = 1
    train(model_config, train_config, split, resume=True, spent_control_seq=0)
    train_config.epochs = 3
    train(model_config, train_config, split, resume=True)
    a = load_checkpoint(straight.latest_checkpoint())
    b = load_checkpoint(split.latest_checkpoint())
    assert b.step == 18 and b.extra["warmup_steps"] == 10 and b.extra["free_bits"] == 0.2
    for name in a.model_state:
        torch.testing.assert_close(a.model_state[name], b.model_state[name], rtol=0, atol=0)
    betas = {r["step"]: r["beta"] for r in straight.read_metrics() if r.get("split") == "train"}
    resumed = {r["step"]: r["beta"] for r in split.read_metrics() if r.get("split") == "train"}
    assert resumed == betas and len(set(betas.values())) > 1


def test_each_evaluation_logs_the_iwae_bound_beside_the_elbo(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1, iwae_k=20, iwae_n=16), run)
    (test,) = [r for r in run.read_metrics() if r.get("split") == "test"]
    assert (test["iwae_k"], test["iwae_n"]) == (20, 16)
    assert test["iwae"] > test["iwae_elbo"] and test["iwae_gap"] > 0
    assert test["iwae"] < 0 and test["iwae_seconds"] > 0


def poison_from_step(monkeypatch, first_bad: int) -> None:
    """From training step `first_bad` on, every loss is NaN (until monkeypatch undoes it);
    evaluations (eval mode) are left alone."""
    real, calls = train_module.terms_from_output, {"n": 0}

    def poisoned(model, x, out):
        calls["n"] += 1
        terms = real(model, x, out)
        if calls["n"] >= first_bad:
            return ElboTerms(terms.recon * float("nan"), terms.kl_per_dim)
        return terms

    monkeypatch.setattr(train_module, "terms_from_output", poisoned)


def test_nan_loss_fails_the_run_keeping_good_weights_and_resume_with_lower_lr_works(
    tmp_path, monkeypatch
):
    poison_from_step(monkeypatch, first_bad=4)
    run = RunDir(tmp_path / "run")
    with pytest.raises(TrainingDiverged, match="loss became NaN/inf at step 3"):
        train(*tiny_configs(epochs=5), run)
    status = run.read_status()
    assert status.state == "failed" and status.step == 3 and not status.is_live
    assert "resume with a lower learning rate (now 0.001)" in status.reason
    assert status.is_resumable
    ckpt = load_checkpoint(run.latest_checkpoint())
    assert ckpt.step == 3
    for path in run.checkpoints():
        weights = load_checkpoint(path).model_state
        assert all(torch.isfinite(v).all() for v in weights.values())

    monkeypatch.undo()  # the lower lr "fixes" it
    summary = train(*run.read_config(), run, resume=True, live_overrides={"lr": 1e-4})
    # 5 epochs of 6 batches, less the 10 skipped (bad) ones: no batch is trained twice.
    assert (summary["epoch"], summary["step"]) == (5, 5 * 6 - 10)
    assert run.read_status().state == "finished"
    assert run.read_status().lr == 1e-4
    rows = run.read_metrics()
    resumed = [r for r in rows if r.get("event") == "resume"]
    assert [r["step"] for r in resumed] == [3]
    control = [r for r in rows if r.get("event") == "control"]
    assert control[-1]["lr"] == 1e-4 and control[-1]["step"] == 3
    assert all(r["lr"] == 1e-4 for r in rows if r.get("split") == "train" and r["step"] > 3)


def test_a_fresh_train_in_a_used_folder_is_refused_and_changes_nothing(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1), run)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run.path.rglob("*")}
    with pytest.raises(RunInUse, match="already holds a run; pass --resume"):
        train(*tiny_configs(epochs=3), run)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run.path.rglob("*")}
    assert after == before


def test_a_second_trainer_is_refused_by_the_lock_before_it_writes(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config(*tiny_configs())
    with run.acquire_lock():
        run.write_status("running", step=7)
        before = run.status_path.read_bytes()
        with pytest.raises(RunLocked, match="being written by another trainer"):
            train(*tiny_configs(), run, resume=True)
        assert run.status_path.read_bytes() == before


def test_the_heartbeat_beats_while_the_dataset_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "HEARTBEAT_S", 0.1)
    real_load = train_module.load_dataset
    beats: list[float] = []
    run = RunDir(tmp_path / "run")

    def slow_load(*args, **kwargs):
        for _ in range(8):  # 0.8 s of "loading", in which the loop writes nothing
            time.sleep(0.1)
            beats.append(run.read_status().heartbeat)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(train_module, "load_dataset", slow_load)
    train(*tiny_configs(epochs=1), run)
    assert len(set(beats)) >= 4  # status.json kept moving without the loop


def test_a_stop_sent_before_the_first_step_is_obeyed(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config(*tiny_configs(epochs=50))
    run.send_control("stop")  # e.g. 0.3 s after Start, while torch still imports
    # The launcher (vae_core.process) tells the trainer what was spent before its launch.
    summary = train(*run.read_config(), run, resume=True, spent_control_seq=0)
    assert summary["stopped"] and summary["step"] == 0
    assert run.read_status().stopped_by_user


def test_a_control_with_unknown_keys_or_bad_values_is_refused_by_the_trainer(tmp_path):
    run = RunDir(tmp_path / "run")
    live = train_module.LiveSettings(beta=1.0, lr=1e-3)
    for n, control in enumerate(
        [
            {"command": None, "set": {"beta": float("nan")}},
            {"command": None, "set": {"lr": 50.0}},
            {"command": None, "set": {"epochs": 3}},
            {"command": "explode", "set": {}},
            {"command": "stop", "set": "beta=2"},
        ],
        start=1,
    ):
        run.path.mkdir(exist_ok=True)
        run.control_path.write_text(json.dumps({"seq": n, **control}))
        assert not train_module.apply_control(run, live)
    assert (live.beta, live.lr, live.stop) == (1.0, 1e-3, False)
    run.control_path.write_text(json.dumps({"seq": 9, "command": None, "set": {"beta": 2}}))
    assert train_module.apply_control(run, live) and live.beta == 2.0


def test_a_command_sent_while_no_trainer_ran_is_discarded_on_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    train(*tiny_configs(epochs=1), run)
    run.send_control("stop")  # to a finished run: no trainer will ever obey it
    summary = train(*tiny_configs(epochs=2), run, resume=True)  # as `train --resume` does
    assert not summary["stopped"] and summary["epoch"] == 2
    assert run.read_status().state == "finished" and not run.read_status().stopped_by_user


def test_a_live_change_that_makes_the_cyclical_period_too_short_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    live = train_module.LiveSettings(beta=1.0, lr=1e-3, beta_schedule="cyclical", warmup_steps=100)
    run.send_control(None, warmup_steps=2)  # fine alone; too short for the schedule in force
    assert not train_module.apply_control(run, live)
    assert live.warmup_steps == 100
    with pytest.raises(ValueError, match="at least 10 steps, got 1"):
        run.send_control(None, beta_schedule="cyclical", warmup_steps=1)
    with pytest.raises(ValueError, match="at least 10 steps, got 1"):
        TrainConfig(beta_schedule="cyclical", warmup_steps=1)
    assert TrainConfig(beta_schedule="cyclical", warmup_steps=10).warmup_steps == 10


def test_building_a_dataset_cache_shows_its_progress_in_status(tmp_path, monkeypatch):
    """The loader reports (done, total) while it caches; the heartbeat publishes it, and it
    is gone once training starts."""
    monkeypatch.setattr(train_module, "HEARTBEAT_S", 0.05)
    real, seen = train_module.load_dataset, []
    run = RunDir(tmp_path / "run")

    def caching_loader(*args, progress=None, **kwargs):
        progress(300, 1200)
        time.sleep(0.3)  # a few heartbeats
        seen.append(json.loads(run.status_path.read_text()).get("caching"))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "load_dataset", caching_loader)
    train(*tiny_configs(epochs=1), run)
    assert seen[0] == [300, 1200]
    assert run.read_status().caching == ()
