"""Several training processes under torchrun: PyTorch's own DDP, and the few collectives
the loop needs besides the gradient all-reduce.

    torchrun --nproc-per-node 2 -m vae_core train --dataset shapes --run-dir runs/ddp

Rank 0 owns the run folder: it alone reads control.json and writes everything else. The
other ranks learn the live settings from rank 0 at the same step (`Ranks.from_main`), so a
pause, stop or new beta acts everywhere at once. Every collective has a timeout, so a dead
rank ends the run within bounded time instead of hanging it.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from vae_core.config import PRECISIONS


class RankLost(RuntimeError):
    """Another rank died or stopped answering; the run ends with this as its reason."""


class Terminated(RuntimeError):
    """SIGTERM: torchrun stopping every rank after one failed, or a user's kill."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes; world_size 1 needs no collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""  # "" when not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def from_main(self, values: Sequence[float]) -> list[float]:
        """Rank 0's `values` on every rank (a broadcast of a few float64s)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        _collective(dist.broadcast, t, src=0)
        return t.tolist()

    def all_finite(self, *tensors: torch.Tensor) -> bool:
        """True on every rank only if every rank's tensors are finite: all skip a step, or none."""
        ok = torch.tensor([float(all(bool(torch.isfinite(t).all()) for t in tensors))])
        if self.distributed:
            _collective(dist.all_reduce, ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks, as float64 on the CPU (gloo)."""
        if not self.distributed:
            return t
        total = t.detach().to("cpu", torch.float64)
        _collective(dist.all_reduce, total, op=dist.ReduceOp.SUM)
        return total

    def gather_ints(self, value: int) -> list[int]:
        """Every rank's `value`, in rank order (e.g. their pids for status.json)."""
        if not self.distributed:
            return [value]
        out = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        _collective(dist.all_gather, out, torch.tensor([value], dtype=torch.int64))
        return [int(t.item()) for t in out]


ONE_PROCESS = Ranks()  # no torchrun: the default everywhere


def _collective(fn, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except Terminated:
        raise  # SIGTERM arrived while waiting: that is the reason, not the collective
    except RuntimeError as e:  # a peer's socket closed, or a timeout
        raise rank_lost(e) from e


def rank_lost(error: BaseException) -> RankLost:
    """The reason a run ends when a collective fails (here, or in DDP's gradient all-reduce
    inside backward): a peer's connection closed, or it did not answer within the timeout."""
    text = " ".join(str(error).split())
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # gloo's [source/file.cc:line] prefix
    text = text.split(". This is typically")[0]  # gloo's generic advice
    return RankLost(f"another training process stopped answering: {text[:300]}")


def is_collective_error(error: BaseException) -> bool:
    """A failure of the process group rather than of this process's own work."""
    if isinstance(error, RankLost | Terminated):
        return False  # already named
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        mark in text for mark in ("gloo", "NCCL", "Connection reset", "Connection closed")
    )


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_ranks(device_choice: str, timeout_s: float) -> Ranks:
    """Join the process group torchrun describes in the environment; one process otherwise.

    gloo on CPU, nccl on CUDA (one GPU per local rank).
    """
    if not launched_by_torchrun():
        return Ranks()
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        # On CUDA, nccl carries the gradients and gloo the few CPU tensors of the control
        # and check collectives (nccl takes CUDA tensors only).
        groups = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
        dist.init_process_group(groups, timeout=datetime.timedelta(seconds=timeout_s))
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def close_ranks(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def raise_on_sigterm() -> None:
    """Turn SIGTERM into an exception, so a stopped trainer still writes why it stopped."""

    why = (
        "terminated by SIGTERM: under torchrun, another training process failed "
        "(torchrun then stops them all) or torchrun itself was stopped"
        if launched_by_torchrun()
        else "terminated by SIGTERM"
    )

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(why)

    signal.signal(signal.SIGTERM, handler)


def shard(idx: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's share of one global batch (like DistributedSampler, per batch): rows
    rank, rank + world, ...; the global batch, and so the gradient's average, is unchanged."""
    return idx[ranks.rank :: ranks.world_size]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None = plain fp32.

    fp16 needs CUDA (its loss scaling guards fp16's narrow range); bf16 runs anywhere, with
    fp32's range, but it is fast only on GPUs and CPUs with bf16 units.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The forward pass's mixed-precision context (a no-op for fp32)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
