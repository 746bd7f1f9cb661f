"""Writing a checkpoint: atomically (a temporary file renamed into place), sealed by its
checksum, and checked as a reader would check it before it is kept."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from ..config import TrainConfig
from ..data.spec import DataSpec
from ..files import atomic_write, not_written
from ..files import printable as _printable
from ..loop.records import History
from ..models import LatentModel
from .format import _CHECKSUM, _PLACEHOLDER, FORMAT, VERSION, CheckpointError, _Invalid, _seal
from .schema import _check_meta, _dtype_name, _finite, _noise_problem, _tensor_title


def _optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors and a JSON-able skeleton."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        entry = {}
        for k, v in pstate.items():
            if torch.is_tensor(v):
                key = f"optim/{pid}/{k}"
                tensors[key] = v.detach().cpu().contiguous()
                entry[k] = {"tensor": key}
            else:
                entry[k] = v
        skeleton["state"][str(pid)] = entry
    return tensors, skeleton


def save_checkpoint(
    path: str | os.PathLike,
    model: LatentModel,
    train_config: TrainConfig,
    data_spec: DataSpec | None = None,
    class_names: list[str] | None = None,
    history: History | None = None,
    optimizer_state: dict | None = None,
    epochs_done: int = 0,
    step: int | None = None,
    position: dict | None = None,
    weights_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a checkpoint atomically; returns the path written.

    Parameters
    ----------
    path
        The file to write (``.safetensors``); its folder must exist.
    model, train_config
        The model (its config is saved with it) and the training settings it was trained
        with (their learning rate is the one a continued run trains at).
    data_spec, class_names
        The data it was trained on, to find it again, and the names of its classes.
    history, optimizer_state, epochs_done, step, position
        What training needs to continue from the file exactly as if it had never stopped:
        ``step`` defaults to the history's last; ``position`` (``Trainer.position()``) is
        where in an unfinished epoch a run stopped.
    weights_dtype
        float16 or bfloat16 stores the weights in half the space (for bundled models;
        loading reads them back as float32).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    CheckpointError
        The file could not be written, or would not load (weights that are not finite, or
        too large for float16, say).
    """
    if weights_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"weights are stored as float32, float16 or bfloat16, not {weights_dtype}")
    history = history or History()
    path = Path(path)
    tensors = {
        f"model/{k}": v.detach()
        .cpu()
        .to(weights_dtype if v.is_floating_point() else v.dtype)
        .contiguous()
        for k, v in model.state_dict().items()
    }
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "data_spec": data_spec.to_dict() if data_spec else None,
        "class_names": list(class_names or []),
        "history": history.to_dict(),
        "epochs_done": epochs_done,
        "step": history.last_step if step is None else int(step),
        "optimizer": None,
    }
    if optimizer_state is not None:
        opt_tensors, meta["optimizer"] = _optimizer_to_tensors(optimizer_state)
        tensors.update(opt_tensors)
    if position is not None and position.get("epoch_images"):
        meta["position"] = {
            "epoch_images": int(position["epoch_images"]),
            "epoch_sums": [float(v) for v in position["epoch_sums"]],
        }
        if position.get("noise_state") is not None:
            tensors["run/noise_state"] = position["noise_state"].detach().cpu().contiguous()
    meta["checksum"] = f"{_CHECKSUM}:{_PLACEHOLDER}"
    text = json.dumps(meta)
    try:  # what this writes, load_checkpoint reads: check it as that will
        table = {k: {"dtype": _dtype_name(v), "shape": list(v.shape)} for k, v in tensors.items()}
        _check_meta(json.loads(text), table)
        for k, v in tensors.items():
            if v.is_floating_point() and not _finite(v):
                raise _Invalid(f"{_tensor_title(k)} holds NaN or infinite values")
        noise = tensors.get("run/noise_state")
        if noise is not None and noise.dtype == torch.uint8 and (why := _noise_problem(noise)):
            raise _Invalid(f"tensor run/noise_state is not a random generator's state ({why})")
    except _Invalid as e:
        raise CheckpointError(
            _printable(f"{path}: not saved, as it could not be opened again ({e})")
        ) from None
    try:
        parts = _seal(st_save(tensors, metadata={"latent_explorer": text}))
        atomic_write(path, lambda f: [f.write(part) for part in parts])
    except OSError as e:
        raise CheckpointError(not_written(path, e)) from None
    return path


def save_trainer(
    path: str | os.PathLike, trainer, data_spec: DataSpec | None, class_names: list[str]
) -> Path:
    """Save a :class:`~trainer.loop.Trainer` as it stands (call between two steps): weights
    and optimiser state of the same step, so that training continues from it exactly."""
    return save_checkpoint(
        path,
        trainer.model,
        trainer.config,
        data_spec=data_spec,
        class_names=class_names,
        history=trainer.history,
        optimizer_state=trainer.optimizer.state_dict(),
        epochs_done=trainer.epochs_done,
        step=trainer.step,
        position=trainer.position(),
    )
