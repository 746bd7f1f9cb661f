"""Checkpoints: one safetensors file holding weights, optimizer state and JSON metadata.

safetensors stores raw tensors and a JSON header only, so loading a checkpoint can never
execute code (unlike pickle). Files are written to a temporary file in the same folder and
renamed into place, so a crash mid-write never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ConfigError, ModelConfig, TrainConfig
from .data import DataError, DataSpec
from .files import atomic_write
from .loop import History
from .models import LatentModel, build_model

FORMAT = "latent-explorer-checkpoint"
VERSION = 1
SUFFIX = ".safetensors"


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message names the file and the fault."""


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


def _optimizer_from_tensors(skeleton: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for pid, entry in skeleton["state"].items():
        state[int(pid)] = {
            k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for k, v in entry.items()
        }
    return {"state": state, "param_groups": skeleton["param_groups"]}


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
) -> Path:
    """Write a checkpoint atomically; returns the path written.

    With ``optimizer_state``, ``step`` (default: the history's last) and, for a run stopped
    inside an epoch, ``position`` (``Trainer.position()``), training continues from the file
    exactly as if it had never stopped.
    """
    history = history or History()
    path = Path(path)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
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
    try:
        blob = st_save(tensors, metadata={"latent_explorer": json.dumps(meta)})
        atomic_write(path, lambda f: f.write(blob))
    except OSError as e:
        raise CheckpointError(f"{path}: could not be written ({e.strerror or e})") from None
    return path


def save_trainer(
    path: str | os.PathLike, trainer, data_spec: DataSpec | None, class_names: list[str]
) -> Path:
    """Save a :class:`~trainer.loop.Trainer` as it stands (call between two steps): weights
    and optimiser state of the same step, so that training continues from it exactly."""
    return save_checkpoint(
        path, trainer.model, trainer.config, data_spec=data_spec, class_names=class_names,
        history=trainer.history, optimizer_state=trainer.optimizer.state_dict(),
        epochs_done=trainer.epochs_done, step=trainer.step, position=trainer.position(),
    )  # fmt: skip


def _read_header(path: Path, raw: bytes) -> dict:
    if len(raw) < 8:
        raise CheckpointError(f"{path}: not a checkpoint (file is only {len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8 or n > 100_000_000:
        raise CheckpointError(
            f"{path}: not a safetensors checkpoint, or truncated (header of {n} bytes, "
            f"file of {len(raw)})"
        )
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a safetensors checkpoint (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors checkpoint (bad header)")
    return header


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint and rebuild its model (in eval mode) on ``device``.

    Raises :class:`CheckpointError` naming the file for a missing, corrupt, truncated,
    foreign or mismatched file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    header = _read_header(path, raw)
    meta_raw = (header.get("__metadata__") or {}).get("latent_explorer")
    if meta_raw is None:
        raise CheckpointError(
            f"{path}: a safetensors file, but not a Latent Explorer checkpoint (no metadata)"
        )
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: checkpoint metadata is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: written by a newer version (format {meta.get('version')}); "
            "update Latent Explorer to open it"
        )
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated tensor data ({e})") from None
    try:
        model_config = ModelConfig.from_dict(meta["model_config"])
        train_config = TrainConfig.from_dict(meta["train_config"])
        data_spec = DataSpec.from_dict(meta["data_spec"]) if meta.get("data_spec") else None
    except (ConfigError, DataError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid settings in checkpoint ({e})") from None
    model = build_model(model_config)
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: weights do not match the model described in the file"
            + (f"; missing {', '.join(missing[:5])}" if missing else "")
            + (f"; unexpected {', '.join(extra[:5])}" if extra else "")
        )
    for k, v in weights.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(
                f"{path}: weight {k} has shape {tuple(v.shape)}, the model needs "
                f"{tuple(expected[k].shape)}"
            )
    model.load_state_dict(weights)
    model.to(device).eval()
    opt = None
    if meta.get("optimizer"):
        try:
            opt = _optimizer_from_tensors(meta["optimizer"], tensors)
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: optimizer state is corrupt ({e})") from None
    history = History.from_dict(meta.get("history") or {})
    position = None
    if isinstance(meta.get("position"), dict):
        position = dict(meta["position"], noise_state=tensors.get("run/noise_state"))
    return Checkpoint(
        model=model,
        model_config=model_config,
        train_config=train_config,
        data_spec=data_spec,
        class_names=list(meta.get("class_names") or []),
        history=history,
        optimizer_state=opt,
        epochs_done=int(meta.get("epochs_done", 0)),
        step=int(meta.get("step", history.last_step)),
        position=position,
        path=path,
    )
