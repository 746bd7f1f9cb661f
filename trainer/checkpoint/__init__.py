"""Checkpoints: one safetensors file holding weights, optimizer state and JSON metadata.

=================  ============================================================================
``format``         the file's layout, its limits and its seal; :class:`Checkpoint`
``schema``         checking a header and its metadata before anything is allocated
``write``          :func:`save_checkpoint`, :func:`save_trainer`
``read``           :func:`load_checkpoint`
=================  ============================================================================

The names below are this package's, as importers have always used them
(``from trainer.checkpoint import load_checkpoint``), looked up on first use (PEP 562) like
those of :mod:`trainer.data` and :mod:`trainer.loop`.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "format": ("FORMAT", "VERSION", "SUFFIX", "MAX_FILE_BYTES", "MAX_HEADER_BYTES",
               "CheckpointError", "Checkpoint", "_seal"),
    "write": ("save_checkpoint", "save_trainer"),
    "read": ("load_checkpoint",),
}  # fmt: skip
_MODULE = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(n for n in _MODULE if not n.startswith("_"))


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # looked up each time (not copied here): a name patched where it is defined is seen
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE})
