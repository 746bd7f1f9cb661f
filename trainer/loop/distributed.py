"""Training one model on several processes: ``torchrun`` starts them, ``torch.distributed``
connects them (gloo on the CPU, NCCL on CUDA) and DistributedDataParallel all-reduces the
gradients before every Adam step.

Every process holds the whole dataset and walks the same seeded permutation of each epoch;
each takes its own share of every global batch (``--batch-size`` is the global batch, so a
run on N processes takes the same steps as one on a single process) and draws the noise of
the whole batch, keeping its share's rows, so that it draws what one process would. Each
process's loss is its share's sum over the global batch size times N, which DDP's averaging
turns into the global batch's mean: the gradients are the single-process ones. The
processes agree, every :data:`SYNC_EVERY` steps, on the loss sums to report and on whether
to stop (Ctrl-C or SIGTERM reaching any of them); process 0 alone prints and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

SYNC_EVERY = 20  # steps between the processes' agreements (loss sums to report, stop or not)
# a collective that waits longer than this fails (a process that dies is noticed at once, by
# its closed connection; this bounds a process that hangs, or process 0's first decoding of
# a large image folder while the others wait)
TIMEOUT_S = 1800


class DistributedError(RuntimeError):
    """The processes of a run could not be started or connected, or one of them failed."""


@dataclass
class Processes:
    """This process's place in a distributed run."""

    rank: int
    world: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on_this_machine(self) -> int:
        """How many of the run's processes share this machine (its cores, its memory)."""
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", self.world)))

    def rows(self, n: int) -> tuple[int, int]:
        """The rows (a, b) of a global batch of ``n`` that are this process's share: the
        shares differ by at most one image (one may be empty in a final batch smaller than
        the world), in rank order."""
        q, r = divmod(n, self.world)
        a = self.rank * q + min(self.rank, r)
        return a, a + q + (1 if self.rank < r else 0)

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch's indices."""
        a, b = self.rows(len(idx))
        return idx[a:b]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the processes (in place; every process calls it at once)."""
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        dist.barrier()

    def max(self, value: int) -> int:
        """The largest of the processes' ``value`` (every process calls it at once)."""
        t = torch.tensor([float(value)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher) as one of many."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def start(device_name: str = "auto") -> Processes:
    """Join the run this process was launched into; the device follows ``device_name``
    ("auto": CUDA if there is one, each process its own GPU by LOCAL_RANK; else the CPU)."""
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as e:
        raise DistributedError(
            f"the launcher's environment is incomplete ({e}); start the run with torchrun"
        ) from None
    if device_name == "mps":
        raise DistributedError("training on several processes runs on CPU or CUDA, not MPS")
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise DistributedError(
                "device 'cuda' was asked for but is not available on this machine (available: cpu)"
            )
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"process {rank} is number {local_rank} on its machine, which has "
                f"{torch.cuda.device_count()} GPU(s): start one process per GPU"
            )
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    except (RuntimeError, ValueError) as e:
        raise DistributedError(f"could not join the other processes ({e})") from None
    return Processes(rank, world, local_rank, backend, device)


def finish(procs: Processes, trainer=None) -> None:
    """End this process's part of the run, all of them together: wait until every process
    is here (process 0 saves the run meanwhile), let go of DDP, then leave the group. (A
    process that left early, while another still used the group, was seen to abort on its
    way out: "terminate called without an active exception".)"""
    if trainer is not None:
        trainer.ddp = None
    try:
        dist.barrier()
    except RuntimeError:  # another process is gone: there is no one to wait for
        pass
    if dist.is_initialized():
        dist.destroy_process_group()


class ElboTerms(torch.nn.Module):
    """The model's per-image reconstruction and KL terms as a module's forward, which is
    what DistributedDataParallel wraps (its hooks follow ``forward``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        return self.model.elbo_terms(x, y)


def wrap(model: torch.nn.Module, procs: Processes) -> torch.nn.Module:
    """DDP around the model's ELBO terms (its weights made equal to process 0's)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [procs.device.index] if procs.device.type == "cuda" else None
    return DistributedDataParallel(ElboTerms(model), device_ids=ids)
