"""t-SNE and UMAP of the scatter's codes in a background thread, so the page never waits.

One job per run and method, shared by every session and tab (st.cache_resource): a second tab
asking for the same snapshot's t-SNE gets the running job, not a second computation. A job
embeds the codes of the snapshot it was started with and keeps them, since neither map can
place codes encoded later.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import streamlit as st

from vae_core import embedding
from vae_core.latent import EncodedSet, Projection

Method = Literal["tsne", "umap"]
METHOD_NAMES: dict[str, str] = {"tsne": "t-SNE", "umap": "UMAP"}


@dataclass
class EmbeddingJob:
    method: Method
    version: int  # snapshot version the codes were encoded with
    codes: EncodedSet
    future: Future[Projection] = field(default_factory=Future)
    started: float = field(default_factory=time.monotonic)
    fraction: float | None = None  # progress in [0, 1] where the method reports it

    @property
    def name(self) -> str:
        return METHOD_NAMES[self.method]

    @property
    def done(self) -> bool:
        return self.future.done()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def projection(self) -> Projection | None:
        """The embedding once finished without error, else None."""
        return self.future.result() if self.done and self.future.exception() is None else None

    @property
    def error(self) -> str | None:
        """Why it failed, in one line, once finished with an error."""
        error = self.future.exception() if self.done else None
        return None if error is None else f"{type(error).__name__}: {error}"

    def report(self, fraction: float) -> None:
        self.fraction = fraction


@st.cache_resource
def _jobs() -> tuple[ThreadPoolExecutor, dict[tuple[str, str], EmbeddingJob], threading.Lock]:
    # One worker: jobs queue rather than compete for the core the UI keeps.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")
    return executor, {}, threading.Lock()


def job(run_path: str, method: Method) -> EmbeddingJob | None:
    """The newest job of this method started for this run, running or finished."""
    _, jobs, lock = _jobs()
    with lock:
        return jobs.get((run_path, method))


def start(run_path: str, method: Method, version: int, codes: EncodedSet) -> EmbeddingJob:
    """Embed `codes` (encoded with snapshot `version`) in the background; returns the job.

    A job for the same method and version that is running or succeeded is returned as it is.
    """
    executor, jobs, lock = _jobs()
    with lock:
        current = jobs.get((run_path, method))
        if current is not None and current.version == version and current.error is None:
            return current
        new = EmbeddingJob(method, version, codes)
        # One thread: the UI's core; the trainer has the others (vae_core.train's budget).
        if method == "tsne":
            new.future = executor.submit(
                embedding.tsne_2d, codes.mu, num_threads=1, progress=new.report
            )
        else:
            new.future = executor.submit(embedding.umap_2d, codes.mu)
        new.started = time.monotonic()
        jobs[(run_path, method)] = new
        return new
