"""What ``latent-train`` shows: the progress bar, and the words it puts numbers and data in.
Process 0 of a run on several alone speaks."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, sparse otherwise)."""

    def __init__(self, label: str, stream=sys.stderr, width: int = 28):
        self.label, self.stream, self.width = label, stream, width
        self.tty = stream.isatty()
        self.last = -math.inf
        self.last_pct = -1

    def update(self, fraction: float, text: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        pct = int(fraction * 100)
        if not force and (now - self.last < (0.1 if self.tty else 5.0)) and pct == self.last_pct:
            return
        if not force and not self.tty and now - self.last < 5.0:
            return
        self.last, self.last_pct = now, pct
        fill = round(self.width * min(max(fraction, 0.0), 1.0))
        bar = "#" * fill + "-" * (self.width - fill)
        line = f"{self.label} [{bar}] {pct:3d}% {text}"
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def done(self, text: str = "done") -> None:
        self.update(1.0, text, force=True)
        self.close()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def describe_data(spec, data) -> str:
    return (
        f"{spec.describe()}: {len(data.train_x)} train / {len(data.test_x)} test images "
        f"of {'x'.join(map(str, data.image_shape))}, {_classes(data.num_classes)}"
    )


def _classes(k: int) -> str:
    return "no labels" if not k else f"{k} class{'es' if k != 1 else ''}"


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON in ``path``, written whole or not at all."""
    from ..files import atomic_write

    blob = (json.dumps(obj, indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(blob))


def reason(e: BaseException) -> str:
    """An error in one line; an OSError names its file: "out/x.png: No space left on device"."""
    if isinstance(e, OSError):
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return f"{name}{e.strerror or e}"
    return str(e)


def one_of_many_but_first() -> bool:
    """This is a process of a run on several other than process 0, which alone speaks: the
    others' mistakes are its mistakes too (the same options, the same data)."""
    from ..loop.distributed import launched

    return launched() and os.environ.get("RANK", "0") != "0"
