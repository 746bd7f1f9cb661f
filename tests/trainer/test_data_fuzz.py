"""A seeded fuzz of the IDX loader: a few hundred mutated image and label files, plain and
gzipped, each of which must load with the values a careful reader finds in it, or be refused
with exactly a DataError; never another exception, a hang or a warning.

The reference reader here decodes the (small) files the simple way and applies the rules
the loader promises: a header of 1 to 4 dimensions, exactly the data it describes, images
(N, H, W) or (N, C, H, W) / (N, H, W, C) with C 1 or 3 and sides of 1 to 1024 pixels,
numbers for pixels, and labels that are whole numbers 0..K-1 with every class present.
"""

from __future__ import annotations

import collections
import gzip
import math
import signal
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from trainer.config import MAX_CLASSES
from trainer.data import DataError, DataSpec, load_data

CASES = 400
SEED = 1234
CASE_SECONDS = 5  # one case taking longer counts as a hang
MAX_SIDE = 1024
TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(v).str: k for k, v in TYPES.items()}
OUTCOMES = ("loaded", "refused", "refused a good file", "other exception", "hang", "wrong")


class Hang(Exception):
    pass


# -- the reference reader ---------------------------------------------------------------------
def decode(blob: bytes) -> np.ndarray | None:
    """The array an IDX blob holds, or None if it is not a well-formed IDX file."""
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except Exception:  # noqa: BLE001 - any failure means "not readable"
            return None
    if len(blob) < 4 or blob[0] or blob[1] or blob[2] not in TYPES or not 1 <= blob[3] <= 4:
        return None
    ndim = blob[3]
    if len(blob) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    dtype = np.dtype(TYPES[blob[2]])
    if len(blob) != 4 + 4 * ndim + math.prod(shape) * dtype.itemsize:
        return None
    return np.frombuffer(blob[4 + 4 * ndim :], dtype=dtype).reshape(shape)


def expected_images(blob: bytes) -> np.ndarray | None:
    """uint8 (N, C, H, W) images, or None where the loader must refuse."""
    a = decode(blob)
    if a is None:
        return None
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[3] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or not 1 <= min(a.shape[2:]) <= MAX_SIDE:
        return None
    if max(a.shape[2:]) > MAX_SIDE:
        return None
    if a.dtype != np.uint8 and a.size:
        f = a.astype(np.float64)
        if not np.isfinite(f).all() or f.min() < 0 or f.max() > 255:
            return None
        with np.errstate(over="ignore"):
            f = f * (255.0 if f.max() <= 1.0 else 1.0)
        a = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return a.astype(np.uint8)


def expected_labels(blob: bytes) -> np.ndarray | None:
    """int64 labels, or None where the loader must refuse."""
    y = decode(blob)
    if y is None or y.ndim != 1:
        return None
    if y.size == 0:
        return y.astype(np.int64)
    f = y.astype(np.float64)
    if not np.isfinite(f).all() or (f != np.floor(f)).any() or f.min() < 0:
        return None
    if f.max() >= MAX_CLASSES:
        return None
    y = f.astype(np.int64)
    if (np.bincount(y) == 0).any():
        return None
    return y


