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

from ..lazy import lazy_names

_WHERE = {
    "format": ("FORMAT", "VERSION", "SUFFIX", "MAX_FILE_BYTES", "MAX_HEADER_BYTES",
               "CheckpointError", "Checkpoint", "_seal"),
    "write": ("save_checkpoint", "save_trainer"),
    "read": ("load_checkpoint",),
}  # fmt: skip
__getattr__, __dir__, __all__ = lazy_names(__name__, _WHERE, globals())
