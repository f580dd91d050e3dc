"""vae_core.catalog: where idx files are looked up, without importing torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from vae_core import catalog

TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


# Where idx files lie, relative to (data_dir, $VAE_EXPLORER_DATA, system dir): each layout
# is a list of (base, subfolder, file names).
# (files, found with data_dir passed, found without; fashion-mnist also has the system dir)
LAYOUTS = {
    "nothing": ([], False, False),
    "flat in data_dir": ([("data_dir", "", (*TRAIN, *TEST))], True, False),
    "flat gz in data_dir": (
        [("data_dir", "", tuple(f"{n}.gz" for n in (*TRAIN, *TEST)))],
        True,
        False,
    ),
    "named folder in data_dir": ([("data_dir", "{name}", (*TRAIN, *TEST))], True, False),
    "torchvision raw under env": ([("env", "{tv}/raw", (*TRAIN, *TEST))], True, True),
    "named folder under env, gz": (
        [("env", "{name}", tuple(f"{n}.gz" for n in (*TRAIN, *TEST)))],
        True,
        True,
    ),
    "test split missing": ([("data_dir", "{name}", TRAIN)], False, False),
    "labels missing": ([("data_dir", "{name}", (TRAIN[0], *TEST))], False, False),
    "splits in two folders": (
        [("data_dir", "{name}", TRAIN), ("env", "{name}", TEST)],
        True,
        False,
    ),
    "pair split across folders": (
        [("data_dir", "{name}", (TRAIN[0], *TEST)), ("env", "{tv}/raw", (TRAIN[1],))],
        False,
        False,
    ),
    "system dir": ([("system", "", (*TRAIN, *TEST))], "fmnist", "fmnist"),
    "idx name is a folder": (
        [("data_dir", "", (*TRAIN, *TEST[:1])), ("data_dir", TEST[1], ("x",))],
        False,
        False,
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("pass_data_dir", [True, False])
def test_idx_files_are_found_where_a_user_or_torchvision_puts_them(
    layout: str, name: str, pass_data_dir: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bases = {"data_dir": tmp_path / "mine", "env": tmp_path / "env", "system": tmp_path / "sys"}
    monkeypatch.setenv(catalog.DATA_DIR_ENV, str(bases["env"]))
    monkeypatch.setattr(catalog, "SYSTEM_FASHION_MNIST_DIR", bases["system"])
    tv = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name]
    files, with_dir, without_dir = LAYOUTS[layout]
    for base, sub, names in files:
        _touch(bases[base] / sub.format(name=name, tv=tv), *names)
    expected = with_dir if pass_data_dir else without_dir
    if expected == "fmnist":
        expected = name == "fashion-mnist"
    data_dir = bases["data_dir"] if pass_data_dir else None
    assert catalog.is_available_offline(name, data_dir) == expected


def test_generated_and_folder_datasets_are_always_offline_and_unknown_ones_refused() -> None:
    assert catalog.is_available_offline("shapes") and catalog.is_available_offline("folder")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        catalog.is_available_offline("cifar")