# -- making and mutating files ----------------------------------------------------------------
def idx_blob(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    head = struct.pack(">BBBB", 0, 0, CODES[arr.dtype.str], arr.ndim)
    return head + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def base_pair(rng: np.random.Generator, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(2, 13)) if n is None else n
    h, w = (int(v) for v in rng.integers(1, 7 if n < 100 else 3, 2))
    shape = [(n, h, w), (n, 1, h, w), (n, 3, h, w), (n, h, w, 1), (n, h, w, 3)]
    shape = shape[rng.integers(len(shape))]
    dtype = np.dtype(TYPES[rng.choice(list(TYPES))])
    if dtype.kind == "f":
        top = rng.choice([1.0, 255.0, 300.0])  # the last is refused
        x = (rng.random(shape) * top).astype(dtype)
    else:
        info = np.iinfo(dtype)
        lo, hi = (0, 255) if rng.random() < 0.7 else (-300, 300)  # the second is refused
        x = rng.integers(max(info.min, lo), min(info.max, hi), shape, endpoint=True)
        x = x.astype(dtype)
    k = int(rng.integers(1, min(n, 5) + 1)) if n < 100 else n
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rng.shuffle(y)
    ldtype = np.dtype(TYPES[rng.choice(list(TYPES))])
    if ldtype.kind == "i" and k > np.iinfo(ldtype).max:
        ldtype = np.dtype(">i4")
    return x, y.astype(ldtype)


def mutate_labels(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    y = y.astype(np.float64)
    m = int(rng.integers(7))
    i = int(rng.integers(len(y)))
    if m == 0:  # one wild value
        y[i] = rng.choice([255, -1, 1000, 999, 5e6, 2e9, 2.5, np.nan, np.inf, -np.inf, 1e300])
    elif m == 1:  # counted from 1
        y = y + 1
    elif m == 2:  # a single class
        y[:] = 0
    elif m == 3:  # a class skipped
        y[y == y.max()] += 1
    elif m == 4:  # a whole-number float label
        y[i] = float(int(y[i]))
    elif m == 5:  # one label fewer or more
        y = y[:-1] if rng.random() < 0.5 else np.append(y, 0)
    else:
        pass  # unchanged
    finite = np.isfinite(y).all()
    whole = finite and (y == np.floor(y)).all()
    if whole and y.min() >= 0 and y.max() <= 255:
        return y.astype(rng.choice(["u1", ">i2", ">i4", ">f4"]))
    if whole and -(2**31) <= y.min() and y.max() < 2**31:
        return y.astype(rng.choice([">i4", ">f8"]))
    return y.astype(rng.choice([">f4", ">f8"]) if finite and abs(y).max() < 1e30 else ">f8")


def mutate_images(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind != "f" or rng.random() < 0.5:
        return x
    x = x.copy()
    x.flat[int(rng.integers(x.size))] = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30, 2.0])
    return x


def mutate_bytes(rng: np.random.Generator, blob: bytes) -> bytes:
    b = bytearray(blob)
    ndim = b[3] if len(b) > 3 else 0
    m = int(rng.integers(7))
    if m == 0:  # flip bits: in the header half of the time
        for _ in range(int(rng.integers(1, 4))):
            span = min(len(b), 4 + 4 * ndim) if rng.random() < 0.5 else len(b)
            b[int(rng.integers(span))] ^= int(rng.integers(1, 256))
    elif m == 1:  # cut short
        b = b[: int(rng.integers(len(b)))]
    elif m == 2:  # bytes added
        b += bytes(rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8))
    elif m == 3 and ndim:  # one dimension changed
        d = int(rng.integers(ndim))
        old = struct.unpack(">I", b[4 + 4 * d : 8 + 4 * d])[0]
        new = rng.choice([0, 1, 2, 3, old - 1, old + 1, 1023, 1024, 1025, 2**31, 2**32 - 1])
        b[4 + 4 * d : 8 + 4 * d] = struct.pack(">I", int(new) % 2**32)
    elif m == 4:  # another type code
        b[2] = int(rng.choice([*TYPES, 0x00, 0x0A, 0x0F, 0xFF]))
    elif m == 5:  # another number of dimensions
        b[3] = int(rng.choice([0, 1, 2, 3, 4, 5, 255]))
    return bytes(b)


def mutate_gzip(rng: np.random.Generator, blob: bytes) -> bytes:
    b = bytearray(blob)
    m = int(rng.integers(4))
    if m == 0:
        b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
    elif m == 1:
        b = b[: int(rng.integers(len(b)))]
    elif m == 2:
        b += bytes(rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8))
    return bytes(b)


