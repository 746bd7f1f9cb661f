"""How many CPU threads torch trains with, for the window and the command line alike.

torch's CPU kernels run on OpenMP worker threads that spin while they wait for the next
parallel region. With as many threads as cores, any other busy program on the machine
leaves some of them without a core, and every parallel region then waits for a thread that
is not running: on a 2-core machine with one other busy process, training fell from 16,505
to 395 images/s (``bench/bench_train.py`` measures it). Training therefore takes the cores
this process may use less one, left for the window, the desktop or another job, unless the
user says otherwise (``--threads`` on the command line, or ``OMP_NUM_THREADS``), and never
more than four threads a core: OMP_NUM_THREADS=99999 crashed torch (a segmentation fault in
its first parallel region).
"""

from __future__ import annotations

import os
import re

from ..text import shorten

GUI_THREADS = 1  # the window decodes small batches; the other cores are the training's

THREADS_PER_CORE = 4  # the most CPU threads the project asks torch for, per usable core
# the variables that set thread counts for torch's OpenMP pool and its math library; read as
# the libraries load, so they are made sane before torch is imported (tame_environment)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def most_threads() -> int:
    """The most threads given to torch: more only take turns on the same cores, and far more
    crash it (OMP_NUM_THREADS=99999 ended training with a segmentation fault)."""
    return THREADS_PER_CORE * usable_cores()


def _counts(value: str) -> list[int] | None:
    """A thread variable's counts ("8", or OpenMP's nested "8,2"); None if it is not one or
    more whole numbers of at least 1. A count too long to be a number is taken as huge."""
    parts = [p.strip() for p in value.split(",")]
    if not all(re.fullmatch(r"[0-9]+", p) for p in parts):
        return None
    counts = [int(p) if len(p) <= 18 else 10**18 for p in parts]
    return counts if min(counts) >= 1 else None


def tame_environment(environ=None) -> list[str]:
    """Make each of :data:`THREAD_VARIABLES` a count torch can take: one above
    :func:`most_threads` is lowered to it, one that is no whole number of threads (libgomp
    would print a warning and ignore it) is removed; an empty one is as good as unset. Call
    it before torch is imported (the command lines' entry points do). Returns one line for
    each change, to be said."""
    env = os.environ if environ is None else environ
    top, notes = most_threads(), []
    for name in THREAD_VARIABLES:
        value = env.get(name)
        if value is None:
            continue
        if not value.strip():
            del env[name]
            continue
        counts = _counts(value)
        if counts is None:
            del env[name]
            notes.append(
                f"{name}={shorten(value, 20)} is not a whole number of threads; ignoring it"
            )
        elif max(counts) > top:
            env[name] = ",".join(str(min(c, top)) for c in counts)
            notes.append(f"{name}={shorten(value, 20)} is more than {_most()}; using {env[name]}")
    return notes


def _most() -> str:
    cores = usable_cores()
    return (
        f"{most_threads()} threads ({THREADS_PER_CORE} for each of the {cores} "
        f"core{'s' if cores != 1 else ''} here)"
    )


def _env_threads() -> int | None:
    counts = _counts(os.environ.get("OMP_NUM_THREADS", ""))
    return counts[0] if counts else None


def training_threads(requested: int | None = None) -> int:
    """``requested`` if given, else ``OMP_NUM_THREADS`` if set, else all usable cores but
    one; never more than :func:`most_threads`."""
    if requested:
        return min(max(1, int(requested)), most_threads())
    env = _env_threads()
    if env is not None:
        return min(env, most_threads())
    return max(1, usable_cores() - 1)


def clamped(requested: int | None) -> str | None:
    """The line saying that ``--threads requested`` was lowered, if it was."""
    if requested and requested > most_threads():
        return f"--threads {requested} is more than {_most()}; using {most_threads()}"
    return None


def describe(n: int, requested: int | None = None) -> str:
    """For the CLI's start line: "1 thread of 2 cores (all but one; --threads N to change)"."""
    if requested:
        why = "--threads"
    elif _env_threads() is not None:
        why = "OMP_NUM_THREADS"
    else:
        why = "all but one; --threads N to change"
    cores = usable_cores()
    return f"{n} thread{'s' if n != 1 else ''} of {cores} core{'s' if cores != 1 else ''} ({why})"
