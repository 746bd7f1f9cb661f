"""How many CPU threads torch trains with, for the window and the command line alike.

torch's CPU kernels run on OpenMP worker threads that spin while they wait for the next
parallel region. With as many threads as cores, any other busy program on the machine
leaves some of them without a core, and every parallel region then waits for a thread that
is not running: on a 2-core machine with one other busy process, training fell from 16,505
to 395 images/s (``bench/bench_train.py`` measures it). Training therefore takes the cores
this process may use less one, left for the window, the desktop or another job, unless the
user says otherwise (``--threads`` on the command line, or ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import os

GUI_THREADS = 1  # the window decodes small batches; the other cores are the training's


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def training_threads(requested: int | None = None) -> int:
    """``requested`` if given, else ``OMP_NUM_THREADS`` if set, else all usable cores but one."""
    if requested:
        return max(1, int(requested))
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, usable_cores() - 1)


def describe(n: int, requested: int | None = None) -> str:
    """For the CLI's start line: "1 thread of 2 cores (all but one; --threads N to change)"."""
    if requested:
        why = "--threads"
    elif os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        why = "OMP_NUM_THREADS"
    else:
        why = "all but one; --threads N to change"
    cores = usable_cores()
    return f"{n} thread{'s' if n != 1 else ''} of {cores} core{'s' if cores != 1 else ''} ({why})"
