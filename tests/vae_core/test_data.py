"""Tests for the dataset registry: idx loading and download, shapes, folders, offline errors."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import logging
import os
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision.datasets import MNIST, FashionMNIST

from vae_core import catalog, data, memmap_cache, shapes
from vae_core.catalog import (
    DATASETS,
    MAX_SHAPES_IMAGES,
    SYSTEM_FASHION_MNIST_DIR,
    default_data_dir,
    is_available_offline,
)
from vae_core.data import DatasetInfo, DatasetUnavailable, ImageDataset, dataset_info, load_dataset

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 20, "test": 10}


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default data dir at an empty temp folder so no test sees the user's cache."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("VAE_EXPLORER_DATA", str(home))
    return home


# ---- helpers ----


def _idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: 0, 0, type 0x08 (uint8), ndim, big-endian uint32 sizes, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fake_mnist(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        split: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))
        for split, n in SPLIT_SIZES.items()
    }


def _write_idx_files(folder: Path, arrays: dict, compress: bool = True) -> dict[str, str]:
    """Write the four idx files into folder; returns file name -> md5."""
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for split, (images, labels) in arrays.items():
        for stem, array in zip(IDX_NAMES[split], (images, labels), strict=True):
            raw = _idx_bytes(array)
            name = f"{stem}.gz" if compress else stem
            payload = gzip.compress(raw) if compress else raw
            (folder / name).write_bytes(payload)
            md5s[name] = hashlib.md5(payload).hexdigest()
    return md5s


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    """A local HTTP server holding fake MNIST files; yields (base_url, arrays, md5s)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "served"
    arrays = _fake_mnist(seed=1)
    md5s = _write_idx_files(served, arrays)
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", arrays, md5s
    finally:
        server.shutdown()
        server.server_close()


def _closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _save_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


# ---- registry and ImageDataset ----


def test_unknown_dataset_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="cifar") as err:
        load_dataset("cifar")
    assert all(name in str(err.value) for name in DATASETS)
    with pytest.raises(ValueError, match="fashion-mnist"):
        dataset_info("nope")