def make_case(rng: np.random.Generator) -> tuple[bytes, bytes | None, str]:
    many = rng.random() < 0.05  # one image per class, as many classes as allowed, or one more
    n = int(rng.choice([MAX_CLASSES - 1, MAX_CLASSES, MAX_CLASSES + 1])) if many else None
    x, y = base_pair(rng, n)
    what = [f"{n} classes"] if many else []
    if rng.random() < 0.5:
        y = mutate_labels(rng, y)
        what.append("label values")
    x = mutate_images(rng, x)
    blobs = [idx_blob(x), idx_blob(y)]
    for j in range(2):
        if rng.random() < 0.3:
            blobs[j] = mutate_bytes(rng, blobs[j])
            what.append(f"{'images labels'.split()[j]} bytes")
        if rng.random() < 0.5:
            blobs[j] = gzip.compress(blobs[j], mtime=0)
            if rng.random() < 0.3:
                blobs[j] = mutate_gzip(rng, blobs[j])
                what.append(f"{'images labels'.split()[j]} gzip")
    labels = None if rng.random() < 0.15 else blobs[1]
    return blobs[0], labels, ", ".join(what) or "unchanged"


# -- running ----------------------------------------------------------------------------------
def expected(images: bytes, labels: bytes | None):
    """Counter of (image bytes, label) the loader must produce, and the class count; or None."""
    x = expected_images(images)
    if x is None:
        return None
    if labels is None:
        y, k = np.full(len(x), -1), 0
    else:
        y = expected_labels(labels)
        if y is None or len(y) != len(x):
            return None
        k = int(y.max()) + 1 if len(y) else 0
    if len(x) < 2:
        return None
    return collections.Counter(zip((a.tobytes() for a in x), y.tolist())), x.shape[1:], k


def run_case(folder: Path, images: bytes, labels: bytes | None) -> tuple[str, str, bool]:
    """(outcome, detail, warned) of loading one pair of files."""
    ip = folder / "images.idx"
    ip.write_bytes(images)
    lp = None
    if labels is not None:
        lp = folder / "labels.idx"
        lp.write_bytes(labels)
    want = expected(images, labels)
    spec = DataSpec("idx", images=str(ip), labels=None if lp is None else str(lp))

    def alarm(*_):
        raise Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                d, error = load_data(spec), None
            except (DataError, Hang):
                raise
            except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
                d, error = None, f"{type(e).__name__}: {e}"[:200]
    except DataError as e:
        outcome = "refused" if want is None else "refused a good file"
        return outcome, str(e), bool(caught)
    except Hang:  # wherever the time ran out, the case took too long
        return "hang", "", False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    warned = bool(caught)
    if error is not None:
        return "other exception", error, warned
    if want is None:
        return "wrong", f"loaded {d!r} from a file that should be refused", warned
    pairs, image_shape, k = want
    xs = np.concatenate([d.train_x.to("cpu").numpy(), d.test_x.numpy()])
    if d.train_y is None:
        ys = [-1] * len(xs)
    else:
        ys = np.concatenate([d.train_y.numpy(), d.test_y.numpy()]).tolist()
    got = collections.Counter(zip((a.tobytes() for a in xs), ys))
    ok = got == pairs and d.image_shape == image_shape and d.num_classes == k
    ok = ok and d.class_names == ([str(c) for c in range(k)] if labels is not None else [])
    return ("loaded" if ok else "wrong"), "" if ok else f"{d!r} differs", warned


def run_fuzz(folder: Path, cases: int = CASES, seed: int = SEED) -> list[tuple[str, str, bool]]:
    rng = np.random.default_rng(seed)
    results = []
    for i in range(cases):
        images, labels, what = make_case(rng)
        outcome, detail, warned = run_case(folder, images, labels)
        results.append((outcome, f"case {i} ({what}): {detail}", warned))
    return results


def tally(results) -> dict[str, int]:
    counts = collections.Counter(outcome for outcome, _, _ in results)
    out = {k: counts[k] for k in OUTCOMES}
    out["warned"] = sum(warned for _, _, warned in results)
    return out


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM for its hang guard")
def test_mutated_idx_files_load_right_or_raise_data_error(tmp_path):
    results = run_fuzz(tmp_path)
    bad = [(o, d) for o, d, w in results if o not in ("loaded", "refused") or w]
    assert not bad, f"{len(bad)} bad cases, e.g. {bad[:5]}"
    counts = tally(results)
    # the fuzz is no use unless it both loads and refuses a good share of its files
    assert counts["loaded"] >= CASES // 5 and counts["refused"] >= CASES // 5, counts
