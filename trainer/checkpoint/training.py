"""The training a user's own model has had here, kept beside its weights.

A user's model (:mod:`trainer.foreign`) has no model config a checkpoint could rebuild it
from: its code builds it, and its weights are kept as a plain safetensors state dict. What
a project's checkpoint keeps besides a built-in model's weights (the training settings, the
history, the epochs and steps, the optimiser's state and where in an unfinished epoch it
stopped) is kept for it in a file of its own (``training.safetensors``): the optimiser's
tensors and the run's noise state as tensors, the rest as JSON metadata, laid out as in a
checkpoint (:mod:`trainer.checkpoint.format`) and checked field by field when read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..config import ConfigError, TrainConfig
from ..files import atomic_write, not_written, open_regular, read_problem
from ..files import printable as _printable
from ..loop.records import History
from .format import MAX_EPOCHS_DONE, MAX_FILE_BYTES, MAX_STEP, CheckpointError, _Invalid
from .schema import (
    _dtype_name,
    _finite,
    _int,
    _noise_problem,
    _optimizer,
    _position,
    _tensor_title,
)
from .write import _optimizer_to_tensors

TRAINING_FORMAT = "latent-explorer-training"
KEY = "latent_explorer_training"


@dataclass
class Training:
    """What a run of a user's model needs to continue exactly (see the module docstring)."""

    train_config: TrainConfig
    history: History
    epochs_done: int
    step: int
    optimizer_state: dict | None = None
    position: dict | None = None


def save_training(path: str | os.PathLike, t: Training) -> Path:
    """Write ``t`` to ``path`` atomically. CheckpointError if it cannot be written."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {
        "format": TRAINING_FORMAT,
        "train_config": t.train_config.to_dict(),
        "history": t.history.to_dict(),
        "epochs_done": int(t.epochs_done),
        "step": int(t.step),
        "optimizer": None,
    }
    if t.optimizer_state is not None:
        opt_tensors, meta["optimizer"] = _optimizer_to_tensors(t.optimizer_state)
        tensors.update(opt_tensors)
    pos = t.position
    if pos is not None and pos.get("epoch_images"):
        meta["position"] = {
            "epoch_images": int(pos["epoch_images"]),
            "epoch_sums": [float(v) for v in pos["epoch_sums"]],
        }
        if pos.get("noise_state") is not None:
            tensors["run/noise_state"] = pos["noise_state"].detach().cpu().contiguous()
    blob = st_save(tensors, metadata={KEY: json.dumps(meta)})
    try:
        atomic_write(path, lambda f: f.write(blob))
    except OSError as e:
        raise CheckpointError(not_written(path, e)) from None
    return path


def load_training(path: str | os.PathLike, params: list[tuple[int, ...]]) -> Training:
    """The training kept at ``path`` for a model whose trained parameters have the shapes
    ``params`` (in order). CheckpointError naming the file and the field for anything that
    does not fit."""
    path = Path(path)
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise _Invalid(f"is too large ({size:,} bytes)")
            data = f.read()
        return _read(data, params)
    except _Invalid as e:
        raise CheckpointError(_printable(f"{path}: {e}")) from None
    except OSError as e:
        raise CheckpointError(f"{path}: {read_problem(e)}") from None


def _read(data: bytes, params: list[tuple[int, ...]]) -> Training:
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        meta = json.loads(header["__metadata__"][KEY])
        tensors = st_load(data)
    except Exception:  # noqa: BLE001 - whatever the bytes are, one line says what they are not
        raise _Invalid("is not the training of a model of yours kept by Latent Explorer") from None
    if not isinstance(meta, dict) or meta.get("format") != TRAINING_FORMAT:
        raise _Invalid("is not the training of a model of yours kept by Latent Explorer")
    table = {k: {"dtype": _dtype_name(v), "shape": list(v.shape)} for k, v in tensors.items()}
    tc = meta.get("train_config")
    if not isinstance(tc, dict):
        raise _Invalid("train_config must be an object")
    try:
        train_config = TrainConfig.from_dict(tc)
    except (ConfigError, TypeError, ValueError) as e:
        raise _Invalid(f"train_config: {e}") from None
    try:
        history = History.from_dict(meta.get("history") or {})
    except ValueError as e:
        raise _Invalid(str(e)) from None
    epochs_done = _int(meta.get("epochs_done", 0), "epochs_done", 0, MAX_EPOCHS_DONE)
    step = _int(meta.get("step", history.last_step), "step", 0, MAX_STEP)
    opt, state = meta.get("optimizer"), None
    used = _optimizer(opt, params, table) if opt is not None else set()
    for k in used:
        if not _finite(tensors[k].float()):
            raise _Invalid(f"{_tensor_title(k)} holds NaN or infinite values")
    if opt is not None:
        state = {
            "param_groups": opt["param_groups"],
            "state": {
                int(pid): {
                    k: tensors[v["tensor"]].float() if isinstance(v, dict) else v
                    for k, v in entry.items()
                }
                for pid, entry in opt["state"].items()
            },
        }
    position = _position(meta.get("position"), table)
    if position is not None:
        noise = tensors.get("run/noise_state")
        if noise is not None and (why := _noise_problem(noise)):
            raise _Invalid(f"tensor run/noise_state is not a random generator's state ({why})")
        position["noise_state"] = noise
    return Training(train_config, history, epochs_done, step, state, position)
