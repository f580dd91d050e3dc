"""A folder dataset bigger than RAM would like: caching time, peak RSS, samples/s.

    flock /tmp/bench.lock python bench/big_folder.py [--num-images 200000] [--keep]

1. Generates N synthetic 64 x 64 PNGs (a few coloured ellipses and boxes on a background, ten
   class folders) in a temp folder, over all cores. --keep leaves it (and its cache) there
   and --dir reuses a kept one, so a second run skips the generation.
2. Builds the disk cache in a subprocess: its wall time and peak RSS.
3. Reads one shuffled epoch of batches with no model, through ImageDataset.batch (pread) and
   through images[idx] (gathers from the memory map): time and peak RSS of each.
4. Trains on the whole set for --train-seconds in a subprocess (MLP VAE, batch 128, random
   batches over the whole file): its peak RSS, beside the size of the cache file it reads.
5. samples/s of the disk-cached dataset against the same split copied into RAM, on one class
   folder (N / 10 images: 20,000 at the default N), same model, batch and threads.

Every training run is a real `vae_core.train.train` call in its own process, stopped through
control.json like the UI's Stop button; peak RSS comes from os.wait4 on that process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

CLASSES = 10
SIZE = 64


# ---- 1. the synthetic folder ----


def _draw_chunk(job: tuple[Path, int, int]) -> int:
    """Draw images [start, stop) into root/class_XX/NNNNNNN.png; seeded by `start`."""
    root, start, stop = job
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        image = Image.new("RGB", (SIZE, SIZE), _colour(rng))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            x, y = (int(v) for v in rng.integers(0, SIZE - 12, 2))
            side = int(rng.integers(8, 28))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x, y, x + side, y + side), fill=_colour(rng))
        # compress_level 1: a quarter of the default's time; the decoder does not care.
        image.save(root / f"class_{i % CLASSES:02d}" / f"{i:07d}.png", compress_level=1)
    return stop - start


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, 3))
    return r, g, b


def generate_folder(root: Path, count: int, workers: int) -> float:
    """Write `count` images under root; seconds taken (0 when a complete folder is reused)."""
    if root.is_dir() and sum(1 for _ in root.glob("class_*/*.png")) == count:
        return 0.0
    shutil.rmtree(root, ignore_errors=True)
    for k in range(CLASSES):
        (root / f"class_{k:02d}").mkdir(parents=True)
    chunk = 2000
    jobs = [(root, a, min(a + chunk, count)) for a in range(0, count, chunk)]
    t0 = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        for _ in pool.imap_unordered(_draw_chunk, jobs):
            pass
    return time.perf_counter() - t0


# ---- child processes: one job each, so that each has its own peak RSS ----


def child_cache(folder: str, data_dir: str) -> dict[str, Any]:
    from vae_core.data import load_dataset

    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 10 or done == total:  # a line every 10 s at most
            last[0] = time.monotonic()
            print(f"    caching {done:,} / {total:,}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    train = load_dataset("folder", "train", data_dir, progress=report, path=folder)
    seconds = time.perf_counter() - t0
    test = load_dataset("folder", "test", data_dir, path=folder)
    return {"seconds": seconds, "train": len(train), "test": len(test)}


def child_epoch(folder: str, data_dir: str, through_map: bool) -> dict[str, Any]:
    """One epoch of shuffled batches of 128 over the train split, no model: the data path
    alone. through_map reads `images[idx]` (gathers from the memory map) instead of batch()."""
    import torch

    from vae_core.data import load_dataset

    ds = load_dataset("folder", "train", data_dir, path=folder)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    checksum = 0.0
    for start in range(0, len(ds), 128):
        idx = order[start : start + 128]
        x = ds.images[idx].float().div_(255) if through_map else ds.batch(idx)
        checksum += float(x[:, 0, 0, 0].sum())
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(ds), "checksum": checksum}


def child_train(
    folder: str, data_dir: str, seconds: float, in_memory: bool, threads: int
) -> dict[str, Any]:
    """Train an MLP VAE for `seconds` of running time, then stop it through control.json."""
    import vae_core.train as train_module
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.data import ImageDataset, load_dataset
    from vae_core.rundir import RunDir

    if in_memory:  # the same split, copied out of the cache into one tensor in RAM

        def load_into_memory(*args: Any, **kwargs: Any) -> ImageDataset:
            ds = load_dataset(*args, **kwargs)
            return ImageDataset(ds.images.clone(), ds.labels.clone(), ds.info)

        train_module.load_dataset = load_into_memory
    model = ModelConfig(
        image_shape=(3, SIZE, SIZE), architecture="mlp", latent_dim=16, hidden_dim=400
    )
    config = TrainConfig(
        dataset="folder",
        dataset_options={"path": folder, "image_size": SIZE},
        data_dir=data_dir,
        epochs=1000,  # stopped by time, not by epochs
        batch_size=128,
        num_threads=threads,
        eval_batches=4,
        # IWAE at each epoch end holds k x n decoded images (100 x 256 x 64 x 64 x 3 floats,
        # 1.3 GB) whatever the dataset size: off, so peak RSS shows the data path.
        iwae_k=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        threading.Thread(target=_stop_after, args=(run, seconds), daemon=True).start()
        summary = train_module.train(model, config, run)
    return {"samples_per_s": summary["samples_per_s"], "steps": summary["step"]}


def _stop_after(run: Any, seconds: float) -> None:
    """Wait until the trainer runs (data loaded), let it run `seconds`, then press Stop."""
    while True:
        try:
            status = run.read_status()
        except Exception:  # half-created run folder: look again
            status = None
        if status is not None and status.state == "running" and status.step > 0:
            break
        time.sleep(0.2)
    time.sleep(seconds)
    run.send_control("stop")


def run_child(*args: str) -> tuple[dict[str, Any], float, float]:
    """(the child's JSON result, its wall seconds, its peak RSS in MB) for one job."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed with exit code {proc.returncode}")
    return json.loads(out.splitlines()[-1]), time.perf_counter() - t0, usage.ru_maxrss / 1024


# ---- the report ----


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, help="work folder (default: a new one in /tmp)")
    parser.add_argument("--keep", action="store_true", help="leave the images and cache")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--compare-seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--stages",
        default="cache,epoch,train,compare",
        help="comma-separated subset of cache,epoch,train,compare (generation always runs; "
        "without cache, a kept cache in --dir is reused)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_dispatch_child(args.child)))
        return

    work = args.dir or Path(tempfile.mkdtemp(prefix="big-folder-"))
    images, data_dir = work / "images", work / "data"
    print(f"work folder {work}; {args.num_images:,} images; {args.threads} threads")
    try:
        report(args, images, data_dir)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _dispatch_child(argv: list[str]) -> dict[str, Any]:
    job, folder, data_dir, *rest = argv
    if job == "cache":
        return child_cache(folder, data_dir)
    if job in ("epoch-pread", "epoch-map"):
        return child_epoch(folder, data_dir, job == "epoch-map")
    seconds, threads = float(rest[0]), int(rest[1])
    return child_train(folder, data_dir, seconds, job == "train-memory", threads)


