"""A seeded fuzz of the checkpoint reader.

A few hundred checkpoints are made from three small real ones: their JSON metadata mutated
(types swapped, nulls, huge numbers, NaN and infinities, deletions, unknown keys, deep
nesting), their tensors changed (dtypes, shapes, NaN, added and missing tensors), and their
bytes damaged (flipped bits, overwritten runs, truncation, appended bytes, a tensor table
edited behind the checksum's back). Then the faults an audit found: the checksum's own key
damaged (a flipped bit in its name or its "sha256", or no checksum at all) together with a
weight, a header field or a setting; each header field (dtype, shape, data_offsets, the
metadata) of another type; and the noise generator's state of a run stopped inside an epoch
damaged in a file sealed afresh. Each must either load with the right values, equal to
the file's (the original's where unchanged) and usable for training, or raise
CheckpointError: no other exception, no hang, nothing loaded wrong.

``python tests/trainer/test_checkpoint_fuzz.py`` prints the tally.
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import trainer.checkpoint as ckmod
from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.config import ModelConfig, TrainConfig
from trainer.data import DataSpec, ImageData
from trainer.loop import History, Trainer, TrainingDiverged
from trainer.models import build_model

SEED = 20261122
CASES = {"meta": 260, "tensor": 70, "damage": 120, "unsealed": 60, "header": 60, "noise": 40}
TIMEOUT = 10.0  # seconds a case may take before it counts as a hang
PLACEHOLDER = "sha256:" + "0" * 64
DEEP = "\0DEEP"  # replaced by 3000 nested lists in the JSON text
SEAL = getattr(ckmod, "_seal", None)  # None before checksums existed

OUTCOMES = ("loaded", "refused", "refused valid", "other exception", "hang", "silent wrong")


# -- the originals ----------------------------------------------------------------------------
def _data(config: ModelConfig, n: int = 16, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    k = config.num_classes
    make_x = lambda m: torch.randint(0, 256, (m, *config.image_shape), generator=g).to(  # noqa: E731
        torch.uint8
    )
    make_y = lambda m: torch.randint(0, k, (m,), generator=g) if k else None  # noqa: E731
    return ImageData(
        "fuzz", make_x(n), make_x(n // 2), make_y(n), make_y(n // 2), [f"c{i}" for i in range(k)]
    )


def _originals(folder: Path) -> list[tuple[str, bytes]]:
    """Three small checkpoints: a conditional MLP with optimizer, history, data and a run
    stopped inside an epoch; a conv VAE with a fixed Gaussian std (a parameter Adam does not
    train); a bare autoencoder."""
    out = []
    a = ModelConfig(model="cvae", latent_dim=2, hidden=8, image_shape=(1, 8, 8), num_classes=3)
    b = ModelConfig(
        model="vae",
        arch="conv",
        latent_dim=2,
        hidden=8,
        image_shape=(1, 28, 28),
        likelihood="gaussian",
        gaussian_std=0.5,
    )
    c = ModelConfig(
        model="ae", latent_dim=3, hidden=8, image_shape=(3, 4, 4), likelihood="gaussian"
    )
    tc = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=3)
    for name, mc in (("cvae", a), ("conv", b)):
        torch.manual_seed(1)
        trainer = Trainer(build_model(mc), _data(mc), tc, device="cpu")
        trainer.fit(epochs=1)
        position = None
        if name == "cvae":
            position = {
                "epoch_images": 2,
                "epoch_sums": [12.5, 3.25, 14.0],
                "noise_state": trainer.noise.get_state(),
            }
        path = folder / f"{name}.safetensors"
        spec = DataSpec("shapes", shapes_count=100) if name == "cvae" else None
        save_checkpoint(
            path,
            trainer.model,
            tc,
            spec,
            ["circle", "square", "ring"] if name == "cvae" else [],
            trainer.history,
            trainer.optimizer.state_dict(),
            trainer.epochs_done,
            trainer.step,
            position,
        )
        out.append((name, path.read_bytes()))
    torch.manual_seed(2)
    path = folder / "ae.safetensors"
    save_checkpoint(path, build_model(c), tc)
    out.append(("ae", path.read_bytes()))
    return out


def _parts(raw: bytes) -> tuple[dict, dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header.pop("__metadata__")["latent_explorer"])
    return header, meta, raw[8 + n :]


def _assemble(header: dict, meta_text: str, data: bytes) -> bytes:
    header = dict(header, __metadata__={"latent_explorer": meta_text})
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def _meta_text(meta) -> str:
    text = json.dumps(meta)
    return text.replace(json.dumps(DEEP), "[" * 3000 + "]" * 3000)


def _sealed(meta, seal: bool):
    """``meta`` ready to be written: with the placeholder checksum if it is to be sealed,
    else without any (a file written before checksums)."""
    if isinstance(meta, dict):
        meta = dict(meta)
        meta.pop("checksum", None)
        if seal:
            meta["checksum"] = PLACEHOLDER
    return meta


def _finish(blob: bytes, seal: bool) -> bytes:
    if seal and SEAL is not None and PLACEHOLDER.encode() in blob:
        return b"".join(SEAL(blob))
    return blob


# -- mutations --------------------------------------------------------------------------------
@dataclass
class Case:
    category: str  # meta, tensor or damage
    base: str
    what: str
    blob: bytes
    expect: str  # "either" (judged by the oracle), "load", "refuse", or "original": to be
    # refused, but a load with the original's values would be no harm
    meta: object = None  # the metadata as written (for the oracle)
    tensors: dict | None = None  # the tensors as they should load
    outcome: str = ""
    detail: str = ""


BAD_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    7,
    2**31,
    2**63,
    2**70,
    10**400,
    1e100,
    -1e100,
    1.5,
    0.5,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "x",
    "vae",
    "conv",
    "cpu",
    "x" * 5000,
    "\ud800",
    [],
    {},
    [1, 28.5, 28],
    [0],
    [1, 2, 3],
    {"a": 1},
    {"tensor": "optim/0/exp_avg"},
    DEEP,
]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:2]):  # the first rows of a history are enough
            yield from _paths(v, (*prefix, i))


def _get(node, path):
    for key in path:
        node = node[key]
    return node


def _put(meta, path, value):
    if not path:
        return value
    _get(meta, path[:-1])[path[-1]] = value
    return meta


def _mutate_meta(rng: random.Random, meta: dict) -> tuple[object, str]:
    meta = copy.deepcopy(meta)
    paths = [p for p in _paths(meta) if p != ("checksum",)]
    sections = sorted({p[:1] for p in paths})  # each part of the metadata as often
    section = rng.choice(sections)
    path = rng.choice([p for p in paths if p[:1] == section])
    parent = _get(meta, path[:-1]) if path else None
    op = rng.random()
    if op < 0.55 or not path:
        value = rng.choice(BAD_VALUES)
        return _put(meta, path, value), f"{path} = {value!r}"[:120]
    if op < 0.70:
        del parent[path[-1]]
        return meta, f"del {path}"
    if op < 0.75 and isinstance(_get(meta, path), dict):
        _get(meta, path)["wings"] = rng.choice([2, None, "x"])
        return meta, f"{path} + unknown key"
    if op < 0.88:
        old = _get(meta, path)
        if isinstance(old, bool) or not isinstance(old, (int, float)):
            value = rng.choice(BAD_VALUES)
        else:
            value = rng.choice([old + 1, -old, old * 1_000_000, float(old), old - 1, old / 3])
        return _put(meta, path, value), f"{path}: {old!r} -> {value!r}"[:120]
    if op < 0.94 and isinstance(_get(meta, path), list):
        seq = _get(meta, path)
        seq.append(seq[0]) if seq and rng.random() < 0.5 else seq.clear()
        return meta, f"{path} lengthened or emptied"
    other = rng.choice(paths)
    value = copy.deepcopy(_get(meta, other))
    return _put(meta, path, value), f"{path} = value of {other}"[:120]


def _meta_case(rng, base, raw) -> Case:
    header, meta, data = _parts(raw)
    mutated, what = _mutate_meta(rng, meta)
    # sealed: as a writer that made the fault would have written it; else with no checksum,
    # which nothing vouches for
    seal = rng.random() < 0.6 and SEAL is not None
    mutated = _sealed(mutated, seal)
    blob = _finish(_assemble(header, _meta_text(mutated), data), seal)
    # with no checksum it must be refused; had it loaded, with the original's values at least
    expect = "either" if seal else "original"
    return Case("meta", base, what + ("" if seal else " (no checksum)"), blob, expect, mutated)


def _tensor_case(rng, base, raw) -> Case:
    _, meta, _ = _parts(raw)
    tensors = st_load(raw)
    expected = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    name = rng.choice(sorted(tensors))
    t = tensors[name]
    op = rng.randrange(10)
    expect = "refuse"
    if op == 0 and t.is_floating_point():
        dtype = rng.choice([torch.float16, torch.bfloat16, torch.float64])
        tensors[name] = t.to(dtype)
        expected[name] = t.to(dtype).float()
        expect, what = "load", f"{name} as {dtype}"
    elif op == 1:
        dtype = rng.choice([torch.int32, torch.uint8, torch.int16, torch.float32])
        if t.dtype == dtype or t.dim() == 0:
            dtype = torch.int32 if t.dtype == torch.uint8 else torch.uint8
        tensors[name] = t.reshape(-1).view(dtype) if t.dim() else t.to(dtype)
        what = f"{name} reinterpreted as {dtype}"
    elif op == 2 and t.dim() >= 1 and t.numel() > 1:
        shape = list(reversed(t.shape)) if t.dim() > 1 else [1, t.numel()]
        tensors[name] = t.reshape(shape)
        what = f"{name} reshaped to {shape}"
        if list(shape) == list(t.shape):
            expect = "load"
    elif op == 3 and t.is_floating_point() and t.numel():
        flat = t.clone().reshape(-1)
        flat[rng.randrange(flat.numel())] = rng.choice([math.nan, math.inf, -math.inf])
        tensors[name] = flat.reshape(t.shape)
        what = f"{name} with a non-finite value"
    elif op == 4 and t.is_floating_point() and t.numel():
        flat = t.clone().reshape(-1)
        flat[rng.randrange(flat.numel())] = -abs(float(flat[0])) - 1.0
        tensors[name] = flat.reshape(t.shape)
        expected[name] = tensors[name].float()
        # a negative second moment or step is not a state Adam can be in
        expect = "refuse" if name.endswith(("exp_avg_sq", "/step")) else "load"
        what = f"{name} with a changed value"
    elif op == 5:
        del tensors[name]
        del expected[name]
        expect = "load" if name == "run/noise_state" else "refuse"
        what = f"{name} missing"
    elif op == 6:
        extra = rng.choice(["model/extra.weight", "optim/99/exp_avg", "extra/blob"])
        tensors[extra] = torch.zeros(3)
        expect = "load" if extra == "extra/blob" else "refuse"
        what = f"added {extra}"
    elif op == 7:
        tensors[name + "x"] = tensors.pop(name)
        expected[name + "x"] = expected.pop(name)
        expect = "load" if name == "run/noise_state" else "refuse"
        what = f"{name} renamed"
    else:
        tensors[name] = t.clone()
        expect, what = "load", f"{name} rewritten unchanged"
    seal = SEAL is not None
    blob = _finish(
        st_save(tensors, metadata={"latent_explorer": json.dumps(_sealed(meta, seal))}), seal
    )
    return Case("tensor", base, what, blob, expect, _sealed(meta, seal), expected)


def _damage_case(rng, base, raw) -> Case:
    blob = bytearray(raw)
    n = struct.unpack("<Q", raw[:8])[0]
    op = rng.randrange(7)
    if op <= 1:  # bits flipped anywhere, or in the header
        hi = len(blob) if op == 0 else 8 + n
        spots = [rng.randrange(hi) for _ in range(rng.randint(1, 3))]
        for at in spots:
            blob[at] ^= 1 << rng.randrange(8)
        what = f"bits flipped at {spots}"
    elif op == 2:
        at, k = rng.randrange(len(blob)), rng.randint(1, 16)
        blob[at : at + k] = bytes(rng.randrange(256) for _ in range(k))
        what = f"{k} bytes overwritten at {at}"
    elif op == 3:
        cut = rng.randrange(len(blob))
        del blob[cut:]
        what = f"truncated to {cut} bytes"
    elif op == 4:
        blob += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        what = "bytes appended"
    elif op == 5:
        at = rng.randrange(len(blob))
        blob[at:at] = bytes([rng.randrange(256)])
        what = f"a byte inserted at {at}"
    else:  # the tensor table edited, the checksum left as it was
        header, meta, data = _parts(raw)
        same = {}
        for k, v in header.items():
            same.setdefault((v["dtype"], tuple(v["shape"])), []).append(k)
        pairs = [ks for ks in same.values() if len(ks) > 1]
        if pairs:
            a, b = rng.sample(rng.choice(pairs), 2)
            header[a]["data_offsets"], header[b]["data_offsets"] = (
                header[b]["data_offsets"],
                header[a]["data_offsets"],
            )
            what = f"offsets of {a} and {b} swapped"
        else:
            k = rng.choice(sorted(header))
            header[k]["dtype"] = "F16" if header[k]["dtype"] != "F16" else "BF16"
            what = f"dtype of {k} changed"
        blob = bytearray(_assemble(header, json.dumps(meta), data))
    return Case("damage", base, what, bytes(blob), "refuse")


CHECKSUM_KEY = b'\\"checksum\\": \\"sha256:'  # as the header holds it (JSON in JSON)


def _unsealed_case(rng, base, raw) -> Case:
    """The checksum's own key damaged (a bit of its name or of "sha256", or gone), and with
    it a weight, a header field or a setting: nothing vouches for the file any more."""
    blob = bytearray(raw)
    n = struct.unpack("<Q", raw[:8])[0]
    key = raw.index(CHECKSUM_KEY, 8, 8 + n)
    op = rng.randrange(3)
    if op == 0:  # a bit of the key's name: "chdcksum", "checksue", ...
        at = key + 2 + rng.randrange(len("checksum"))
        bit = rng.choice([b for b in range(7) if chr(blob[at] ^ 1 << b).isalnum()])
        blob[at] ^= 1 << bit
        what = f"checksum key's byte {at - key - 2} ^ {1 << bit}"
    elif op == 1:  # a bit of "sha256"
        at = key + len(CHECKSUM_KEY) - 7 + rng.randrange(6)
        blob[at] ^= 1 << rng.randrange(7)
        what = "a bit of sha256 flipped"
    else:
        header, meta, data = _parts(raw)
        del meta["checksum"]
        blob = bytearray(_assemble(header, json.dumps(meta), data))
        n = struct.unpack("<Q", blob[:8])[0]
        what = "no checksum"
    then = rng.randrange(3)
    if then == 0:  # a weight (or any tensor byte)
        at = 8 + n + rng.randrange(len(blob) - 8 - n)
        blob[at] ^= 1 << rng.randrange(8)
        what += f", a bit of the data at {at - 8 - n}"
    elif then == 1:  # a digit in the settings
        text = bytes(blob[8 : 8 + n])
        digits = [i for i, c in enumerate(text) if chr(c).isdigit() and i + 8 < key]
        at = 8 + rng.choice(digits)
        blob[at] = ord(str((int(chr(blob[at])) + rng.randint(1, 9)) % 10))
        what += f", a digit of the metadata at {at}"
    else:
        what += ", nothing else"
    return Case("unsealed", base, what, bytes(blob), "refuse")


HEADER_VALUES = [
    ["F32"],
    {"F32": 4},
    [],
    {},
    None,
    True,
    0,
    4,
    -1,
    1.5,
    "",
    "f32",
    "F32 ",
    "U8",
    "I64",
    [[2, 3]],
    [2.0, 3.0],
    [True],
    ["2"],
    [-1],
    [2**63],
    [0, 10**30],
    [None, None],
    [3, 1],
    {"start": 0, "end": 4},
    [[0], [4]],
    "0,4",
    10**400,
    math.nan,
]


def _header_case(rng, base, raw) -> Case:
    """A header field of another type or value; sealed, as a writer making it would."""
    header, meta, data = _parts(raw)
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in st_load(raw).items()}
    name = rng.choice(sorted(header))
    op = rng.randrange(6)
    if op < 4:
        field = ("dtype", "shape", "data_offsets", "dtype")[op]
        old = header[name][field]
        value = rng.choice(HEADER_VALUES)
        header[name][field] = value
        what = f"{name}.{field} = {value!r}"[:120]
        expect = "load" if _same(old, value) else "refuse"
    elif op == 4:
        del header[name][rng.choice(["dtype", "shape", "data_offsets"])]
        what, expect = f"{name} lacks a field", "refuse"
    else:
        header[name] = rng.choice(HEADER_VALUES)
        what, expect = f"{name} = {header[name]!r}"[:120], "refuse"
    seal = SEAL is not None and rng.random() < 0.8
    meta = _sealed(meta, seal)
    hdr = dict(header, __metadata__={"latent_explorer": json.dumps(meta)})
    if rng.random() < 0.15:  # the metadata's other entries, which safetensors makes texts
        hdr["__metadata__"]["other"] = rng.choice(HEADER_VALUES)
        what += f"; __metadata__.other = {hdr['__metadata__']['other']!r}"[:80]
        if expect == "load" and not isinstance(hdr["__metadata__"]["other"], str):
            expect = "either"  # safetensors refuses it; the values would still be right
    hb = json.dumps(hdr).encode()
    hb += b" " * (-len(hb) % 8)
    blob = _finish(struct.pack("<Q", len(hb)) + hb + data, seal)
    if expect != "refuse" and not seal:
        expect = "original"
    return Case("header", base, what, blob, expect, meta, tensors)


def _noise_case(rng, base, raw) -> Case:
    """The noise generator's state of the run stopped inside an epoch damaged, in a file
    sealed afresh (the checksum cannot tell): it loads only if a run can go on from it."""
    _, meta, _ = _parts(raw)
    tensors = st_load(raw)
    state = tensors.get("run/noise_state")
    if state is None:  # only the cvae original stopped inside an epoch
        return _noise_case(rng, "cvae", _NOISY[0])
    state = state.clone()
    op = rng.randrange(4)
    if op == 0:  # the Mersenne Twister's counters (left, next)
        at = rng.choice([8, 9, 10, 11, 16, 17, 18, 19])
        state[at] = rng.randrange(256)
        what = f"counter byte {at} = {int(state[at])}"
    elif op == 1:
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(state.numel())
            state[at] ^= 1 << rng.randrange(8)
        what = "bits of the state flipped"
    elif op == 2:
        cut = rng.choice([16, 8, 100, state.numel() - 8])
        state = state[:cut].clone()
        what = f"state cut to {cut} bytes"
    else:
        state[8:12] = torch.tensor([0, 0, 0, 0], dtype=torch.uint8)
        what = "state's left count 0"
    tensors["run/noise_state"] = state
    expected = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    sealed = _sealed(meta, SEAL is not None)
    blob = _finish(
        st_save(tensors, metadata={"latent_explorer": json.dumps(sealed)}), SEAL is not None
    )
    return Case("noise", base, what, blob, "either", sealed, expected)


_NOISY: list[bytes] = []  # the original stopped inside an epoch


# -- the oracle -------------------------------------------------------------------------------
def _same(a, b) -> bool:
    """JSON values equal, with types: a bool is no number, NaN equals nothing."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _typed(obj) -> str | None:
    """What in a settings dataclass is not of its declared type, if anything."""
    for f in fields(obj):
        v, kinds = getattr(obj, f.name), f.type.replace(" ", "").split("|")
        ok = (
            ("None" in kinds and v is None)
            or ("str" in kinds and isinstance(v, str))
            or ("int" in kinds and type(v) is int)
            or ("float" in kinds and type(v) in (int, float) and math.isfinite(v))
            or (
                kinds[0].startswith("tuple") and type(v) is tuple and all(type(n) is int for n in v)
            )
        )
        if not ok:
            return f"{type(obj).__name__}.{f.name} = {v!r}"
    return None


