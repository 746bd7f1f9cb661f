"""How a training split reaches the training device: held there, or streamed to it.

A split that fits the device's data memory budget is copied onto the device once, and each
step gathers its batch there (:class:`OnDevice`, the fast path for every dataset that fits).
A larger one stays where it is (a memory-mapped decoded cache, or host memory) and each
step gathers its batch on the CPU into a reused buffer, pinned on CUDA, from which it is
copied to the device asynchronously (:class:`Streamed`): the gather of the next batch
overlaps the device's work on this one. Both give the same batches in the same order, so a
run's numbers do not depend on which path it took.

The budget is ``TrainConfig.data_memory`` (MB; ``latent-train train --data-memory``);
by default half of the device's free memory (on the CPU: of the memory available, within
a container's limit), shared among the processes of a run on the same machine's CPU.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from ..data.arrays import ImageData, Rows, nbytes

MB = 1 << 20


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` now (host memory for the CPU, within this process's memory
    cgroup's limit where it has one: a container's); None if it cannot be told."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "mps":
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    except (RuntimeError, AttributeError, ValueError):
        return None
    free = None
    try:
        with open("/proc/meminfo") as f:  # Linux: what can be had without swapping
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:  # elsewhere: the machine's memory
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
    room = cgroup_room()
    if room is not None:
        free = room if free is None else min(free, room)
    return free


UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def cgroup_room(proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")):
    """Bytes this process's memory cgroups still allow (the tightest limit less its use, up
    the hierarchy, cgroup v2 or v1); None where no limit is set or none can be read."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    room = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1].split(","), parts[2].lstrip("/")
        if parts[0] == "0" and parts[1] == "":  # v2: one unified hierarchy
            top, names = root, ("memory.max", "memory.current")
        elif "memory" in controllers:  # v1: the memory controller's own
            top, names = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        if not top.is_dir():
            continue
        here = top / path
        while True:  # this group and its ancestors (a parent's limit binds it too)
            try:
                limit = (here / names[0]).read_text().strip()
                used = int((here / names[1]).read_text())
                if limit != "max" and int(limit) < UNLIMITED:
                    left = max(0, int(limit) - used)
                    room = left if room is None else min(room, left)
            except (OSError, ValueError):
                pass
            if here == top or top not in here.parents:
                break
            here = here.parent
    return room


