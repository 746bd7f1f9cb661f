"""Checking a checkpoint's header and metadata against the format (:mod:`.format`) before
anything is allocated: types, ranges, sizes, and the tensors the described model needs."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..config import (
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
from ..data.spec import DataError, DataSpec
from ..loop.records import History
from ..models import LatentModel, build_model
from .format import (
    _ADAM_FLAGS,
    _ADAM_STATE,
    _CHECKSUM,
    _CHECKSUM_FORM,
    _FLOATS,
    MAX_EPOCHS_DONE,
    MAX_NAME_CHARS,
    MAX_NOISE_BYTES,
    MAX_PATH_CHARS,
    MAX_STEP,
    VERSION,
    _Invalid,
)


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
    "model": ("str",),
    "arch": ("str",),
    "latent_dim": ("int", 1, MAX_LATENT),
    "hidden": ("int", MIN_HIDDEN, MAX_HIDDEN),
    "image_shape": ("shape",),
    "likelihood": ("str",),
    "gaussian_std": ("real?",),
    "num_classes": ("int", 0, MAX_CLASSES),
}
_TRAIN_FIELDS = {
    "epochs": ("int", 1, MAX_EPOCHS),
    "batch_size": ("int", 1, MAX_BATCH),
    "lr": ("real",),
    "beta": ("real",),
    "warmup_epochs": ("real",),
    "seed": ("int", 0, MAX_SEED),
    "device": ("str",),
    "snapshot_hz": ("real",),
    "weights_hz": ("real",),
    "data_memory": ("real?",),
    "precision": ("str",),
}
_DATA_FIELDS = {
    "source": ("str",),
    "images": ("path",),
    "labels": ("path",),
    "root": ("path",),
    "image_size": ("int", 1, MAX_SIDE),
    "test_fraction": ("real",),
    "seed": ("int", 0, MAX_SEED),
    "shapes_count": ("int", 0, 2**31 - 1),
    "bundle": ("path",),
    "background": ("str",),
}


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
        noise["dtype"] == "U8"
        and len(noise["shape"]) == 1
        and 1 <= noise["shape"][0] <= MAX_NOISE_BYTES
    ):
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
        model_config,
        train_config,
        data_spec,
        class_names,
        history,
        epochs_done,
        step,
        opt,
        position,
        floats,
        noise=position is not None and "run/noise_state" in table,
    )


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
