"""vae_core.runfolders: remove / rename a run, never a live one; a fork finds a renamed parent."""

from __future__ import annotations

import os

import pytest

from vae_core.config import ModelConfig, TrainConfig
from vae_core.run_errors import RunLocked
from vae_core.rundir import RunDir, list_runs
from vae_core.runfolders import check_run_name, find_parent, remove_run, rename_run


def _run(path) -> RunDir:
    run = RunDir(path)
    run.write_config(ModelConfig(latent_dim=2, hidden_dim=8), TrainConfig(dataset="shapes"))
    run.write_status("finished", step=12)
    return run


def _fork(parent: RunDir, path) -> RunDir:
    """A fork's folder as vae_core.fork writes it (the link is what matters here)."""
    fork = RunDir(path)
    link = {"run": str(parent.path), "step": 12, "id": parent.run_id()}
    fork.write_config(*parent.read_config(), parent=link)
    return fork


def test_every_run_gets_an_id_that_a_trainer_rewrite_keeps(tmp_path):
    run = _run(tmp_path / "a")
    run_id = run.run_id()
    run.write_config(*run.read_config())  # what each trainer start does
    assert run_id and run.run_id() == run_id != _run(tmp_path / "b").run_id()


def test_rename_moves_the_folder_and_its_fork_still_finds_it(tmp_path):
    parent = _run(tmp_path / "parent")
    fork = _fork(parent, tmp_path / "fork")
    renamed = rename_run(parent, "fmnist-mlp-z10-b1-1")
    assert renamed.path == tmp_path / "fmnist-mlp-z10-b1-1" and renamed.exists()
    assert not parent.path.exists()
    assert find_parent(fork) is not None and find_parent(fork).path == renamed.path
    # The fork's own files were never written: only the id links them.
    assert fork.read_parent()["run"] == str(tmp_path / "parent")
    renamed_fork = rename_run(fork, "the-fork")
    assert find_parent(renamed_fork).path == renamed.path


def test_a_fork_of_a_removed_parent_has_no_parent_and_keeps_its_files(tmp_path):
    parent = _run(tmp_path / "parent")
    fork = _fork(parent, tmp_path / "fork")
    remove_run(parent)
    assert not parent.path.exists() and find_parent(fork) is None and fork.exists()
    assert [r.path.name for r in list_runs(tmp_path)] == ["fork"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".removing")]


def test_a_live_run_is_neither_renamed_nor_removed(tmp_path):
    run = _run(tmp_path / "live")
    with run.acquire_lock():  # as a trainer holds it for its whole life
        for action in (lambda: rename_run(run, "other"), lambda: remove_run(run)):
            with pytest.raises(RunLocked, match="is training"):
                action()
    # Launched and importing torch: "starting" with a live pid, the lock not yet taken.
    run.write_status("starting", pid=os.getpid())
    with pytest.raises(RunLocked, match="stop it first"):
        remove_run(run)
    assert run.exists() and not (tmp_path / "other").exists()
    assert not run.is_locked()  # the check let go of the lock it took


def test_rename_refuses_a_taken_or_bad_name_and_remove_only_deletes_runs(tmp_path):
    run, other = _run(tmp_path / "a"), _run(tmp_path / "b")
    with pytest.raises(FileExistsError, match="already exists"):
        rename_run(run, "b")
    for bad in ("", "../x", ".hidden", "a/b", "x" * 81, "-rf"):
        with pytest.raises(ValueError):
            check_run_name(bad)
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        remove_run(RunDir(tmp_path / "notes"))
    assert run.exists() and other.exists() and (tmp_path / "notes").is_dir()


def test_a_fork_recorded_before_ids_follows_its_path(tmp_path):
    parent = _run(tmp_path / "parent")
    fork = RunDir(tmp_path / "fork")
    fork.write_config(*parent.read_config(), parent={"run": str(parent.path), "step": 3})
    assert find_parent(fork).path == parent.path