def _expected_settings(cls, given) -> dict:
    d = {f.name: getattr(cls(), f.name) for f in fields(cls)}
    d.update(given)
    return d


def _judge(ck, meta: dict, tensors: dict) -> str | None:
    """Why the loaded checkpoint ``ck`` is wrong for a file with ``meta`` and ``tensors``
    (None if it is right)."""
    for obj in (ck.model_config, ck.train_config, ck.data_spec):
        if obj is not None and (problem := _typed(obj)):
            return problem
    if not _same(ck.model_config.to_dict(), _expected_settings(ModelConfig, meta["model_config"])):
        return f"model_config {ck.model_config}"
    if not _same(ck.train_config.to_dict(), _expected_settings(TrainConfig, meta["train_config"])):
        return f"train_config {ck.train_config}"
    ds = meta.get("data_spec")
    if ds is None:
        if ck.data_spec is not None:
            return f"data_spec {ck.data_spec}"
    elif not (ds == {} and ck.data_spec is None):  # {}: no data, or all defaults
        known = {k: v for k, v in ds.items() if k in DataSpec.__dataclass_fields__}
        if ck.data_spec is None or not _same(
            ck.data_spec.to_dict(), _expected_settings(DataSpec, known)
        ):
            return f"data_spec {ck.data_spec}"
    if not _same(ck.class_names, meta.get("class_names") or []) or not all(
        isinstance(s, str) for s in ck.class_names
    ):
        return f"class_names {ck.class_names!r}"[:200]
    h = meta.get("history") or {}
    want = {
        kind: [{k: row[k] for k in keys if k in row} for row in h.get(kind, [])]
        for kind, keys in (("steps", History.STEP_KEYS), ("epochs", History.EPOCH_KEYS))
    }
    got = ck.history.to_dict()
    if not _same(got, want):
        return f"history {got}"[:200]
    for row in got["steps"] + got["epochs"]:
        for k, v in row.items():
            if (k in ("step", "epoch") and type(v) is not int) or not math.isfinite(v):
                return f"history value {k}={v!r}"
    if not (type(ck.epochs_done) is int and 0 <= ck.epochs_done < 2**31):
        return f"epochs_done {ck.epochs_done!r}"
    if not _same(ck.epochs_done, meta.get("epochs_done", 0)):
        return f"epochs_done {ck.epochs_done!r}"
    last = got["steps"][-1]["step"] if got["steps"] else 0
    if not (type(ck.step) is int and ck.step >= 0 and _same(ck.step, meta.get("step", last))):
        return f"step {ck.step!r}"
    state = ck.model.state_dict()
    for k, v in state.items():
        want_t = tensors.get(f"model/{k}")
        if want_t is None or v.dtype != torch.float32 or not torch.equal(v, want_t):
            return f"weight {k}"
    opt = meta.get("optimizer")
    if (opt is None) != (ck.optimizer_state is None):
        return "optimizer present or absent wrongly"
    if opt is not None:
        if not _same(ck.optimizer_state["param_groups"], opt["param_groups"]):
            return "optimizer param_groups"
        for pid, entry in opt["state"].items():
            got_entry = ck.optimizer_state["state"][int(pid)]
            for k, v in entry.items():
                g = got_entry[k]
                if isinstance(v, dict):
                    if not (torch.is_tensor(g) and torch.equal(g, tensors[v["tensor"]])):
                        return f"optimizer tensor {pid}/{k}"
                elif not _same(g, v):
                    return f"optimizer value {pid}/{k}"
    pos = meta.get("position")
    if (pos is None) != (ck.position is None):
        return "position present or absent wrongly"
    if pos is not None:
        if not _same(ck.position["epoch_images"], pos.get("epoch_images", 0)):
            return "position epoch_images"
        if not _same(ck.position["epoch_sums"], pos.get("epoch_sums", [0.0] * 3)):
            return "position epoch_sums"
        noise, want_noise = ck.position["noise_state"], tensors.get("run/noise_state")
        if (noise is None) != (want_noise is None) or (
            noise is not None and not torch.equal(noise, want_noise)
        ):
            return "position noise_state"
    # and it must be usable: a checkpoint is opened to train on or to explore
    mc = ck.model_config
    try:
        trainer = Trainer(
            ck.model,
            _data(mc, n=4),
            ck.train_config,
            device="cpu",
            history=ck.history,
            optimizer_state=ck.optimizer_state,
            epochs_done=ck.epochs_done,
            step=ck.step,
            position=ck.position,
        )
        trainer.fit(epochs=1)
    except TrainingDiverged:
        pass  # a learning rate of 1, say: the run's business, not the file's
    except Exception as e:  # noqa: BLE001 (any failure is the finding)
        return f"unusable: {type(e).__name__}: {e}"[:200]
    return None