def default_budget(device: torch.device, share: int = 1) -> int:
    """Half of the device's free memory, divided among the ``share`` processes of a run that
    use it: the rest is for the model, its activations and, on the CPU, everything else the
    machine runs. (2 GB where it cannot be told.)"""
    free = free_memory(device)
    return (free // 2 if free else 2048 * MB) // max(1, share)


def budget_bytes(device: torch.device, data_memory: float | None, share: int = 1) -> int:
    """The data memory budget on ``device``: ``data_memory`` MB (each process's, in a run on
    several), or the default."""
    return default_budget(device, share) if data_memory is None else int(data_memory * MB)


def data_bytes(data: ImageData) -> int:
    """The bytes of both splits' images."""
    return nbytes(data.train_x) + nbytes(data.test_x)


def fits(data: ImageData, budget: int) -> bool:
    """Whether both splits fit ``budget`` bytes, so that training holds them on the device."""
    return data_bytes(data) <= budget


class OnDevice:
    """Batches gathered from the split held on the device, into reused uint8 and float32
    tensors (a fresh allocation per step costs page faults)."""

    streamed = False

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, channels_last=False) -> None:
        self.x, self.y = x, y
        self.device = x.device
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.bufs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def order(self, perm: torch.Tensor) -> torch.Tensor:
        """An epoch's order, where :meth:`take` wants its indices."""
        return perm.to(self.device)

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The images ``idx`` of the split as float32 in [0, 1] (B, C, H, W), and their
        labels (or None)."""
        b = idx.shape[0]
        if b not in self.bufs:
            shape = (b, *self.x.shape[1:])
            self.bufs[b] = (
                self.x.new_empty(shape),
                torch.empty(shape, dtype=torch.float32, device=self.device).contiguous(
                    memory_format=self.layout
                ),
            )
        raw, out = self.bufs[b]
        torch.index_select(self.x, 0, idx, out=raw)
        # a same-dtype copy, then an in-place scale: faster than one mixed-dtype multiply
        xb = out.copy_(raw).mul_(1.0 / 255.0)
        return xb, None if self.y is None else self.y[idx]


class _Slot:
    """One batch in flight: its gather buffers on the host and its copy on the device."""

    def __init__(self, shape, labels: bool, device: torch.device, layout) -> None:
        pin = device.type == "cuda"
        self.host = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
        self.host_y = torch.empty(shape[0], dtype=torch.int64, pin_memory=pin) if labels else None
        on_host = device.type == "cpu"
        self.dev = self.host if on_host else torch.empty(shape, dtype=torch.uint8, device=device)
        self.dev_y = (
            self.host_y
            if on_host or not labels
            else torch.empty(shape[0], dtype=torch.int64, device=device)
        )
        self.out = torch.empty(shape, dtype=torch.float32, device=device).contiguous(
            memory_format=layout
        )
        # set when the copy out of the host buffers has finished, so they may be refilled
        self.copied = torch.cuda.Event() if pin else None


class Streamed:
    """Batches gathered on the host from a split that stays there (a memory-mapped cache's
    :class:`~trainer.data.Rows`, or a CPU tensor), and copied to the device.

    Two slots take turns: on CUDA the copy of one batch (pinned memory, non-blocking) and
    the device's work on it run while the CPU gathers the next into the other slot."""

    streamed = True
    SLOTS = 2

    def __init__(
        self, x: torch.Tensor | Rows, y: torch.Tensor | None, device, channels_last=False
    ) -> None:
        self.device = torch.device(device)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        if isinstance(x, Rows):
            self.base, self.rows = x.base, x.index
        else:
            self.base, self.rows = x.cpu(), None
        self.y = None if y is None else y.cpu()
        self.slots: dict[int, list[_Slot]] = {}
        self.turn = 0

    def order(self, perm: torch.Tensor) -> torch.Tensor:
        return perm.cpu()

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = idx.shape[0]
        if b not in self.slots:
            shape = (b, *self.base.shape[1:])
            self.slots[b] = [
                _Slot(shape, self.y is not None, self.device, self.layout)
                for _ in range(self.SLOTS)
            ]
        slot = self.slots[b][self.turn % self.SLOTS]
        self.turn += 1
        if slot.copied is not None:
            slot.copied.synchronize()  # its last batch has left the host buffer
        rows = idx if self.rows is None else self.rows[idx]
        torch.index_select(self.base, 0, rows, out=slot.host)
        if self.y is not None:
            torch.index_select(self.y, 0, idx, out=slot.host_y)
        if slot.dev is not slot.host:
            async_copy = slot.copied is not None
            slot.dev.copy_(slot.host, non_blocking=async_copy)
            if slot.dev_y is not None:
                slot.dev_y.copy_(slot.host_y, non_blocking=async_copy)
            if async_copy:
                slot.copied.record()
        xb = slot.out.copy_(slot.dev).mul_(1.0 / 255.0)
        return xb, slot.dev_y


def place(
    data: ImageData,
    device: torch.device,
    budget: int,
    labels: bool,
    channels_last: bool = False,
    hold: bool | None = None,
) -> tuple[ImageData, OnDevice | Streamed]:
    """``data`` as training on ``device`` holds it, and where its batches come from (with
    their ``labels``, for a conditional model; ``channels_last``: laid out so, for a conv
    body that is): both splits on the device when they fit the ``budget`` (bytes; ``hold``
    decides instead when given); else the training split is streamed, and the test split
    (evaluated in chunks) is on the device if it fits there alone."""
    if hold if hold is not None else fits(data, budget):
        on = data.to(device)
        return on, OnDevice(on.train_x, on.train_y if labels else None, channels_last)
    move = nbytes(data.test_x) <= budget
    test = lambda t: None if t is None else t.to(device) if move else t  # noqa: E731
    kept = replace(data, test_x=test(data.test_x), test_y=test(data.test_y))
    return kept, Streamed(data.train_x, data.train_y if labels else None, device, channels_last)
