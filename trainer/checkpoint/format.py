"""The checkpoint format: one safetensors file holding weights, optimizer state and JSON metadata.

safetensors stores raw tensors and a JSON header only, so loading a checkpoint can never
execute code (unlike pickle). Files are written to a temporary file in the same folder and
renamed into place, so a crash mid-write never leaves a half-written checkpoint behind.

Reading trusts nothing in the file: the whole header is checked against the layout below
(types, ranges, sizes, and the tensors the described model needs) before anything is
allocated, and a SHA-256 digest of the file, kept in the metadata, is checked before any
value is used. The metadata (``"latent_explorer"`` in the header, a JSON object):

- ``format``, ``version``: ``"latent-explorer-checkpoint"``, 1
- ``model_config``, ``train_config``: :class:`ModelConfig` / :class:`TrainConfig` fields
- ``data_spec``: :class:`DataSpec` fields, or null; ``class_names``: list of str
- ``history``: :meth:`History.to_dict`; ``epochs_done``, ``step``: integers
- ``optimizer``: null, or the optimizer's ``state_dict()`` with each tensor replaced by
  ``{"tensor": NAME}`` (stored as ``optim/PARAM/KEY``)
- ``position``: where in an unfinished epoch the run stopped (``epoch_images``,
  ``epoch_sums``; the noise generator's state is the tensor ``run/noise_state``)
- ``checksum``: ``"sha256:HEX"``, the digest of the whole file as written with 64 zeros in
  place of HEX. Required: every released version wrote one, so a file without one was
  damaged (a flipped bit in the key's name is enough) or made by something else.

Weights are ``model/NAME``. The format is at version 1.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import ModelConfig, TrainConfig
from ..data.spec import DataSpec
from ..loop.records import History
from ..models import LatentModel

FORMAT = "latent-explorer-checkpoint"
VERSION = 1
SUFFIX = ".safetensors"

# far above what a model of this app weighs in practice (an MLP for 64x64 colour images with
# 8192 hidden units and its Adam state: 2.4 GB), far below a runaway allocation
MAX_FILE_BYTES = 32 * 2**30
MAX_HEADER_BYTES = 100_000_000
MAX_EPOCHS_DONE = 10**9  # epochs of all runs of a model (the window counts in 32-bit ints)
MAX_STEP = 2**53  # optimiser steps (a float holds every integer up to it)
MAX_NAME_CHARS = 1000  # a class name
MAX_PATH_CHARS = 32_767  # a data file or folder
MAX_NOISE_BYTES = 65_536  # a random generator's state (5056 bytes on a CPU, 16 on CUDA)

_CHECKSUM = "sha256"
_PLACEHOLDER = "0" * 64
_CHECKSUM_FORM = re.compile(rf"{_CHECKSUM}:[0-9a-f]{{64}}")

# safetensors' dtypes and their sizes in bytes; weights may be any floating one (converted)
_DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_FLOATS = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")
_ADAM_FLAGS = ("foreach", "capturable", "differentiable", "fused", "decoupled_weight_decay")


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message names the file and the fault."""


class _Invalid(Exception):
    """What is wrong with a file (the caller adds the file's name)."""


@dataclass
class Checkpoint:
    model: LatentModel
    model_config: ModelConfig
    train_config: TrainConfig
    data_spec: DataSpec | None = None
    class_names: list[str] = field(default_factory=list)
    history: History = field(default_factory=History)
    optimizer_state: dict | None = None
    epochs_done: int = 0
    step: int = 0  # optimiser steps the model has had
    position: dict | None = None  # inside an unfinished epoch (see Trainer.position)
    path: Path | None = None


def _seal(blob: bytes) -> list:
    """``blob`` (written with the placeholder checksum) with its real checksum filled in, as
    pieces to write one after the other (a large file is not copied for it)."""
    (n,) = struct.unpack("<Q", blob[:8])
    mark = f"{_CHECKSUM}:{_PLACEHOLDER}".encode()
    at = blob.find(mark, 8, 8 + n)
    if at < 0:
        raise ValueError("the metadata holds no checksum to fill in")
    digest = hashlib.sha256(blob).hexdigest().encode()
    start = at + len(_CHECKSUM) + 1
    view = memoryview(blob)
    return [view[:start], digest, view[start + len(digest) :]]
