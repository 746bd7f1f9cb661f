"""Reading a checkpoint: a regular file, its header and metadata checked (:mod:`.schema`), its
checksum verified, and only then its model built and its tensors read."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import torch

from ..config import is_int, shown
from ..files import NotRegularFile, open_regular, read_problem
from ..files import printable as _printable
from .format import (
    _CHECKSUM,
    _DTYPE_SIZES,
    _FLOATS,
    _PLACEHOLDER,
    FORMAT,
    MAX_FILE_BYTES,
    MAX_HEADER_BYTES,
    Checkpoint,
    CheckpointError,
    _Invalid,
)
from .schema import (
    _check_meta,
    _check_version,
    _checksum,
    _fail,
    _finite,
    _noise_problem,
    _shell,
    _tensor_title,
)


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
    kinds = [
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
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
            isinstance(shape, list)
            and len(shape) <= 8
            and all(is_int(n) and 0 <= n <= MAX_FILE_BYTES for n in shape)
        ):
            _fail(f"{where}: its shape", "a list of sizes", shape)
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(is_int(n) for n in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
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

    Parameters
    ----------
    path
        The checkpoint file.
    device
        Where the model and the optimiser state's tensors are put.

    Returns
    -------
    Checkpoint
        The model, its settings, data, history, and what a run needs to continue.

    Raises
    ------
    CheckpointError
        Naming the file (and the field or tensor at fault), for anything else than a
        regular, readable, intact checkpoint whose metadata and tensors are all of the right
        types, sizes and ranges; nothing is allocated for the model before its size is
        known to match the file.
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
