"""The CLI as a user runs it: a real `python -m vae_core` process per command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vae_core.rundir import RunDir

SHAPES = ["--dataset", "shapes", "--image-size", "28", "--latent-dim", "3", "--hidden-dim", "32"]


def vae_core(
    *args: str, check: bool = True, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "vae_core", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> RunDir:
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    vae_core(
        "train",
        *SHAPES,
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--threads",
        "1",
        "--run-dir",
        str(run_dir),
        timeout=600,  # an epoch of 20,000 images: minutes on a loaded 2-core machine
    )
    return RunDir(run_dir)


def test_train_ends_with_a_json_summary(trained_run):
    model_config, train_config = trained_run.read_config()
    assert model_config.latent_dim == 3 and train_config.dataset == "shapes"
    assert trained_run.read_status().state == "finished"
    rows = [r for r in trained_run.read_metrics() if r.get("split") == "test"]
    assert len(rows) == 1 and rows[0]["epoch"] == 1


def test_train_prints_test_loss_and_throughput(tmp_path):
    result = vae_core(
        "train", *SHAPES, "--epochs", "1", "--threads", "1", "--run-dir", str(tmp_path / "r")
    )
    summary = last_json(result.stdout)
    assert summary["test_loss"] > 0 and summary["samples_per_s"] > 0
    assert summary["step"] == 20000 // 128 + 1


def test_eval_reports_the_test_loss_and_an_iwae_bound(trained_run):
    result = vae_core(
        "eval", "--run-dir", str(trained_run.path), "--iwae-k", "50", "--iwae-n", "20"
    )
    out = last_json(result.stdout)
    assert out["test_loss"] == pytest.approx(out["recon"] + out["kl"])
    assert 0 < out["nll_iwae"] and out["iwae_k"] == 50 and out["iwae_n"] == 20


def test_sample_writes_a_png_grid(trained_run, tmp_path):
    out = tmp_path / "grid.png"
    vae_core("sample", "--run-dir", str(trained_run.path), "--n", "9", "--out", str(out))
    image = np.asarray(Image.open(out))
    assert image.shape[:2] == (2 + 3 * 30, 2 + 3 * 30)  # 3x3 grid of 28px with 2px padding


def test_control_set_writes_a_sequenced_command(trained_run):
    with trained_run.acquire_lock():  # a trainer holds the run
        result = vae_core("control", str(trained_run.path), "set", "beta=4", "lr=3e-4")
    control = trained_run.read_control()
    assert control["set"] == {"beta": 4.0, "lr": 3e-4} and control["command"] is None
    # The answer says what the change replaces: the settings in force, as the app sees them.
    _, cfg = trained_run.read_config()
    assert last_json(result.stdout)["in_force"] == {
        "beta": cfg.beta,
        "lr": cfg.lr,
        "free_bits": cfg.free_bits,
        "beta_schedule": cfg.beta_schedule,
        "warmup_steps": cfg.warmup_steps,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", *SHAPES, "--lr", "-1", "--run-dir", "x"], "lr must be a finite number in"),
        (["train", *SHAPES, "--beta", "nan", "--run-dir", "x"], "must be a finite number, got nan"),
        (["train", *SHAPES, "--lr", "inf", "--run-dir", "x"], "must be a finite number, got inf"),
        (
            ["train", "--dataset", "shapes", "--latent-dim", "0", "--run-dir", "x"],
            "must be a positive integer, got 0",
        ),
        (["sample", "--run-dir", "x", "--n", "0"], "must be in 1..4096, got 0"),
        (["eval", "--run-dir", "x", "--iwae-n", "-5"], "must be a positive integer, got -5"),
        (["control", "/nonexistent/run", "pause"], "not a run directory"),
        (["eval", "--checkpoint", "/nonexistent/model.pt"], "not a run directory"),
        (["gradvar", "--run-dir", "x", "--samples", "0"], "must be a positive integer, got 0"),
    ],
)
def test_bad_input_exits_2_with_a_one_line_error(args, message):
    result = vae_core(*args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_eval_refuses_a_pickle_checkpoint(trained_run, tmp_path):
    evil = trained_run.checkpoint_dir / "evil.pt"
    evil.write_bytes(b"\x80\x04K\x01.")
    result = vae_core("eval", "--checkpoint", str(evil), check=False)
    evil.unlink()
    assert result.returncode == 2 and "only .safetensors checkpoints are accepted" in result.stderr


def test_control_set_refuses_non_finite_and_out_of_range_values(trained_run):
    before = trained_run.control_path.read_bytes() if trained_run.control_path.exists() else None
    for change in ("beta=nan", "lr=inf", "epochs=3"):  # ranges: test_rundir
        with trained_run.acquire_lock():
            result = vae_core("control", str(trained_run.path), "set", change, check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    after = trained_run.control_path.read_bytes() if trained_run.control_path.exists() else None
    assert after == before


def test_train_into_an_existing_run_is_refused_and_changes_nothing(trained_run):
    before = {p: p.stat().st_mtime_ns for p in trained_run.path.rglob("*")}
    result = vae_core("train", *SHAPES, "--run-dir", str(trained_run.path), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {trained_run.path} already holds a run; pass --resume to continue it, "
        "or pick a new --run-dir"
    ]
    assert {p: p.stat().st_mtime_ns for p in trained_run.path.rglob("*")} == before


def test_train_from_a_config_file_trains_that_configuration(trained_run, tmp_path):
    # Another run's config.json is a --config file: the same run again, in a new folder.
    run = RunDir(tmp_path / "again")
    vae_core("train", "--config", str(trained_run.config_path), "--run-dir", str(run.path))
    assert run.read_config() == trained_run.read_config()
    assert run.read_status().state == "finished" and run.latest_checkpoint() is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "3"], "error: --config holds the whole configuration; drop --epochs"),
        (["--resume"], "error: --config starts a new run; --resume continues one: give one"),
    ],
)
def test_config_beside_other_flags_is_refused(trained_run, tmp_path, extra, message):
    config = str(trained_run.config_path)
    run_dir = str(tmp_path / "new")
    result = vae_core("train", "--config", config, *extra, "--run-dir", run_dir, check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "new").exists()


def test_a_config_that_is_not_one_gives_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    for text, message in (
        ("{", "is not JSON"),
        ('{"model": {}}', "needs 'model' and 'train' sections"),
        ('{"model": {}, "train": {"dataset": "shapes", "lr": -1}}', "lr must be"),
    ):
        bad.write_text(text)
        result = vae_core(
            "train", "--config", str(bad), "--run-dir", str(tmp_path / "r"), check=False
        )
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_resume_never_makes_a_new_run(tmp_path):
    result = vae_core("train", "--resume", "--run-dir", str(tmp_path / "none"), check=False)
    assert result.returncode == 2 and "no config.json" in result.stderr
    assert not (tmp_path / "none").exists()


def test_train_into_a_file_gives_one_line(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    for extra in ([], ["--resume"]):
        result = vae_core("train", *SHAPES, *extra, "--run-dir", str(target), check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert target.read_text() == "mine"


def test_eval_and_sample_use_the_snapshot_of_a_run_killed_before_its_first_checkpoint(
    trained_run, tmp_path
):
    run = RunDir(tmp_path / "young")
    shutil.copytree(trained_run.path, run.path, ignore=shutil.ignore_patterns("checkpoints"))
    result = vae_core("eval", "--run-dir", str(run.path))
    assert last_json(result.stdout)["test_loss"] > 0
    vae_core("sample", "--run-dir", str(run.path), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert Image.open(tmp_path / "s.png").size[0] > 28


def test_a_damaged_run_gives_one_line_from_every_command(trained_run, tmp_path):
    run = RunDir(tmp_path / "damaged")
    shutil.copytree(trained_run.path, run.path)
    run.config_path.write_bytes(b"\xff{not json")
    for args in (
        ["eval", "--run-dir", str(run.path)],
        ["sample", "--run-dir", str(run.path), "--out", str(tmp_path / "x.png")],
        ["train", "--resume", "--run-dir", str(run.path)],
    ):
        result = vae_core(*args, check=False)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: run damaged is damaged: config.json: is not UTF-8 text "
            "(fix or remove that file, or move the run folder away)"
        ]


def test_gradvar_prints_the_variance_of_each_estimator_and_the_ratios(trained_run):
    result = vae_core(
        "gradvar", "--run-dir", str(trained_run.path), "--samples", "30", "--batch-size", "16"
    )
    out = last_json(result.stdout)
    assert out["samples"] == 30 and out["batch_size"] == 16 and out["kl_included"] is True
    assert 0 < out["var_reparam"] < out["var_score"]
    assert out["ratio_score"] == pytest.approx(out["var_score"] / out["var_reparam"])
    assert out["ratio_score_baseline"] == pytest.approx(
        out["var_score_baseline"] / out["var_reparam"]
    )


def test_gradvar_needs_two_samples_and_a_run(trained_run, tmp_path):
    for args, message in (
        (["--run-dir", str(trained_run.path), "--samples", "1"], "samples must be >= 2"),
        (["--run-dir", str(tmp_path / "nothing")], "nothing"),
    ):
        result = vae_core("gradvar", *args, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_history_lists_points_as_json_lines(trained_run):
    lines = vae_core("history", "--run-dir", str(trained_run.path)).stdout.strip().splitlines()
    points, summary = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])
    assert points[0]["step"] == 0 and summary["points"] == len(points) >= 2
    assert summary["disk_bytes"] > 0 and all(p["test_elbo"] < 0 for p in points)


def test_fork_trains_a_branch_and_refuses_bad_input_creating_nothing(trained_run, tmp_path):
    new = tmp_path / "fork"
    out = last_json(
        vae_core(
            *("fork", "--from", str(trained_run.path), "--step", "0", "--run-dir", str(new)),
            *("--beta", "0", "--epochs", "1", "--seed", "3"),
        ).stdout
    )
    assert out["epoch"] == 1 and out["step"] > 0
    parent = json.loads((new / "config.json").read_text())["parent"]
    assert parent == {"run": str(trained_run.path), "step": 0, "id": trained_run.run_id()}
    for args, message in (
        (["--step", "3"], "step 3 is in neither the history nor the checkpoints"),
        (["--lr", "nan"], "must be a finite number"),
    ):
        result = vae_core(
            "fork",
            "--from",
            str(trained_run.path),
            "--run-dir",
            str(tmp_path / "x"),
            *args,
            check=False,
        )
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    taken = vae_core("fork", "--from", str(trained_run.path), "--run-dir", str(new), check=False)
    assert taken.returncode == 2 and "already exists" in taken.stderr
    not_a_run = vae_core(
        "fork", "--from", str(tmp_path), "--run-dir", str(tmp_path / "y"), check=False
    )
    assert not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr


def test_eval_disentanglement_adds_mig_and_the_factor_by_dim_mi_matrix(trained_run):
    from vae_core.shapes import FACTOR_NAMES

    out = last_json(
        vae_core("eval", "--run-dir", str(trained_run.path), "--disentanglement").stdout
    )
    assert 0.0 <= out["mig"] <= 1.0 and "test_loss" in out
    assert out["mi_factors"] == list(FACTOR_NAMES)
    matrix = out["mi_matrix"]  # factors x dims, nested lists
    assert len(matrix) == len(FACTOR_NAMES) and all(len(row) == 3 for row in matrix)
    assert all(value >= 0.0 for row in matrix for value in row)
    assert set(out["mig_per_factor"]) <= set(FACTOR_NAMES)


def test_eval_disentanglement_refuses_a_dataset_without_factors(tmp_path):
    from vae_core.config import ModelConfig, TrainConfig

    run = RunDir(tmp_path / "fashion").create()  # a config is all the refusal needs
    run.write_config(ModelConfig(latent_dim=2, hidden_dim=8), TrainConfig(dataset="fashion-mnist"))
    result = vae_core("eval", "--run-dir", str(run.path), "--disentanglement", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "needs a dataset with ground-truth factors" in result.stderr
    assert "'fashion-mnist' has none" in result.stderr


def test_rename_keeps_a_forks_link_and_rm_refuses_a_live_run(trained_run, tmp_path):
    from vae_core.fork import fork_run
    from vae_core.runfolders import find_parent

    parent = RunDir(tmp_path / "parent")
    shutil.copytree(trained_run.path, parent.path, ignore=shutil.ignore_patterns("lock"))
    fork = fork_run(parent, tmp_path / "fork", step=0)
    out = last_json(vae_core("rename", str(parent.path), "shapes-mlp-z3-b1-1").stdout)
    renamed = RunDir(tmp_path / "shapes-mlp-z3-b1-1")
    assert out["run_dir"] == str(renamed.path) and renamed.exists() and not parent.path.exists()
    assert find_parent(fork).path == renamed.path
    with renamed.acquire_lock():  # a trainer writing it
        for args in (("rm", str(renamed.path)), ("rename", str(renamed.path), "x")):
            refused = vae_core(*args, check=False)
            assert refused.returncode == 2 and "is training" in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1
    bad = vae_core("rename", str(renamed.path), "../escape", check=False)
    assert bad.returncode == 2 and "letters, digits" in bad.stderr
    assert last_json(vae_core("rm", str(renamed.path)).stdout)["removed"] == str(renamed.path)
    assert not renamed.path.exists() and fork.exists() and find_parent(fork) is None
    not_a_run = vae_core("rm", str(tmp_path), check=False)
    assert not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr
    assert fork.exists()


def one_line_refusal(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden-dim", "200000000"], "--hidden-dim: must be in 1..8192"),
        (["--threads", "100000"], "--threads: must be in 1..256"),
        (["--dist-timeout", "1e300"], "dist_timeout_s must be in 1..86400 seconds"),
        (["--seed", "9" * 40], "--seed: must be in 0..4294967295"),
        (["--seed", "-1"], "--seed: must be in 0..4294967295"),
        (
            ["--beta-schedule", "cyclical", "--warmup-steps", "2"],
            "period (warmup_steps) of at least 10",
        ),
        (["--beta-schedule", "cyclical", "--warmup-steps", "1"], "of at least 10 steps, got 1"),
    ],
)
def test_unbounded_train_inputs_are_refused_and_leave_nothing(tmp_path, args, message):
    run = tmp_path / "run"
    one_line_refusal(
        vae_core("train", *SHAPES[:4], *args, "--run-dir", str(run), check=False), message
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "--run-dir", "x", "--n", "100000000"], "--n: must be in 1..4096"),
        (["eval", "--run-dir", "x", "--iwae-k", "100000000"], "--iwae-k: must be in 1..100000"),
        (["sample", "--run-dir", "x", "--seed", "9" * 30], "--seed: must be in 0..4294967295"),
        (["gradvar", "--run-dir", "x", "--seed", "-3"], "--seed: must be in 0..4294967295"),
    ],
)
def test_unbounded_sample_and_eval_inputs_say_the_bound(args, message):
    one_line_refusal(vae_core(*args, check=False), message)


def test_a_refused_start_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    result = vae_core(
        "train",
        *SHAPES,
        "--precision",
        "fp16",
        "--device",
        "cpu",
        "--run-dir",
        str(run),
        check=False,
    )
    one_line_refusal(result, "--precision fp16 needs a CUDA GPU")
    assert not run.exists()


@pytest.mark.parametrize("below", ["checkpoints/new", "history/new", "some/deeper/folder"])
def test_train_or_fork_inside_another_run_is_refused(trained_run, tmp_path, below):
    before = sorted(trained_run.path.rglob("*"))
    target = trained_run.path / below
    message = f"is inside the run {trained_run.path}; pick a folder outside any run"
    one_line_refusal(vae_core("train", *SHAPES, "--run-dir", str(target), check=False), message)
    fork = vae_core(
        "fork",
        "--from",
        str(trained_run.path),
        "--run-dir",
        str(target),
        "--epochs",
        "3",
        check=False,
    )
    one_line_refusal(fork, message)
    assert sorted(trained_run.path.rglob("*")) == before


def test_fork_under_torchrun_is_refused(trained_run, tmp_path):
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    result = vae_core(
        "fork",
        "--from",
        str(trained_run.path),
        "--run-dir",
        str(tmp_path / "f"),
        check=False,
        env=env,
    )
    one_line_refusal(result, "fork runs as one process: run it without torchrun")
    assert not (tmp_path / "f").exists()


def test_control_says_when_no_trainer_is_listening(trained_run):
    before = trained_run.control_path.read_bytes() if trained_run.control_path.exists() else None
    result = vae_core("control", str(trained_run.path), "stop", check=False)
    one_line_refusal(result, f"no trainer is running {trained_run.path} (it is finished)")
    after = trained_run.control_path.read_bytes() if trained_run.control_path.exists() else None
    assert after == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latent-dim", "5"], "--latent-dim cannot change on resume (this run's is 3)"),
        (["--dataset", "mnist"], "--dataset cannot change on resume (this run's is 'shapes')"),
        (["--batch-size", "64"], "--batch-size cannot change on resume (this run's is 256)"),
        (["--epochs", "1"], "has trained 1 of its 1 epochs: give --epochs above 1"),
    ],
)
def test_resume_refuses_flags_it_cannot_apply(trained_run, args, message):
    before = {p: p.stat().st_mtime_ns for p in trained_run.path.rglob("*")}
    result = vae_core("train", "--resume", "--run-dir", str(trained_run.path), *args, check=False)
    one_line_refusal(result, message)
    assert {p: p.stat().st_mtime_ns for p in trained_run.path.rglob("*")} == before


def test_resume_with_epochs_trains_to_the_new_total_and_drops_a_stale_stop(trained_run, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run.path, run.path, ignore=shutil.ignore_patterns("lock"))
    run.send_control("stop")  # sent while no trainer ran (the API; `control` refuses it)
    same = [*SHAPES, "--threads", "1"]  # the run's own values: accepted beside --resume
    result = vae_core(
        "train", "--resume", "--run-dir", str(run.path), *same, "--epochs", "2", timeout=300
    )
    summary = last_json(result.stdout)
    assert summary["epoch"] == 2 and not summary["stopped"]
    assert run.read_config()[1].epochs == 2


def test_a_full_disk_is_one_line_naming_the_file_and_the_space(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {disk}"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("no user namespaces here to mount a small disk")
    train_cmd = [sys.executable, "-m", "vae_core", "train", *SHAPES, "--num-samples", "512"]
    train_cmd += ["--epochs", "1", "--threads", "1", "--run-dir", str(disk / "run")]
    # 700 KB: the snapshot and a history point fit, the first checkpoint (with Adam's
    # state) does not; the status is printed from inside, before the disk goes away
    script = (
        f"mount -t tmpfs -o size=700k tmpfs {disk} && "
        f"{' '.join(train_cmd)} 2>{tmp_path / 'err'}; echo rc=$?; cat {disk / 'run'}/status.json"
    )
    result = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    err = (tmp_path / "err").read_text().splitlines()
    lines = [line for line in err if not line.startswith("INFO")]
    assert "rc=2" in result.stdout, result.stdout + result.stderr
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"error: disk full: writing {disk / 'run' / 'checkpoints'}/step-")
    assert "needed about" in lines[0] and "KB free" in lines[0]
    status = json.loads(result.stdout.split("rc=2", 1)[1])
    assert status["state"] == "failed" and status["reason"].startswith("disk full: writing")
