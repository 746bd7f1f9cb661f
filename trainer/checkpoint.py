"""Checkpoints: one safetensors file holding weights, optimizer state and JSON metadata.

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

import functools
import hashlib
import json
import math
import os
import re
import stat
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save as st_save

from .config import (
    MAX_BATCH,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_HIDDEN,
    MAX_LATENT,
    MAX_SEED,
    MAX_SIDE,
    MIN_HIDDEN,
    ConfigError,
    ModelConfig,
    TrainConfig,
    is_int,
    is_real,
    shown,
)
from .data import DataError, DataSpec
from .files import NotRegularFile, atomic_write, not_written, open_regular, read_problem
from .files import printable as _printable
from .loop import History
from .models import LatentModel, build_model

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
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
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


# -- writing ----------------------------------------------------------------------------------
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

    With ``optimizer_state``, ``step`` (default: the history's last) and, for a run stopped
    inside an epoch, ``position`` (``Trainer.position()``), training continues from the file
    exactly as if it had never stopped. ``weights_dtype`` float16 or bfloat16 stores the
    weights in half the space (for bundled models; loading reads them back as float32).
    Raises :class:`CheckpointError` for a file that could not be written, or one that would
    not load (weights that are not finite, or too large for float16, say).
    """
    if weights_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"weights are stored as float32, float16 or bfloat16, not {weights_dtype}")
    history = history or History()
    path = Path(path)
    tensors = {
        f"model/{k}": v.detach().cpu().to(weights_dtype if v.is_floating_point() else v.dtype)
        .contiguous()
        for k, v in model.state_dict().items()
    }  # fmt: skip
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
        path, trainer.model, trainer.config, data_spec=data_spec, class_names=class_names,
        history=trainer.history, optimizer_state=trainer.optimizer.state_dict(),
        epochs_done=trainer.epochs_done, step=trainer.step, position=trainer.position(),
    )  # fmt: skip


def _finite(t: torch.Tensor) -> bool:
    """Whether a floating tensor holds no NaN or infinity (one pass: NaN propagates)."""
    if not t.numel():
        return True
    lo, hi = torch.aminmax(t)
    return math.isfinite(float(lo)) and math.isfinite(float(hi))


def _dtype_name(t: torch.Tensor) -> str:
    names = {v: k for k, v in _FLOATS.items()} | {torch.uint8: "U8", torch.int64: "I64"}
    return names.get(t.dtype, str(t.dtype))


# -- checking the metadata --------------------------------------------------------------------
def _fail(where: str, must: str, value: Any) -> None:
    raise _Invalid(f"{where} must be {must}, not {shown(value)}")


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if not (is_int(v) and lo <= v <= hi):
        _fail(where, f"an integer {lo} to {hi}", v)
    return v


def _real(v: Any, where: str) -> float:
    if not is_real(v):
        _fail(where, "a finite number", v)
    return v


def _str(v: Any, where: str, max_chars: int = 100) -> str:
    if not isinstance(v, str) or len(v) > max_chars:
        _fail(where, f"a text of at most {max_chars} characters", v)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        _fail(where, "valid text", v)
    return v