def test_bad_split_option_name_and_option_values_raise_value_error() -> None:
    with pytest.raises(ValueError, match="valid"):
        load_dataset("shapes", "valid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("mnist", image_size=28)
    with pytest.raises(ValueError, match="48"):
        dataset_info("shapes", image_size=48)
    with pytest.raises(ValueError, match="-5"):
        load_dataset("shapes", num_samples=-5)
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 2"):
        dataset_info("folder", path=".", channels=2)
    with pytest.raises(ValueError, match="path"):
        dataset_info("folder")


def test_default_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAE_EXPLORER_DATA", "/somewhere/data")
    assert default_data_dir() == Path("/somewhere/data")
    monkeypatch.delenv("VAE_EXPLORER_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "vae-explorer" / "data"


def test_batch_converts_only_the_requested_rows_to_unit_floats() -> None:
    images = torch.tensor([0, 51, 255, 102], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    info = DatasetInfo("toy", (1, 2, 2), ("a",))
    ds = ImageDataset(images=images, labels=torch.zeros(4, dtype=torch.int64), info=info)
    assert len(ds) == 4 and ds.images.is_contiguous()
    by_slice = ds.batch(slice(1, 3))
    assert by_slice.dtype == torch.float32 and by_slice.shape == (2, 1, 2, 2)
    assert by_slice[:, 0, 0, 0].tolist() == [pytest.approx(0.2), 1.0]
    by_index = ds.batch(torch.tensor([3, 0]), device="cpu")
    assert by_index[:, 0, 0, 0].tolist() == [pytest.approx(0.4), 0.0]
    assert ds.images.dtype == torch.uint8  # the stored split stays uint8


def test_image_dataset_rejects_float_images_and_mismatched_labels() -> None:
    info = DatasetInfo("toy", (1, 2, 2), ("a",))
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images=torch.zeros(3, 1, 2, 2), labels=torch.zeros(3), info=info)
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(2), info)


# ---- shapes ----


def test_shapes_splits_are_deterministic_and_carry_factors() -> None:
    train = load_dataset("shapes", "train", image_size=28, num_samples=400, seed=5)
    again = load_dataset("shapes", "train", image_size=28, num_samples=400, seed=5)
    test = load_dataset("shapes", "test", image_size=28, num_samples=400, seed=5)
    assert train.images.shape == (400, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (100, 1, 28, 28)  # test gets a quarter of num_samples
    assert torch.equal(train.images, again.images)
    assert not torch.equal(train.factor_idx[:100], test.factor_idx)
    assert train.factors.shape == (400, 5) and train.factor_idx.dtype == torch.int64
    assert torch.equal(train.labels, train.factor_idx[:, 0])
    assert torch.equal(train.labels.float(), train.factors[:, 0])
    assert train.info.class_names == ("square", "ellipse", "heart")
    assert train.info.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert train.info.likelihood == "bernoulli"


def test_shapes_defaults_give_twenty_thousand_images_at_64() -> None:
    info = dataset_info("shapes")
    assert info.image_shape == (1, 64, 64)
    train = load_dataset("shapes")
    assert train.images.shape == (20_000, 1, 64, 64)


def test_shapes_count_over_the_limit_is_refused_before_generating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MAX_SHAPES_IMAGES == 200_000  # the UI's widget max

    def no_generating(*args: object, **kwargs: object) -> None:
        raise AssertionError("generated before the options were checked")

    monkeypatch.setattr(shapes, "generate_shapes", no_generating)
    for call in (load_dataset, dataset_info):
        with pytest.raises(ValueError, match=r"at most 200,000 .* got 200,001") as err:
            call("shapes", num_samples=MAX_SHAPES_IMAGES + 1)
        assert "fewer" in str(err.value)
        for bad in (0, -3, True, 2.5):
            with pytest.raises(ValueError, match="positive int"):
                call("shapes", num_samples=bad)
    assert dataset_info("shapes", num_samples=MAX_SHAPES_IMAGES).image_shape == (1, 64, 64)


def test_shapes_limit_is_a_module_constant_tests_can_lower(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(data, "MAX_SHAPES_IMAGES", 40)
    assert len(load_dataset("shapes", image_size=28, num_samples=40)) == 40
    with pytest.raises(ValueError, match="at most 40"):
        load_dataset("shapes", "test", image_size=28, num_samples=41)


def test_shapes_and_folder_count_as_available_offline() -> None:
    assert is_available_offline("shapes")
    assert is_available_offline("folder")


# ---- mnist / fashion-mnist from local files ----


def test_mnist_loads_from_flat_gzipped_idx_files_in_data_dir(tmp_path: Path) -> None:
    arrays = _fake_mnist()
    _write_idx_files(tmp_path / "mine" / "mnist", arrays)
    assert is_available_offline("mnist", tmp_path / "mine")
    for split in ("train", "test"):
        ds = load_dataset("mnist", split, tmp_path / "mine")
        images, labels = arrays[split]
        assert ds.images.shape == (SPLIT_SIZES[split], 1, 28, 28)
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert np.array_equal(ds.images[:, 0].numpy(), images)
        assert np.array_equal(ds.labels.numpy(), labels)
    assert ds.info == dataset_info("mnist")
    assert ds.info.class_names[0] == "0 - zero" and len(ds.info.class_names) == 10


def test_mnist_loads_from_torchvision_layout_under_the_env_data_dir(
    _isolated_data_home: Path,
) -> None:
    arrays = _fake_mnist(seed=4)
    _write_idx_files(_isolated_data_home / "MNIST" / "raw", arrays, compress=False)
    ds = load_dataset("mnist", "test")
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["test"][0])


def test_a_corrupt_idx_file_is_reported_not_crashed_on(tmp_path: Path) -> None:
    _write_idx_files(tmp_path / "mnist", _fake_mnist())
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x03"))
    with pytest.raises(DatasetUnavailable, match=r"t10k-images-idx3-ubyte\.gz"):
        load_dataset("mnist", "test", tmp_path)


@pytest.mark.skipif(
    not SYSTEM_FASHION_MNIST_DIR.is_dir(),
    reason="needs Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist",
)
def test_fashion_mnist_loads_from_the_debian_package() -> None:
    assert is_available_offline("fashion-mnist")
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.labels[:3].tolist() == [9, 0, 0]  # ankle boot, t-shirt, t-shirt
    assert test.labels[0] == 9
    assert train.labels.bincount().tolist() == [6000] * 10
    assert train.info.class_names[9] == "Ankle boot"
    assert train.batch(slice(0, 2)).max() == 1.0


# ---- mnist download and the offline message ----


def test_mnist_downloads_through_torchvision_from_a_mirror(
    tmp_path: Path, loopback_mirror: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, arrays, md5s = loopback_mirror
    monkeypatch.setattr(MNIST, "mirrors", [url])
    monkeypatch.setattr(MNIST, "resources", list(md5s.items()))
    target = tmp_path / "downloads"
    assert not is_available_offline("mnist", target)
    ds = load_dataset("mnist", "train", target)
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["train"][0])
    assert np.array_equal(ds.labels.numpy(), arrays["train"][1])
    assert (target / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert is_available_offline("mnist", target)  # the next load needs no network


@pytest.mark.parametrize("name, cls", [("mnist", MNIST), ("fashion-mnist", FashionMNIST)])
def test_offline_and_missing_raises_one_message_naming_both_remedies(
    name: str, cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cls, "mirrors", [_closed_port_url()])
    monkeypatch.setattr(catalog, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "not-installed")
    assert not is_available_offline(name, tmp_path / "empty")
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, "train", tmp_path / "empty")
    message = str(err.value)
    assert "\n" not in message
    assert "could not be downloaded" in message and "refused" in message
    assert str(tmp_path / "empty" / name) in message
    assert "VAE_EXPLORER_DATA" in message and "connect to the internet" in message
    assert ("apt-get install dataset-fashion-mnist" in message) == (name == "fashion-mnist")


# ---- folder ----


def test_folder_labels_come_from_subfolders_and_pixels_from_a_centre_crop(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _save_image(root / "cats" / "a.png", (200, 10, 10))
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)  # the centre square of a 60x20 image
    wide[:, 40:] = (0, 0, 255)
    (root / "dogs").mkdir()
    Image.fromarray(wide).save(root / "dogs" / "wide.png")
    ds = load_dataset("folder", "train", tmp_path / "data", path=root, image_size=28)
    assert ds.info == DatasetInfo("folder", (3, 28, 28), ("cats", "dogs"), likelihood="gaussian")
    assert ds.images.shape == (2, 3, 28, 28) and ds.labels.tolist() == [0, 1]
    assert ds.images[0, :, 5, 5].tolist() == [200, 10, 10]
    # Bicubic lets the cropped-off red and blue bleed into the outermost columns.
    centre = ds.images[1, :, :, 2:-2]
    assert (centre[1] == 255).all() and (centre[0] == 0).all() and (centre[2] == 0).all()
    assert ds.skipped == 0


def test_folder_in_greyscale_uses_one_channel_and_bernoulli(tmp_path: Path) -> None:
    _save_image(tmp_path / "pics" / "grey.png", (100, 100, 100))
    ds = load_dataset("folder", "test", tmp_path, path=tmp_path / "pics", channels=1)
    assert ds.images.shape == (1, 1, 64, 64)
    assert (ds.images == 100).all()
    assert ds.info.class_names == ("images",) and ds.labels.tolist() == [0]
    assert ds.info.likelihood == "bernoulli"


def test_folder_splits_every_tenth_file_into_test(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    for i in range(25):
        _save_image(root / f"{i:02d}.png", (i * 10, 0, 0))
    train = load_dataset("folder", "train", tmp_path, path=root, image_size=32)
    test = load_dataset("folder", "test", tmp_path, path=root, image_size=32)
    assert len(train) == 23 and len(test) == 2
    assert test.images[:, 0, 0, 0].tolist() == [90, 190]  # files 09 and 19
    both = torch.cat([train.images[:, 0, 0, 0], test.images[:, 0, 0, 0]])
    assert sorted(both.tolist()) == [i * 10 for i in range(25)]


def test_small_folder_puts_every_image_in_both_splits(tmp_path: Path) -> None:
    for i in range(3):
        _save_image(tmp_path / "pics" / f"{i}.jpg", (0, 0, 250))
    train = load_dataset("folder", "train", tmp_path, path=tmp_path / "pics")
    test = load_dataset("folder", "test", tmp_path, path=tmp_path / "pics")
    assert len(train) == len(test) == 3


def test_folder_skips_undecodable_files_and_counts_them(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _save_image(root / "ok.png", (1, 2, 3))
    (root / "broken.jpg").write_bytes(b"not an image")
    (root / "notes.txt").write_text("ignored, not an image suffix")
    ds = load_dataset("folder", "train", tmp_path, path=root)
    assert len(ds) == 1 and ds.skipped == 1
    (root / "ok.png").unlink()
    with pytest.raises(DatasetUnavailable, match="could be read"):
        load_dataset("folder", "train", tmp_path, path=root)


def test_folder_files_in_root_beside_subfolders_get_the_empty_class(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _save_image(root / "loose.png", (9, 9, 9))
    _save_image(root / "birds" / "deep" / "b.png", (8, 8, 8))
    assert dataset_info("folder", path=root).class_names == ("", "birds")
    ds = load_dataset("folder", "train", tmp_path, path=root)
    assert ds.labels.tolist() == [1, 0]  # birds/deep/b.png sorts before loose.png


def test_folder_cache_is_a_raw_uint8_entry_reused_and_invalidated_by_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    _save_image(root / "a.png", (10, 20, 30))
    load_dataset("folder", "train", tmp_path, path=root, image_size=32)
    cache_dir = tmp_path / "folder-cache"
    (cache,) = cache_dir.iterdir()  # one entry, no temp leftovers
    assert sorted(p.name for p in cache.iterdir()) == [
        "file_index.npy",
        "images.u8",
        "labels.npy",
        "meta.json",
    ]
    raw = np.fromfile(cache / "images.u8", dtype=np.uint8)
    assert raw.shape == (3 * 32 * 32,)
    assert raw.reshape(3, 32, 32)[:, 0, 0].tolist() == [10, 20, 30]
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["shape"] == [1, 3, 32, 32] and meta["complete"] is True

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded although the cache is current")

    with monkeypatch.context() as m:
        m.setattr(data, "_decode_image", no_decoding)
        cached = load_dataset("folder", "train", tmp_path, path=root, image_size=32)
    assert cached.images[0, :, 0, 0].tolist() == [10, 20, 30]

    _save_image(root / "a.png", (50, 60, 70), size=(41, 30))  # new size -> new stat
    edited = load_dataset("folder", "train", tmp_path, path=root, image_size=32)
    assert edited.images[0, :, 0, 0].tolist() == [50, 60, 70]
    assert len(list(cache_dir.iterdir())) == 2


def test_missing_or_empty_folder_raises_dataset_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        load_dataset("folder", path=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="no images"):
        dataset_info("folder", path=tmp_path / "empty")


# ---- folder limits ----


def _huge_png_header(path: Path, width: int, height: int) -> None:
    """A 1x1 PNG whose header claims width x height: only decoding would find it is tiny."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)  # IHDR data starts after sig, length, type
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))  # CRC of type + data
    path.write_bytes(bytes(raw))


def test_folder_with_more_images_than_the_limit_stops_scanning_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    for folder in ("a", "b", "c", "d"):
        for i in range(5):
            _save_image(root / folder / f"{i}.png", (i, 0, 0), size=(2, 2))
    monkeypatch.setattr(data, "MAX_FOLDER_IMAGES", 5)
    seen: list[str] = []
    scan = data._folder_entries

    def counting(root: Path, folder: Path) -> Iterator[os.DirEntry[str]]:
        for entry in scan(root, folder):
            seen.append(entry.name)
            yield entry

    monkeypatch.setattr(data, "_folder_entries", counting)
    with pytest.raises(ValueError) as err:
        load_dataset("folder", "train", tmp_path / "data", path=root)
    assert str(err.value) == (
        f"the folder {root} holds more than 5 images; point at a smaller folder or a subfolder"
    )
    files_seen = [name for name in seen if name.endswith(".png")]
    assert len(files_seen) == 6  # one past the limit, not all 20
    assert not (tmp_path / "data" / "folder-cache").exists()  # nothing decoded or cached
    with pytest.raises(ValueError, match="more than 5 images"):
        dataset_info("folder", path=root)
    assert dataset_info("folder", path=root / "a").class_names == ("images",)  # exactly 5


def test_folder_nested_deeper_than_the_limit_is_refused_naming_the_folder(
    tmp_path: Path,
) -> None:
    root = tmp_path / "pics"
    _save_image(root / "a" / "b" / "c" / "deepest-allowed.png", (1, 1, 1))
    assert data.MAX_FOLDER_DEPTH == 3
    assert len(load_dataset("folder", "train", tmp_path, path=root)) == 1
    _save_image(root / "a" / "b" / "c" / "d" / "too-deep.png", (2, 2, 2))
    with pytest.raises(ValueError) as err:
        load_dataset("folder", "train", tmp_path, path=root)
    message = str(err.value)
    assert "more than 3 levels deep (a/b/c/d)" in message
    assert "point at a subfolder" in message
    assert len(load_dataset("folder", "train", tmp_path, path=root / "a")) == 2  # one level down


def test_folder_scan_does_not_follow_symlinked_folders(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _save_image(root / "cats" / "a.png", (1, 2, 3))
    _save_image(tmp_path / "elsewhere" / "b.png", (4, 5, 6))
    (root / "outside").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "cats" / "loop").symlink_to(root, target_is_directory=True)
    ds = load_dataset("folder", "train", tmp_path, path=root)
    assert len(ds) == 1 and ds.info.class_names == ("cats",)


def test_image_whose_header_is_over_the_pixel_limit_is_skipped_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert data.MAX_IMAGE_PIXELS == 40_000_000 < Image.MAX_IMAGE_PIXELS
    root = tmp_path / "pics"
    _save_image(root / "ok.png", (7, 8, 9))
    _huge_png_header(root / "huge.png", 8000, 8000)  # 64 Mpx: over ours, under Pillow's
    with Image.open(root / "huge.png") as img:
        assert img.size == (8000, 8000)
    decoded: list[str] = []
    load = ImageFile.ImageFile.load

    def spying_load(self: ImageFile.ImageFile) -> object:
        decoded.append(Path(self.filename).name)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spying_load)
    with caplog.at_level(logging.WARNING, logger="vae_core.data"):
        ds = load_dataset("folder", "train", tmp_path, path=root)
    assert len(ds) == 1 and ds.skipped == 1
    assert ds.images[0, :, 0, 0].tolist() == [7, 8, 9]
    assert set(decoded) == {"ok.png"}
    assert "8000 x 8000 pixels is over the limit of 40,000,000 pixels" in caplog.text
    # Control: above the limit's reach the same file is decoded (and fails as truncated).
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 8000 * 8000)
    decoded.clear()
    assert load_dataset("folder", "train", tmp_path / "control", path=root).skipped == 1
    assert set(decoded) == {"ok.png", "huge.png"}


def test_pixel_limit_is_a_module_constant_tests_can_lower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    _save_image(root / "wide.png", (1, 1, 1), size=(40, 30))  # 1200 px
    _save_image(root / "small.png", (2, 2, 2), size=(30, 30))  # 900 px
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 1200)
    assert len(load_dataset("folder", "train", tmp_path / "at", path=root)) == 2
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 1199)
    ds = load_dataset("folder", "train", tmp_path / "below", path=root)
    assert len(ds) == 1 and ds.skipped == 1 and ds.images[0, 0, 0, 0] == 2


# ---- the disk cache: layout, splits, batches, interruption, progress ----


def _noise_folder(root: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` 28 x 28 random-noise PNGs split over two class folders; sorted like the loader.

    Noise makes any row mix-up or byte shift visible, where flat colours could hide it."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = root / ("cats" if i % 3 else "dogs") / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return sorted(paths, key=lambda p: p.relative_to(root).as_posix())


def _expected_split(root: Path, files: list[Path], split: str) -> tuple[torch.Tensor, list[int]]:
    """What the split must hold: the decoded pixels and labels of its files, in file order."""
    chosen = [i for i in range(len(files)) if (i % 10 == 9) == (split == "test")]
    pixels = np.stack([data._decode_image(files[i], 28, 3) for i in chosen])
    labels = [0 if files[i].parent.name == "cats" else 1 for i in chosen]
    return torch.from_numpy(pixels), labels


def _mapping_of(address: int) -> tuple[str, int] | None:
    """(file path, resident kB) of this process's memory mapping that holds `address`."""
    smaps = Path("/proc/self/smaps")
    if not smaps.exists():
        pytest.skip("needs /proc/self/smaps (Linux)")
    found = None
    for line in smaps.read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            found = (head[-1] if len(head) > 5 else "", lo <= address < hi)
        elif head[0] == "Rss:" and found is not None and found[1]:
            return found[0], int(head[1])
    return None


def test_folder_cache_round_trip_equals_decoded_pixels_and_splits_are_file_views(
    tmp_path: Path,
) -> None:
    root = tmp_path / "pics"
    files = _noise_folder(root, 25)
    for split in ("train", "test"):
        ds = load_dataset("folder", split, tmp_path / "data", path=root, image_size=28)
        pixels, labels = _expected_split(root, files, split)
        assert ds.on_disk and ds.images.shape == pixels.shape == (len(labels), 3, 28, 28)
        assert torch.equal(ds.images, pixels) and ds.labels.tolist() == labels
        # No copy: the split's tensor is a view of the cache file, mapped into memory.
        path, _ = _mapping_of(ds.images.data_ptr())
        assert path.endswith("images.u8")
    (entry,) = (tmp_path / "data" / "folder-cache").iterdir()
    assert np.load(entry / "file_index.npy").tolist()[-2:] == [9, 19]  # test rows last


def test_disk_batches_equal_in_memory_batches_and_leave_the_map_untouched(
    tmp_path: Path,
) -> None:
    root = tmp_path / "pics"
    _noise_folder(root, 40)
    ds = load_dataset("folder", "train", tmp_path, path=root, image_size=28)
    other = load_dataset("folder", "train", tmp_path, path=root, image_size=28)  # own mapping
    copy = ImageDataset(images=other.images.clone(), labels=other.labels.clone(), info=ds.info)
    assert not copy.on_disk and len(ds) == len(copy) == 36
    indices = [
        torch.randperm(36, generator=torch.Generator().manual_seed(0)),
        torch.tensor([5, 5, -1, 0, 35, 6, 7, 8]),  # repeats, negatives, runs
        torch.tensor([], dtype=torch.int64),
        slice(3, 20),
        slice(30, 99),
        slice(None, None, 7),
        [2, 1],
        np.array([4, 9], dtype=np.int32),
    ]
    for index in indices:
        assert torch.equal(ds.batch(index), copy.batch(index)), index
    _, resident_kb = _mapping_of(ds.images.data_ptr())
    assert resident_kb == 0  # batches came through pread, not the mapping
    mask = ds.labels == 1
    assert torch.equal(ds.batch(mask), copy.batch(mask))  # masks fall back to the mapping
    with pytest.raises(IndexError):
        ds.batch(torch.tensor([36]))


@pytest.mark.parametrize("damage", ["no meta.json", "truncated images", "half-written meta"])
def test_interrupted_folder_cache_is_detected_and_rebuilt(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    files = _noise_folder(root, 12)
    first = load_dataset("folder", "train", tmp_path, path=root, image_size=28)
    expected = first.images.clone()
    (entry,) = (tmp_path / "folder-cache").iterdir()
    size = (entry / "images.u8").stat().st_size
    if damage == "no meta.json":
        (entry / "meta.json").unlink()
    elif damage == "truncated images":
        os.truncate(entry / "images.u8", size - 100)
    else:
        (entry / "meta.json").write_text('{"version": 1, "sha')
    decoded: list[Path] = []
    decode = data._decode_image
    monkeypatch.setattr(data, "_decode_image", lambda p, *a: decoded.append(p) or decode(p, *a))
    again = load_dataset("folder", "train", tmp_path, path=root, image_size=28)
    assert len(decoded) == len(files)  # rebuilt from the images
    assert torch.equal(again.images, expected) and torch.equal(again.batch([0]), first.batch([0]))
    assert [p.name for p in (tmp_path / "folder-cache").iterdir()] == [entry.name]
    assert (entry / "images.u8").stat().st_size == size
    assert json.loads((entry / "meta.json").read_text())["complete"] is True


def test_a_build_killed_midway_publishes_nothing_and_the_next_load_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    _noise_folder(root, 12)
    decode = data._decode_image
    calls = iter(range(100))

    def dies_at_the_fifth(path: Path, *args: object) -> np.ndarray | None:
        if next(calls) == 5:
            raise KeyboardInterrupt  # the user's Ctrl-C, mid-build
        return decode(path, *args)

    monkeypatch.setattr(data, "_DECODE_CHUNK", 2)  # rows reach the file before the kill
    with monkeypatch.context() as m:
        m.setattr(data, "_decode_image", dies_at_the_fifth)
        with pytest.raises(KeyboardInterrupt):
            load_dataset("folder", "train", tmp_path, path=root, image_size=28)
    assert list((tmp_path / "folder-cache").iterdir()) == []  # no entry, no temp folder
    ds = load_dataset("folder", "train", tmp_path, path=root, image_size=28)
    assert len(ds) == 11 and ds.images.shape == (11, 3, 28, 28)


def test_concurrent_builders_of_one_entry_leave_one_complete_copy(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "key"
    builders = [memmap_cache.EntryBuilder(final, (1, 2, 2)) for _ in range(2)]
    for value, builder in enumerate(builders):
        builder.append(np.full((3, 1, 2, 2), value, dtype=np.uint8))
    arrays = {"labels": np.arange(3)}
    entries = [b.finish(arrays, {"all": (0, 3)}) for b in builders]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["key"]  # no temp left
    assert entries[0].path == entries[1].path == final
    stored = np.fromfile(final / "images.u8", dtype=np.uint8)
    assert stored.tolist() == [0] * 12  # the first rename won; the second copy was dropped


def test_progress_callback_counts_files_up_to_the_total_while_building_only(
    tmp_path: Path,
) -> None:
    root = tmp_path / "pics"
    _noise_folder(root, 30)
    (root / "broken.png").write_bytes(b"not an image")  # counted as done, though skipped
    calls: list[tuple[int, int]] = []
    ds = load_dataset(
        "folder", "test", tmp_path, progress=lambda *c: calls.append(c), path=root, image_size=28
    )
    assert ds.skipped == 1
    assert calls[0] == (0, 31) and calls[-1] == (31, 31)
    assert {total for _, total in calls} == {31}
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) <= 33  # every 1 %: not more than once a file
    calls.clear()
    load_dataset("folder", "train", tmp_path, progress=lambda *c: calls.append(c), path=root)
    assert calls[0] == (0, 31) and calls[-1] == (31, 31)  # image_size 64: a new entry
    calls.clear()
    load_dataset("folder", "train", tmp_path, progress=lambda *c: calls.append(c), path=root)
    assert calls == []  # a cache hit builds nothing


def test_progress_report_is_throttled_to_one_percent_steps() -> None:
    calls: list[tuple[int, int]] = []
    report = memmap_cache.ProgressReport(lambda *c: calls.append(c), 10_000, "test")
    for done in range(1, 10_001):
        report.update(done)
    report.close()
    assert calls[0] == (0, 10_000) and calls[-1] == (10_000, 10_000)
    assert 100 <= len(calls) <= 102


def test_large_shapes_split_is_rendered_into_the_disk_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data.SHAPES_IN_MEMORY_MAX == 50_000
    monkeypatch.setattr(data, "SHAPES_IN_MEMORY_MAX", 100)
    monkeypatch.setattr(data, "_RENDER_CHUNK", 64)  # several chunks, the last one partial
    calls: list[tuple[int, int]] = []
    options = {"image_size": 28, "num_samples": 300, "seed": 3}
    train = load_dataset(
        "shapes", "train", tmp_path, progress=lambda *c: calls.append(c), **options
    )
    images, factors, factor_idx = shapes.generate_shapes(300, image_size=28, seed=6)
    assert train.on_disk and torch.equal(train.images, images)
    assert torch.equal(train.batch(torch.tensor([299, 0])), images[[299, 0]].float() / 255)
    assert torch.equal(train.factors, factors) and torch.equal(train.factor_idx, factor_idx)
    assert torch.equal(train.labels, factor_idx[:, 0])
    assert calls[0] == (0, 300) and calls[-1] == (300, 300)
    (entry,) = (tmp_path / "shapes-cache").iterdir()
    assert (entry / "images.u8").stat().st_size == 300 * 28 * 28
    test = load_dataset("shapes", "test", tmp_path, **options)  # 75 images: in memory
    assert not test.on_disk and len(test) == 75
    monkeypatch.setattr(shapes, "render_shapes", lambda *a, **k: pytest.fail("rendered again"))
    again = load_dataset("shapes", "train", tmp_path, **options)
    assert torch.equal(again.images, images)


def test_unwritable_cache_dir_falls_back_to_a_private_temporary_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    files = _noise_folder(root, 12)
    blocked = tmp_path / "a-file"
    blocked.write_text("the cache folder cannot be created under a file")
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    ds = load_dataset("folder", "train", blocked, path=root, image_size=28)
    assert list(private_tmp.iterdir()) == []  # deleted at once; the open file still reads
    pixels, labels = _expected_split(root, files, "train")
    assert torch.equal(ds.batch(slice(None)), pixels.float() / 255)
    assert torch.equal(ds.images, pixels) and ds.labels.tolist() == labels


# ---- cache eviction ----


def _tiny_entry(final: Path, value: int) -> memmap_cache.Entry:
    with memmap_cache.EntryBuilder(final, (1, 2, 2)) as builder:
        builder.append(np.full((1, 1, 2, 2), value, dtype=np.uint8))
        return builder.finish({"labels": np.zeros(1, np.int64)}, {"all": (0, 1)})


def _write_entries(cache_dir: Path, count: int, first: int = 0) -> list[Path]:
    """Add `count` cache entries through the loader's path (so evicting as it goes), each
    one second more recent than the last."""
    base = time.time_ns() - 10**12
    paths = []
    for i in range(first, first + count):
        path = cache_dir / f"{i:02d}"
        data._open_or_build(
            path,
            functools.partial(_tiny_entry, value=i),
            data.FOLDER_CACHE_ENTRIES,
            data.FOLDER_CACHE_BYTES,
        )
        os.utime(path, ns=(base + i * 10**9, base + i * 10**9))
        paths.append(path)
    return paths


def test_folder_cache_keeps_the_most_recent_entries(tmp_path: Path) -> None:
    cache_dir = tmp_path / "folder-cache"
    assert data.FOLDER_CACHE_ENTRIES == 8 and data.FOLDER_CACHE_BYTES == 8 * 1024**3
    paths = _write_entries(cache_dir, data.FOLDER_CACHE_ENTRIES + 3)
    left = sorted(p.name for p in cache_dir.iterdir())
    assert left == [p.name for p in paths[3:]]  # the three oldest went, no temp files stayed
    entry = memmap_cache.open_entry(paths[-1])
    assert entry is not None and entry.shape == (1, 1, 2, 2)
    assert np.fromfile(entry.images_path, np.uint8).tolist() == [len(paths) - 1] * 4


def test_folder_cache_hit_makes_an_entry_the_most_recently_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "FOLDER_CACHE_ENTRIES", 2)
    for name in ("a", "b", "c"):
        _save_image(tmp_path / name / "x.png", (ord(name), 0, 0))
    cache_dir = tmp_path / "data" / "folder-cache"

    def load(name: str) -> ImageDataset:
        return load_dataset("folder", "train", tmp_path / "data", path=tmp_path / name)

    load("a")
    (cache_a,) = cache_dir.iterdir()
    os.utime(cache_a, (time.time() - 100, time.time() - 100))
    load("b")
    (cache_b,) = set(cache_dir.iterdir()) - {cache_a}
    os.utime(cache_b, (time.time() - 50, time.time() - 50))
    with monkeypatch.context() as m:
        m.setattr(data, "_decode_folder", lambda *args: pytest.fail("decoded a cached folder"))
        load("a")  # a hit: a is now more recent than b
    load("c")
    assert cache_a.is_dir() and not cache_b.exists()
    assert len(list(cache_dir.iterdir())) == 2


def test_folder_cache_byte_budget_evicts_but_keeps_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "folder-cache"
    (first,) = _write_entries(cache_dir, 1)
    size = sum(p.stat().st_size for p in first.iterdir())
    monkeypatch.setattr(data, "FOLDER_CACHE_BYTES", int(2.5 * size))
    _write_entries(cache_dir, 3, first=1)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["02", "03"]
    monkeypatch.setattr(data, "FOLDER_CACHE_BYTES", 1)  # under one entry: the newest stays
    _write_entries(cache_dir, 1, first=9)
    assert [p.name for p in cache_dir.iterdir()] == ["09"]


def test_folder_cache_removes_stale_temp_folders_and_old_format_files(tmp_path: Path) -> None:
    cache_dir = tmp_path / "folder-cache"
    old, fresh = cache_dir / ".x.old.tmp", cache_dir / ".y.new.tmp"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "images.u8").write_bytes(b"half")
    legacy = cache_dir / "0123abcd.safetensors"  # the cache format before memmaps
    legacy.write_bytes(b"old")
    os.utime(old, (time.time() - 2 * data._STALE_TEMP_S,) * 2)
    _write_entries(cache_dir, 1)
    assert not old.exists() and not legacy.exists()
    assert fresh.exists()  # maybe another process's build in progress: left alone