def report(args: argparse.Namespace, images: Path, data_dir: Path) -> None:
    n, stages, threads = args.num_images, args.stages.split(","), str(args.threads)
    gen_s = generate_folder(images, n, args.threads)
    print(f"generate: {gen_s:8.1f} s  ({n / gen_s:,.0f} images/s)" if gen_s else "generate: reused")
    if "cache" in stages:
        shutil.rmtree(data_dir, ignore_errors=True)  # always time a cold cache build
        cached, wall, rss = run_child("cache", str(images), str(data_dir))
        print(
            f"cache:    {cached['seconds']:8.1f} s  ({n / cached['seconds']:,.0f} images/s; "
            f"{cached['train']:,} train + {cached['test']:,} test; peak RSS {rss:,.0f} MB; "
            f"process wall {wall:.1f} s)"
        )
    cache_gb = sum(p.stat().st_size for p in data_dir.glob("folder-cache/*/*")) / 1e9
    print(f"          cache on disk: {cache_gb:.2f} GB")
    if "epoch" in stages:
        # Read the cache once front to back, so both epoch runs below find it in the page
        # cache: otherwise the first one pays for the disk and the second one does not.
        t0 = time.perf_counter()
        for path in data_dir.glob("folder-cache/*/images.u8"):
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        print(f"          page cache warm-up: {time.perf_counter() - t0:.1f} s")
        for job, how in (("epoch-pread", "batch() (pread)"), ("epoch-map", "images[idx] (mmap)")):
            result, _, rss = run_child(job, str(images), str(data_dir))
            print(
                f"epoch:    {how:19s} one shuffled epoch of {result['rows']:,} images in "
                f"{result['seconds']:6.1f} s ({result['rows'] / result['seconds']:,.0f} "
                f"images/s, no model): peak RSS {rss:,.0f} MB"
            )
    if "train" in stages:
        result, _, rss = run_child(
            "train-disk", str(images), str(data_dir), str(args.train_seconds), threads
        )
        seen = result["steps"] * 128
        print(
            f"train:    peak RSS {rss:,.0f} MB while training (MLP VAE, batch 128) on the whole "
            f"set for {args.train_seconds:.0f} s: {result['steps']:,} steps, {seen:,} samples, "
            f"{result['samples_per_s']:,.0f} samples/s"
        )
    if "compare" in stages:
        compare(args, images / "class_00", data_dir, threads)  # N / 10 images: fits in RAM


def compare(args: argparse.Namespace, subset: Path, data_dir: Path, threads: str) -> None:
    """samples/s of the disk-cached split against the same split copied into RAM."""
    speeds: dict[str, list[float]] = {"train-disk": [], "train-memory": []}
    peaks: dict[str, float] = {}
    for _ in range(args.rounds):
        for job in speeds:
            result, _, rss = run_child(
                job, str(subset), str(data_dir), str(args.compare_seconds), threads
            )
            speeds[job].append(result["samples_per_s"])
            peaks[job] = max(peaks.get(job, 0.0), rss)
    disk, memory = (statistics.median(speeds[j]) for j in ("train-disk", "train-memory"))
    print(
        f"compare:  {args.num_images // CLASSES:,} images, MLP VAE, batch 128, "
        f"{args.compare_seconds:.0f} s x {args.rounds} rounds: disk cache {disk:,.0f} samples/s "
        f"(peak RSS {peaks['train-disk']:,.0f} MB), in memory {memory:,.0f} samples/s (peak RSS "
        f"{peaks['train-memory']:,.0f} MB): disk / memory = {disk / memory:.3f}"
    )
    print("runs:", json.dumps(speeds))


if __name__ == "__main__":
    main()