def _obj(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        _fail(where, "an object", v)
    return v


def _only(d: dict, where: str, known) -> None:
    unknown = sorted(set(d) - set(known), key=str)
    if unknown:
        raise _Invalid(f"{where} has an unknown field {shown(unknown[0])}")


# The fields of each settings object: ("int", lo, hi), ("real",), ("str",), ("path",) (a
# file name or null), ("real?",) (a number or null), ("shape",). Ranges of numbers are the
# objects' own checks (run after these), save for integers, checked here first.
_MODEL_FIELDS = {
    "model": ("str",), "arch": ("str",), "latent_dim": ("int", 1, MAX_LATENT),
    "hidden": ("int", MIN_HIDDEN, MAX_HIDDEN), "image_shape": ("shape",),
    "likelihood": ("str",), "gaussian_std": ("real?",), "num_classes": ("int", 0, MAX_CLASSES),
}  # fmt: skip
_TRAIN_FIELDS = {
    "epochs": ("int", 1, MAX_EPOCHS), "batch_size": ("int", 1, MAX_BATCH), "lr": ("real",),
    "beta": ("real",), "warmup_epochs": ("real",), "seed": ("int", 0, MAX_SEED),
    "device": ("str",), "snapshot_hz": ("real",), "weights_hz": ("real",),
    "data_memory": ("real?",), "precision": ("str",),
}  # fmt: skip
_DATA_FIELDS = {
    "source": ("str",), "images": ("path",), "labels": ("path",), "root": ("path",),
    "image_size": ("int", 1, MAX_SIDE), "test_fraction": ("real",),
    "seed": ("int", 0, MAX_SEED), "shapes_count": ("int", 0, 2**31 - 1), "bundle": ("path",),
    "background": ("str",),
}  # fmt: skip


def _check_fields(d: Any, where: str, spec: dict, strict: bool = True) -> dict:
    _obj(d, where)
    if strict:
        _only(d, where, spec)
    for name, (kind, *bounds) in spec.items():
        if name not in d:
            continue
        v, at = d[name], f"{where}.{name}"
        if kind == "int":
            _int(v, at, *bounds)
        elif kind == "real":
            _real(v, at)
        elif kind == "str":
            _str(v, at)
        elif kind == "real?" and v is not None:
            _real(v, at)
        elif kind == "path" and v is not None:
            _str(v, at, MAX_PATH_CHARS)
            if "\0" in v:
                _fail(at, "a file name", v)
        elif kind == "shape":
            if not (isinstance(v, list) and len(v) == 3 and all(is_int(n) for n in v)):
                _fail(at, "[channels, height, width]", v)
            if v[0] not in (1, 3) or not all(1 <= n <= MAX_SIDE for n in v[1:]):
                _fail(at, f"[1 or 3, 1 to {MAX_SIDE}, 1 to {MAX_SIDE}]", v)
    return d


def _settings(meta: dict) -> tuple[ModelConfig, TrainConfig, DataSpec | None]:
    for key in ("model_config", "train_config"):
        if key not in meta:
            raise _Invalid(f"the metadata has no {key}")
    mc = _check_fields(meta["model_config"], "model_config", _MODEL_FIELDS)
    tc = _check_fields(meta["train_config"], "train_config", _TRAIN_FIELDS)
    ds = meta.get("data_spec")
    if ds is not None:
        _check_fields(ds, "data_spec", _DATA_FIELDS, strict=False)
        _only(ds, "data_spec", DataSpec.__dataclass_fields__)
        if "source" not in ds:
            raise _Invalid("data_spec has no source")
    try:
        model_config = ModelConfig.from_dict(mc)
    except ConfigError as e:
        raise _Invalid(f"model_config: {e}") from None
    try:
        train_config = TrainConfig.from_dict(tc)
    except ConfigError as e:
        raise _Invalid(f"train_config: {e}") from None
    try:
        data_spec = DataSpec.from_dict(ds) if ds is not None else None
    except (DataError, ValueError, TypeError) as e:
        raise _Invalid(f"data_spec: {e}") from None
    return model_config, train_config, data_spec


def _class_names(meta: dict, config: ModelConfig) -> list[str]:
    names = meta.get("class_names")
    if names is None or names == []:  # none recorded: a conditional model's are numbered
        return [str(k) for k in range(config.num_classes)] if config.conditional else []
    if not isinstance(names, list) or len(names) > MAX_CLASSES:
        _fail("class_names", f"a list of at most {MAX_CLASSES} names", names)
    for i, name in enumerate(names):
        _str(name, f"class_names[{i}]", MAX_NAME_CHARS)
        if not name.strip():
            _fail(f"class_names[{i}]", "a name", name)
    if config.conditional and len(names) != config.num_classes:
        raise _Invalid(
            f"class_names names {len(names)} classes, the conditional model has "
            f"{config.num_classes}"
        )
    return list(names)


def _tensor_ref(v: Any, where: str, table: dict) -> str:
    if not (isinstance(v, dict) and set(v) == {"tensor"} and isinstance(v["tensor"], str)):
        _fail(where, 'a tensor reference {"tensor": NAME}', v)
    name = v["tensor"]
    if not name.startswith("optim/") or name not in table:
        raise _Invalid(f"{where} refers to a tensor the file does not hold ({shown(name)})")
    return name


def _optimizer(opt: Any, params: list[tuple[int, ...]], table: dict) -> set[str]:
    """Check the optimizer skeleton against the model's trainable parameters' shapes;
    returns the names of the tensors it refers to."""
    _obj(opt, "optimizer")
    _only(opt, "optimizer", ("param_groups", "state"))
    groups = opt.get("param_groups")
    if not (isinstance(groups, list) and len(groups) == 1):
        _fail("optimizer.param_groups", "a list of one group", groups)
    group = _obj(groups[0], "optimizer.param_groups[0]")
    where = "optimizer.param_groups[0]"
    if group.get("params") != list(range(len(params))) or not all(
        is_int(i) for i in group["params"]
    ):
        _fail(f"{where}.params", f"the list [0, …, {len(params) - 1}]", group.get("params"))
    for key, v in group.items():
        at = f"{where}.{key}"
        if key == "params":
            continue
        if key == "lr":
            if not (is_real(v) and 0 < v <= 1):
                _fail(at, "a number in (0, 1]", v)
        elif key == "betas":
            if not (isinstance(v, list) and len(v) == 2 and all(is_real(b) for b in v)):
                _fail(at, "two numbers", v)
            if not all(0 <= b < 1 for b in v):
                _fail(at, "two numbers from 0 to below 1", v)
        elif key in ("eps", "weight_decay"):
            if not (is_real(v) and v >= 0):
                _fail(at, "a number of at least 0", v)
            if key == "eps" and not v <= 1e-2:  # Adam's is 1e-8: a large one stalls training
                _fail(at, "a number from 0 to 0.01", v)
            if key == "weight_decay" and v != 0:
                _fail(at, "0 (this optimizer has no weight decay)", v)
        elif key in ("amsgrad", "maximize"):
            if v is not False:
                _fail(at, "false", v)
        elif key in _ADAM_FLAGS:
            if not (v is None or isinstance(v, bool)):
                _fail(at, "true, false or null", v)
        elif not (v is None or isinstance(v, bool) or is_real(v)):  # what torch adds later
            _fail(at, "true, false, null or a number", v)
    state = _obj(opt.get("state"), "optimizer.state")
    used = set()
    for key, entry in state.items():
        where = f"optimizer.state.{key}"
        if not (re.fullmatch(r"0|[1-9][0-9]{0,9}", key) and int(key) < len(params)):
            raise _Invalid(f"optimizer.state has an entry for an unknown parameter {shown(key)}")
        shape = params[int(key)]
        _obj(entry, where)
        _only(entry, where, _ADAM_STATE)
        for k in _ADAM_STATE:
            if k not in entry:
                raise _Invalid(f"{where} has no {k}")
        step = entry["step"]
        if is_real(step):  # a number in checkpoints of older torch versions
            if step < 0:
                _fail(f"{where}.step", "a number of at least 0", step)
        elif not isinstance(step, dict):
            _fail(f"{where}.step", "a number or a tensor reference", step)
        else:
            name = _tensor_ref(step, f"{where}.step", table)
            if table[name]["shape"] not in ([], [1]):
                raise _Invalid(f"{where}.step must be a single number")
            used.add(name)
        for k in ("exp_avg", "exp_avg_sq"):
            name = _tensor_ref(entry[k], f"{where}.{k}", table)
            if tuple(table[name]["shape"]) != shape:
                raise _Invalid(
                    f"{where}.{k} has shape {tuple(table[name]['shape'])}, the parameter has "
                    f"{shape}"
                )
            used.add(name)
    return used


def _position(pos: Any, table: dict) -> dict | None:
    if pos is None:
        return None
    _obj(pos, "position")
    _only(pos, "position", ("epoch_images", "epoch_sums"))
    n = _int(pos.get("epoch_images", 0), "position.epoch_images", 0, MAX_STEP)
    sums = pos.get("epoch_sums", [0.0, 0.0, 0.0])
    if not (isinstance(sums, list) and len(sums) == 3 and all(is_real(v) for v in sums)):
        _fail("position.epoch_sums", "three finite numbers", sums)
    noise = table.get("run/noise_state")
    if noise is not None and not (
        noise["dtype"] == "U8" and len(noise["shape"]) == 1
        and 1 <= noise["shape"][0] <= MAX_NOISE_BYTES
    ):  # fmt: skip
        raise _Invalid(
            f"tensor run/noise_state must be a random generator's state (bytes), not "
            f"{noise['dtype']} of shape {tuple(noise['shape'])}"
        )
    return {"epoch_images": n, "epoch_sums": [float(v) for v in sums]}


@functools.cache
def _cpu_state_bytes() -> int:
    return torch.Generator().get_state().numel()


def _noise_problem(state: torch.Tensor) -> str | None:
    """What keeps ``state`` from being set on the generator it came from, if anything: a CPU
    generator's (Mersenne Twister, checked by setting it on a scratch one) or a CUDA one's
    (a seed and an offset that is a multiple of 4). States of other sizes are never set:
    a run goes on from them with fresh noise (see ``Trainer``)."""
    if state.numel() == _cpu_state_bytes():
        try:
            torch.Generator().set_state(state)
        except RuntimeError as e:
            return str(e).splitlines()[0] if str(e) else "refused by the generator"
    elif state.numel() == 16:
        offset = int.from_bytes(bytes(state[8:].tolist()), "little")
        if offset % 4:
            return f"its offset {offset} is not a multiple of 4"
    return None


def _tensor_title(name: str) -> str:
    if name.startswith("model/"):
        return f"weight {name[len('model/') :]}"
    if name.startswith("optim/"):
        return f"optimizer tensor {name[len('optim/') :]}"
    return f"tensor {name}"


@dataclass
class _Plan:
    """What a checked header describes, before any tensor data is read."""

    model_config: ModelConfig
    train_config: TrainConfig
    data_spec: DataSpec | None
    class_names: list[str]
    history: History
    epochs_done: int
    step: int
    optimizer: dict | None
    position: dict | None
    floats: list[str]  # tensors to read as float32
    noise: bool  # whether to read run/noise_state


def _check_version(meta: dict) -> None:
    version = meta.get("version", VERSION)
    _int(version, "version", 0, 2**31 - 1)
    if version > VERSION:
        raise _Invalid(
            f"written by a newer version (format {version}); update Latent Explorer to open it"
        )


def _checksum(meta: dict) -> str:
    """The file's SHA-256 digest (hex) that the metadata records."""
    checksum = meta.get("checksum")
    if checksum is None:
        raise _Invalid(
            "has no checksum, so whether it is intact cannot be told: it is damaged, or was "
            "not written by Latent Explorer"
        )
    if not (isinstance(checksum, str) and _CHECKSUM_FORM.fullmatch(checksum)):
        _fail("checksum", f'"{_CHECKSUM}:" and 64 hexadecimal digits', checksum)
    return checksum[len(_CHECKSUM) + 1 :]


def _check_meta(meta: dict, table: dict) -> _Plan:
    """Check the metadata against the layout in the module docstring and the tensors that
    ``table`` ({name: {"dtype", "shape"}}) declares; raises _Invalid naming the field."""
    _check_version(meta)
    _checksum(meta)
    model_config, train_config, data_spec = _settings(meta)
    class_names = _class_names(meta, model_config)
    history = meta.get("history")
    try:  # null (as missing) is no history; 0, "" or [] are not histories
        history = History.from_dict({} if history is None else history)
    except ValueError as e:
        raise _Invalid(str(e)) from None
    epochs_done = _int(meta.get("epochs_done", 0), "epochs_done", 0, MAX_EPOCHS_DONE)
    step = _int(meta.get("step", history.last_step), "step", 0, MAX_STEP)

    # the tensors the described model has, without allocating them
    try:
        expected, params = _layout(model_config)
    except ConfigError as e:  # too large to build
        raise _Invalid(f"model_config: {e}") from None
    declared = {k for k in table if k.startswith("model/")}
    missing, extra = sorted(set(expected) - declared), sorted(declared - set(expected))
    if missing or extra:
        raise _Invalid(
            "weights do not match the model described in the file"
            + (f"; missing {', '.join(k[6:] for k in missing[:5])}" if missing else "")
            + (f"; unexpected {', '.join(k[6:] for k in extra[:5])}" if extra else "")
        )
    for k, shape in expected.items():
        if tuple(table[k]["shape"]) != shape:
            raise _Invalid(
                f"{_tensor_title(k)} has shape {tuple(table[k]['shape'])}, the model needs {shape}"
            )
    opt = meta.get("optimizer")
    used = _optimizer(opt, params, table) if opt is not None else set()
    unused = sorted(k for k in table if k.startswith("optim/") and k not in used)
    if unused:
        raise _Invalid(f"the optimizer state does not refer to tensor {unused[0]}")
    position = _position(meta.get("position"), table)
    floats = sorted(expected) + sorted(used)
    for k in floats:
        if table[k]["dtype"] not in _FLOATS:
            raise _Invalid(
                f"{_tensor_title(k)} is stored as {table[k]['dtype']}; a checkpoint holds "
                "floating-point numbers (F32, F16, BF16 or F64)"
            )
    return _Plan(
        model_config, train_config, data_spec, class_names, history, epochs_done, step, opt,
        position, floats, noise=position is not None and "run/noise_state" in table,
    )  # fmt: skip


def _shell(config: ModelConfig) -> LatentModel:
    """The model ``config`` describes, on the meta device (no memory yet)."""
    with torch.device("meta"):
        return build_model(config)


@functools.lru_cache(maxsize=16)
def _layout(config: ModelConfig) -> tuple[dict[str, tuple], list[tuple]]:
    """The weights' names and shapes, and the trained parameters' shapes, of the model
    ``config`` describes (read only). Kept per configuration: a run's every autosave checks
    the same one, and building even a meta-device model at each save is work the training
    thread need not do."""
    shell = _shell(config)
    expected = {f"model/{k}": tuple(v.shape) for k, v in shell.state_dict().items()}
    return expected, [tuple(p.shape) for p in shell.parameters() if p.requires_grad]


# -- reading ----------------------------------------------------------------------------------
def _open(path: Path) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading: (file, size). Only a regular file is opened at all
    (a named pipe would block, a device never end)."""
    try:
        f = open_regular(path)
    except IsADirectoryError:
        raise _Invalid("is a folder, not a checkpoint file") from None
    except NotRegularFile as e:
        raise _Invalid(f"is not a regular file (it is {_kind(e.mode)})") from None
    except OSError as e:
        raise _Invalid(read_problem(e)) from None
    except ValueError:  # a NUL character in it
        raise _Invalid("is not a valid file name") from None
    size = os.fstat(f.fileno()).st_size
    if size > MAX_FILE_BYTES:
        f.close()
        raise _Invalid(
            f"is too large to be a checkpoint ({size / 2**30:.0f} GiB; at most "
            f"{MAX_FILE_BYTES // 2**30} GiB)"
        )
    return f, size


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a file")


def _read_exactly(f, n: int, what: str) -> torch.Tensor:
    """``n`` bytes of ``f``, into an uninitialised uint8 tensor (no copy, no zeroing)."""
    buf = torch.empty(n, dtype=torch.uint8)
    got = f.readinto(buf.numpy()) if n else 0
    if got != n:
        raise _Invalid(f"truncated ({what}: {got} of {n} bytes)")
    return buf


def _header(raw: bytes, size: int) -> tuple[dict, dict, int]:
    """The safetensors header: (metadata, tensor table, data size); checks the table."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise _Invalid("not a safetensors checkpoint (header nested too deeply)") from None
    except ValueError:  # JSON, UTF-8 or a number of too many digits
        raise _Invalid("not a safetensors checkpoint (unreadable header)") from None
    if not isinstance(header, dict):
        raise _Invalid("not a safetensors checkpoint (bad header)")
    info = header.pop("__metadata__", None)
    if not isinstance(info, dict) or not isinstance(info.get("latent_explorer"), str):
        raise _Invalid("a safetensors file, but not a Latent Explorer checkpoint (no metadata)")
    if not all(isinstance(v, str) for v in info.values()):  # safetensors: text to text
        raise _Invalid("not a safetensors checkpoint (its metadata holds more than texts)")
    data_size = size - 8 - len(raw)
    spans = []
    for name, t in header.items():
        where = f"tensor {name}"
        if not (isinstance(t, dict) and {"dtype", "shape", "data_offsets"} <= set(t)):
            raise _Invalid(f"{where} is described wrongly in the header")
        dtype, shape, offsets = t["dtype"], t["shape"], t["data_offsets"]
        if not (isinstance(dtype, str) and dtype in _DTYPE_SIZES):
            raise _Invalid(f"{where} has an unknown dtype {shown(dtype)}")
        if not (
            isinstance(shape, list) and len(shape) <= 8
            and all(is_int(n) and 0 <= n <= MAX_FILE_BYTES for n in shape)
        ):  # fmt: skip
            _fail(f"{where}: its shape", "a list of sizes", shape)
        if not (
            isinstance(offsets, list) and len(offsets) == 2
            and all(is_int(n) for n in offsets) and 0 <= offsets[0] <= offsets[1]
        ):  # fmt: skip
            _fail(f"{where}: its data_offsets", "[start, end]", offsets)
        if offsets[1] > data_size:
            raise _Invalid(
                f"corrupt or truncated tensor data ({where} ends at byte {offsets[1]}, the "
                f"file holds {data_size})"
            )
        if math.prod(shape) * _DTYPE_SIZES[dtype] != offsets[1] - offsets[0]:
            raise _Invalid(f"{where} is described wrongly in the header (size)")
        spans.append(offsets)
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise _Invalid("corrupt or truncated tensor data (tensors overlap or leave gaps)")
        end = stop
    if end != data_size:
        raise _Invalid(
            f"corrupt or truncated tensor data ({data_size} bytes after the header, the "
            f"tensors take {end})"
        )
    return info, header, data_size


def _decode(data: torch.Tensor, t: dict, dtype: torch.dtype) -> torch.Tensor:
    """Tensor ``t`` of the table, a view of ``data`` (the bytes after the header) where it
    can be, else a copy (the file may put it at an offset that is not a multiple of its
    element size)."""
    start, stop = t["data_offsets"]
    size = dtype.itemsize
    raw = data[start:stop]
    if start % size:
        raw = raw.clone()
    if sys.byteorder == "big" and size > 1:  # safetensors is little-endian
        raw = raw.view(-1, size).flip(1).reshape(-1)
    return raw.view(dtype).reshape(t["shape"])


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint and rebuild its model (in eval mode) on ``device``.

    Raises :class:`CheckpointError` naming the file (and the field or tensor at fault) for
    anything else than a regular, readable, intact checkpoint whose metadata and tensors
    are all of the right types, sizes and ranges; nothing is allocated for the model before
    its size is known to match the file.
    """
    path = Path(path)
    try:
        return _load(path, device)
    except _Invalid as e:
        raise CheckpointError(_printable(f"{path}: {e}")) from None
    except OSError as e:
        raise CheckpointError(f"{path}: {read_problem(e)}") from None
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to load it") from None
    except RuntimeError as e:  # torch's allocators say so with a RuntimeError
        if isinstance(e, torch.OutOfMemoryError) or "memory" in str(e):
            raise CheckpointError(f"{path}: not enough memory to load it") from None
        raise


def _load(path: Path, device: str | torch.device) -> Checkpoint:
    f, size = _open(path)
    with f:
        if size < 8:
            raise _Invalid(f"not a checkpoint (file is only {size} bytes)")
        prefix = _read_exactly(f, 8, "header size").numpy().tobytes()
        (n,) = struct.unpack("<Q", prefix)
        if n > size - 8 or n > MAX_HEADER_BYTES:
            raise _Invalid(
                f"not a safetensors checkpoint, or truncated (header of {n} bytes, file of {size})"
            )
        raw = _read_exactly(f, n, "header").numpy().tobytes()
        info, table, data_size = _header(raw, size)
        try:
            meta = json.loads(info["latent_explorer"])
        except RecursionError:
            raise _Invalid("checkpoint metadata is corrupt (nested too deeply)") from None
        except ValueError:
            raise _Invalid("checkpoint metadata is corrupt") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise _Invalid("not a Latent Explorer checkpoint")
        _check_version(meta)  # a newer format may differ in anything below
        checksum = _checksum(meta)
        data = _read_exactly(f, data_size, "tensor data")
    # of the whole file, as written with the placeholder
    at = raw.find(f"{_CHECKSUM}:{checksum}".encode())  # where the metadata holds it
    digest = hashlib.sha256(prefix)
    if at >= 0:
        at += len(_CHECKSUM) + 1
        digest.update(raw[:at] + _PLACEHOLDER.encode() + raw[at + 64 :])
        digest.update(data.numpy())
    if at < 0 or digest.hexdigest() != checksum:
        raise _Invalid("is damaged (its data does not match its checksum)")
    plan = _check_meta(meta, table)

    tensors = {}
    for k in plan.floats:
        t = _decode(data, table[k], _FLOATS[table[k]["dtype"]]).to(torch.float32, copy=True)
        if not _finite(t):
            raise _Invalid(f"{_tensor_title(k)} holds NaN or infinite values")
        if k.endswith(("/exp_avg_sq", "/step")) and t.numel() and float(t.min()) < 0:
            raise _Invalid(f"{_tensor_title(k)} holds negative values")
        tensors[k] = t
    noise = _decode(data, table["run/noise_state"], torch.uint8).clone() if plan.noise else None
    del data
    if noise is not None and (problem := _noise_problem(noise)):
        raise _Invalid(f"tensor run/noise_state is not a random generator's state ({problem})")

    model = _shell(plan.model_config).to_empty(device="cpu")  # every tensor of it is loaded next
    model.load_state_dict(
        {k[6:]: t for k, t in tensors.items() if k.startswith("model/")}, assign=True
    )
    model.to(device).eval()
    opt = None
    if plan.optimizer is not None:
        state = {}
        for pid, entry in plan.optimizer["state"].items():
            state[int(pid)] = {
                k: tensors[v["tensor"]] if isinstance(v, dict) else v for k, v in entry.items()
            }
        opt = {"state": state, "param_groups": plan.optimizer["param_groups"]}
    position = None
    if plan.position is not None:
        position = dict(plan.position, noise_state=noise)
    return Checkpoint(
        model=model,
        model_config=plan.model_config,
        train_config=plan.train_config,
        data_spec=plan.data_spec,
        class_names=plan.class_names,
        history=plan.history,
        optimizer_state=opt,
        epochs_done=plan.epochs_done,
        step=plan.step,
        position=position,
        path=path,
    )
