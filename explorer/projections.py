"""t-SNE of the scatter's codes in a background thread, so the page never waits for it.

One job per run, shared by every session and tab (st.cache_resource): a second tab asking
for the same snapshot's t-SNE gets the running job, not a second computation. A job embeds
the codes of the snapshot it was started with and keeps them, since t-SNE has no map for
codes encoded later.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import streamlit as st

from vae_core import latent
from vae_core.latent import EncodedSet, Projection


@dataclass
class TsneJob:
    version: int  # snapshot version the codes were encoded with
    codes: EncodedSet
    future: Future[Projection]
    started: float = field(default_factory=time.monotonic)

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


@st.cache_resource
def _jobs() -> tuple[ThreadPoolExecutor, dict[str, TsneJob], threading.Lock]:
    # One worker: t-SNE jobs queue rather than compete for the core the UI keeps.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsne"), {}, threading.Lock()


def tsne_job(run_path: str) -> TsneJob | None:
    """The newest t-SNE job started for this run, running or finished."""
    _, jobs, lock = _jobs()
    with lock:
        return jobs.get(run_path)


def start_tsne(run_path: str, version: int, codes: EncodedSet) -> TsneJob:
    """Embed `codes` (encoded with snapshot `version`) in the background; returns the job.

    A job for the same version that is running or succeeded is returned as it is.
    """
    executor, jobs, lock = _jobs()
    with lock:
        job = jobs.get(run_path)
        if job is not None and job.version == version and job.error is None:
            return job
        # One thread: the UI's core; the trainer has the others (vae_core.train's budget).
        future = executor.submit(latent.tsne_2d, codes.mu, num_threads=1)
        job = TsneJob(version, codes, future)
        jobs[run_path] = job
        return job