def _judge_unchanged(ck, original: bytes) -> str | None:
    _, meta, _ = _parts(original)
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in st_load(original).items()}
    return _judge(ck, meta, tensors)


# -- running ----------------------------------------------------------------------------------
class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def _run_case(case: Case, path: Path, original: bytes) -> None:
    path.write_bytes(case.blob)
    guard = hasattr(signal, "setitimer")
    if guard:
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        try:
            ck = load_checkpoint(path)
        except CheckpointError as e:
            case.outcome = "refused valid" if case.expect == "load" else "refused"
            case.detail = str(e)[len(str(path)) + 2 :][:200]
            return
        except _Hang:
            raise
        except BaseException as e:  # noqa: BLE001 (anything else is the finding)
            case.outcome, case.detail = "other exception", f"{type(e).__name__}: {e}"[:200]
            return
        try:
            if case.category in ("damage", "unsealed") or case.expect == "original":
                problem = _judge_unchanged(ck, original)
            elif case.expect == "refuse":
                problem = "loaded a file that should have been refused"
            else:
                tensors = case.tensors
                if tensors is None:
                    tensors = {
                        k: v.float() if v.is_floating_point() else v
                        for k, v in st_load(case.blob).items()
                    }
                problem = _judge(ck, case.meta, tensors)
        except _Hang:
            raise
        except Exception as e:  # noqa: BLE001 (what loaded fits no reading of the file)
            problem = f"judging it failed: {type(e).__name__}: {e}"[:200]
        case.outcome, case.detail = ("silent wrong", problem) if problem else ("loaded", "")
    except _Hang:
        case.outcome, case.detail = "hang", f"over {TIMEOUT:.0f} s"
    finally:
        if guard:
            signal.setitimer(signal.ITIMER_REAL, 0)


