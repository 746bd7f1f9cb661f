"""Decode once: an image folder or an IDX pair is decoded into a cache of uint8 images and
labels, and later loads map that file into memory instead of decoding every image again.

A cache is a folder under :func:`decoded_dir` (next to the downloaded datasets) named by a
key: a digest of the source's kind, its options (image size, say) and its file list with
every file's size and modification time. A file added, removed, replaced or touched gives
another key, so the cache is rebuilt; the stale one of the same source is removed then. The
folder holds ``images.u8`` (N x C x H x W bytes), ``labels.i64`` and ``meta.json``, written
into a temporary folder and renamed into place, so that a kill while building leaves no
half cache. A cache that cannot be written (a full or read-only disk) costs the next load a
decode, nothing else; one that does not read back as it should is removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_VERSION = 2  # 2: CRC-32 of the images and labels, checked when read


def decoded_dir() -> Path:
    from .data import cache_dir

    return cache_dir() / "decoded"


@dataclass
class Decoded:
    x: np.ndarray  # uint8 (N, C, H, W); memory-mapped when read from the cache
    y: np.ndarray | None  # int64 (N,)
    class_names: list[str]


def fingerprint(kind: str, files: Sequence[Path], root: Path | None, options: dict) -> str:
    """The key of a source: its kind, options, and every file's name, size and mtime."""
    entries = []
    for f in files:
        st = f.stat()
        name = str(f.relative_to(root)) if root is not None else str(f.resolve())
        entries.append((name, st.st_size, st.st_mtime_ns))
    return key_of(kind, entries, options)


def key_of(kind: str, entries: Sequence[tuple[str, int, int]], options: dict) -> str:
    """The key of a source from its files' (name, size, mtime in ns), as listed."""
    h = hashlib.sha256()
    h.update(json.dumps({"kind": kind, "version": CACHE_VERSION, **options}, sort_keys=True)
             .encode())  # fmt: skip
    for name, size, mtime in entries:
        h.update(f"{name}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:40]


def load(key: str) -> Decoded | None:
    """The cache of ``key``, memory-mapped; None if there is none (or it is broken: then it
    is removed, and the caller decodes again)."""
    folder = decoded_dir() / key
    if not (folder / "meta.json").is_file():
        if folder.exists():  # its meta.json, written last, is gone: not a cache
            shutil.rmtree(folder, ignore_errors=True)
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        shape = tuple(int(v) for v in meta["shape"])
        names = [str(c) for c in meta["class_names"]]
        if meta.get("version") != CACHE_VERSION or len(shape) != 4 or min(shape) < 1:
            raise ValueError("another layout")
        if (folder / "images.u8").stat().st_size != int(np.prod(shape)):
            raise ValueError("images.u8 has another size")
        x = mapped(folder, shape)
        if _crc(x) != meta["crc32"]:
            raise ValueError("images.u8 is not what was written")
        y = None
        if meta["labels"]:
            y = np.fromfile(folder / "labels.i64", dtype="<i8")
            if len(y) != shape[0] or (len(y) and (y.min() < 0 or y.max() >= len(names))):
                raise ValueError("labels.i64 does not match")
            if _crc(y) != meta["labels_crc32"]:
                raise ValueError("labels.i64 is not what was written")
        return Decoded(x, y.astype(np.int64) if y is not None else None, names)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"note: the decoded cache {folder} was unreadable ({e}); decoding again",
              file=sys.stderr)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
        return None


def mapped(folder: Path, shape: tuple[int, ...]) -> np.memmap:
    """A cache's images, memory-mapped copy-on-write: read from the file as they are used,
    never written back to it."""
    return np.memmap(folder / "images.u8", dtype=np.uint8, mode="c", shape=tuple(shape))


def store(key: str, source: str, data: Decoded) -> Path | None:
    """Keep ``data`` as the cache of ``key`` (and drop older caches of ``source``); returns
    its folder, or None (with a note on stderr) if it could not be written."""
    root = decoded_dir()
    final = root / key
    tmp = root / f".tmp-{key}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        x = np.ascontiguousarray(data.x, dtype=np.uint8)
        x.tofile(tmp / "images.u8")
        meta = {"version": CACHE_VERSION, "source": source, "shape": list(data.x.shape),
                "labels": data.y is not None, "class_names": list(data.class_names),
                "crc32": _crc(x)}  # fmt: skip
        if data.y is not None:
            y = np.ascontiguousarray(data.y, dtype="<i8")
            y.tofile(tmp / "labels.i64")
            meta["labels_crc32"] = _crc(y)
        (tmp / "meta.json").write_text(json.dumps(meta))
        if final.exists() and not (final / "meta.json").is_file():
            shutil.rmtree(final, ignore_errors=True)  # a broken cache in the way
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not another process's same cache
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"note: could not keep the decoded images in {root} ({e.strerror or e}); they "
              "will be decoded again next time", file=sys.stderr)  # fmt: skip
        return None
    _drop_stale(root, source, key)
    return final


def _crc(a: np.ndarray, chunk: int = 1 << 24) -> int:
    """CRC-32 of an array's bytes (about 1 GB/s: a cache of 200,000 MNIST-sized images is
    checked in a fifth of a second), read in chunks so that a memory map is never copied."""
    flat = a.reshape(-1).view(np.uint8)
    crc = 0
    for i in range(0, len(flat), chunk):
        crc = zlib.crc32(flat[i : i + chunk], crc)
    return crc


def _drop_stale(root: Path, source: str, keep: str) -> None:
    """Remove the caches of ``source`` other than ``keep`` (its files have changed since)."""
    for d in root.iterdir():
        if d.name == keep or d.name.startswith("."):
            continue
        try:
            if json.loads((d / "meta.json").read_text()).get("source") == source:
                shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError, AttributeError):
            continue