def run_fuzz(folder: Path, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only cost time, the more on busy cores
    originals = _originals(folder)
    _NOISY[:] = [raw for name, raw in originals if name == "cvae"]
    makers = {
        "meta": _meta_case,
        "tensor": _tensor_case,
        "damage": _damage_case,
        "unsealed": _unsealed_case,
        "header": _header_case,
        "noise": _noise_case,
    }
    cases = []
    old = signal.signal(signal.SIGALRM, _on_alarm) if hasattr(signal, "SIGALRM") else None
    try:
        for category, count in CASES.items():
            for i in range(count):
                base, raw = originals[i % len(originals)]
                case = makers[category](rng, base, raw)
                _run_case(case, folder / "case.safetensors", raw)
                cases.append(case)
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
    return cases


def tally(cases: list[Case]) -> str:
    rows = [("all", cases)] + [(c, [k for k in cases if k.category == c]) for c in CASES]
    lines = [f"{'':8}{'cases':>7}" + "".join(f"{o:>17}" for o in OUTCOMES)]
    for name, group in rows:
        counts = Counter(c.outcome for c in group)
        lines.append(f"{name:8}{len(group):>7}" + "".join(f"{counts[o]:>17}" for o in OUTCOMES))
    return "\n".join(lines)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the hang guard needs SIGALRM")
def test_fuzzed_checkpoints_load_right_or_raise_checkpoint_error(tmp_path):
    t = time.perf_counter()
    cases = run_fuzz(tmp_path)
    seconds = time.perf_counter() - t
    counts = Counter(c.outcome for c in cases)
    failures = [c for c in cases if c.outcome not in ("loaded", "refused")]
    report = (
        tally(cases)
        + f"\n{seconds:.1f} s\n"
        + "\n".join(
            f"{c.outcome}: {c.category} {c.base} {c.what}: {c.detail}" for c in failures[:15]
        )
    )
    assert not failures, report
    assert len(cases) == sum(CASES.values())
    # the mix is meaningful: many files load (and were judged), many are refused
    assert counts["loaded"] >= 60 and counts["refused"] >= 200, report
    damaged = [c for c in cases if c.category in ("damage", "unsealed")]
    assert all(c.outcome == "refused" for c in damaged), report
    unchecked = [c for c in cases if c.expect == "original"]  # no checksum: never loaded
    assert unchecked and all(c.outcome == "refused" for c in unchecked), report
    noisy = [c for c in cases if c.category == "noise"]
    assert {c.outcome for c in noisy} == {"loaded", "refused"}, report
    assert any(c.outcome == "loaded" for c in cases if c.category == "tensor"), report


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        cases = run_fuzz(Path(d))
        print(tally(cases))
        print(f"{time.perf_counter() - t:.1f} s")
        for c in cases:
            if c.outcome not in ("loaded", "refused"):
                print(f"{c.outcome}: {c.category} {c.base} {c.what}: {c.detail}")
        sys.exit(0)
