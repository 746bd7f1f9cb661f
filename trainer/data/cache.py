"""Decode once: an image folder or an IDX pair is decoded into a cache of uint8 images and
labels, and later loads map that file into memory instead of decoding every image again.

A cache is a folder under :func:`decoded_dir` (next to the downloaded datasets) named by a
key: a digest of the source's kind, its options (image size, say), where it is (its resolved
path) and what it holds. For an image folder that is every file's name, size, modification
time, inode and status-change time (ctime: set by the system on every change to a file, and
by no tool to a chosen value, so a file replaced by ``cp -p`` or a second extraction with the
same names, sizes and times gives another key, for the cost of the ``stat`` the listing
makes anyway); for IDX files, a digest of their bytes (one or two files, read whole: about
what the cache's own check costs). A changed source gives another key, so the cache is
rebuilt; the stale one of the same source is removed then.

The folder holds ``images.u8`` (N x C x H x W bytes), ``labels.i64`` and ``meta.json``.
``meta.json`` holds the shape, whether there are labels, the class names, the two files'
CRC-32 and the key, sealed by a digest of them all; a cache is used only when the seal, its
files' sizes and their CRC-32 all check, and only regular files are opened (a named pipe in
its place would block). One that fails is removed and rebuilt, or, where its folder cannot
be written, passed by: the images are decoded in memory. Nothing wrong is loaded from a
cache, and no fault of one ends a load.

A cache is built in a temporary folder named after its key and the builder
(``.KEY.PID.XXXXXXXX.tmp``, as :func:`trainer.files.atomic_write` names its temporary files)
and renamed into place, so that a kill while building leaves no half cache; the next build
removes what a killed builder left. A cache that cannot be written (a read-only or full disk)
costs each load a decode in memory, said once on stderr, nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import (
    LEGACY_STALE_AFTER,
    NotRegularFile,
    _alive,
    _umask,
    open_regular,
    remove_stale_temporaries,
)
from ..paths import cache_dir
from .spec import Progress

CACHE_VERSION = 3  # 3: keys hold the source's path and content; meta.json sealed
META_MAX_BYTES = 1 << 24  # a meta.json larger than this is no cache's
_CHUNK = 1 << 24
# what builders of version 2 and before named their temporary folders
_OLD_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{40}-(?P<pid>\d{1,10})")

_said: set[str] = set()  # the cache folders this process said it cannot write
_damaged: dict[str, str] = {}  # key -> what was wrong with its cache, said when rebuilt


class Damaged(Exception):
    """A cache that does not read back as it was written; the message says how."""


def decoded_dir() -> Path:
    """Where decoded caches live; OSError where that cannot be told (no home folder)."""
    try:
        return cache_dir() / "decoded"
    except RuntimeError as e:  # Path.home() without a home
        raise OSError(str(e)) from None


@dataclass
class Decoded:
    x: np.ndarray  # uint8 (N, C, H, W); memory-mapped when read from the cache
    y: np.ndarray | None  # int64 (N,)
    class_names: list[str]


# -- keys -------------------------------------------------------------------------------------
def folder_key(files: Sequence[tuple[str, os.stat_result]], options: dict) -> str:
    """The key of an image folder from its files' names (under the folder, which is among
    ``options``) and ``stat``: size, modification time, inode and status-change time (ns).
    The last two tell apart files that ``cp -p``, ``touch -r`` or another extraction gave
    the same size and modification time."""
    text = "".join(
        f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}\n"
        for name, st in files
    )
    return _digest("folder", options, text)


def digest(path: Path) -> str:
    """A digest of a regular file's bytes (read a chunk at a time); OSError as
    :func:`~trainer.files.open_regular` raises it for anything else."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(kind: str, files: Sequence[Path], root: Path | None, options: dict) -> str:
    """The key of a source of a few files (an IDX pair): each file's resolved path (or its
    name under ``root``, which is resolved), size and the digest of its bytes."""
    entries = []
    for f in files:
        name = str(f.relative_to(root)) if root is not None else os.path.realpath(f)
        entries.append((name, os.stat(f).st_size, digest(f)))
    if root is not None:
        options = {**options, "root": os.path.realpath(root)}
    return key_of(kind, entries, options)


def key_of(kind: str, entries: Sequence[tuple], options: dict) -> str:
    """The key of a source from its files' entries (a name, then what tells its contents
    apart), as listed, and its options."""
    return _digest(kind, options, "".join("\0".join(map(str, e)) + "\n" for e in entries))


def _digest(kind: str, options: dict, files: str) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps({"kind": kind, "version": CACHE_VERSION, **options}, sort_keys=True).encode()
    )
    h.update(files.encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:40]


# -- reading ----------------------------------------------------------------------------------
def load(key: str) -> Decoded | None:
    """The cache of ``key``, memory-mapped; None if there is none, or if it is damaged (then
    it is removed, and the next :func:`store` says so when it rebuilds it)."""
    try:
        folder = decoded_dir() / key
        mode = os.lstat(folder).st_mode
    except OSError:  # none (or its folder cannot be looked in: then none can be kept)
        return None
    try:
        if not stat.S_ISDIR(mode):
            raise Damaged("not a folder")
        return read(folder, key)
    except Damaged as e:
        problem = str(e)
    except (OSError, ValueError) as e:
        problem = _why(e)
    _damaged[key] = problem
    _remove(folder)
    return None


def read(folder: Path, key: str) -> Decoded:
    """The cache in ``folder`` (of ``key``), checked: Damaged, or OSError reading it."""
    meta = read_meta(folder / "meta.json", key)
    shape = tuple(meta["shape"])
    names = meta["class_names"]
    x = mapped(folder, shape)
    if _crc(x) != meta["crc32"]:
        raise Damaged("images.u8 is not what was written")
    y = None
    if meta["labels"]:
        y = _read_exactly(folder / "labels.i64", 8 * shape[0]).view("<i8")
        if _crc(y) != meta["labels_crc32"]:
            raise Damaged("labels.i64 is not what was written")
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise Damaged("labels.i64 does not match its class names")
        y = y.astype(np.int64)
    return Decoded(x, y, names)


def _seal(meta: dict, key: str) -> str:
    """The digest that binds ``meta``'s fields (all but the seal) to each other and to
    ``key``: a field changed, swapped, or taken from another cache breaks it."""
    body = {k: v for k, v in meta.items() if k != "seal"}
    text = json.dumps({"key": key, **body}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_meta(path: Path, key: str) -> dict:
    """A cache's ``meta.json``, its seal and every field checked (Damaged otherwise)."""
    with _open(path) as f:
        text = f.read(META_MAX_BYTES + 1)
    if len(text) > META_MAX_BYTES:
        raise Damaged("meta.json is too large")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise Damaged("meta.json is not JSON") from None
    if not isinstance(meta, dict):
        raise Damaged("meta.json is not a cache's")
    if meta.get("version") != CACHE_VERSION:
        raise Damaged("written by another version")
    try:
        sealed = meta.get("seal") == _seal(meta, key)
    except (ValueError, RecursionError):  # (nested as deep as it may be read, not written)
        sealed = False
    if not sealed:
        raise Damaged("meta.json is not what was written")
    shape, names = meta.get("shape"), meta.get("class_names")
    ok = (
        isinstance(shape, list)
        and len(shape) == 4
        and all(_is_int(v) and v >= 1 for v in shape)
        and isinstance(names, list)
        and all(isinstance(c, str) for c in names)
        and isinstance(meta.get("labels"), bool)
        and _is_int(meta.get("crc32"))
        and isinstance(meta.get("source"), str)
    )
    if ok and meta["labels"]:
        ok = _is_int(meta.get("labels_crc32")) and len(names) >= 1
    if not ok:  # sealed, yet not what this version writes
        raise Damaged("meta.json has fields of other kinds")
    return meta


def _open(path: Path):
    """A cache's file opened for reading, if it is a regular file (Damaged if it is missing
    or something else; OSError, as a folder that cannot be read, otherwise)."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise Damaged(f"{path.name} is missing") from None
    except IsADirectoryError:
        raise Damaged(f"{path.name} is a folder") from None
    except NotRegularFile:
        raise Damaged(f"{path.name} is not a regular file") from None
    except NotADirectoryError:
        raise Damaged("its folder is not a folder") from None


def _read_exactly(path: Path, size: int) -> np.ndarray:
    """The ``size`` bytes of the regular file ``path`` (Damaged if it holds another number)."""
    with _open(path) as f:
        have = os.fstat(f.fileno()).st_size
        if have != size:
            raise Damaged(f"{path.name} holds {have} bytes, not {size}")
        buf = np.empty(size, dtype=np.uint8)
        if f.readinto(memoryview(buf)) != size or f.read(1):
            raise Damaged(f"{path.name} changed while it was read")
    return buf


def mapped(folder: Path, shape: tuple[int, ...]) -> np.memmap:
    """A cache's images, memory-mapped copy-on-write: read from the file as they are used,
    never written back to it. Only a regular file of exactly their size is mapped (Damaged
    otherwise; OSError where it cannot be opened)."""
    path = folder / "images.u8"
    size = int(np.prod(shape, dtype=np.int64))
    with _open(path) as f:
        have = os.fstat(f.fileno()).st_size
        if have != size:
            raise Damaged(f"images.u8 holds {have} bytes, not {size}")
        return np.memmap(f, dtype=np.uint8, mode="c", shape=tuple(shape))


def _crc(a: np.ndarray, chunk: int = _CHUNK) -> int:
    """CRC-32 of an array's bytes (about 1 GB/s: a cache of 200,000 MNIST-sized images is
    checked in a fifth of a second), read in chunks so that a memory map is never copied."""
    flat = a.reshape(-1).view(np.uint8)
    crc = 0
    for i in range(0, len(flat), chunk):
        crc = zlib.crc32(flat[i : i + chunk], crc)
    return crc


# -- writing ----------------------------------------------------------------------------------
def _why(e: BaseException) -> str:
    if isinstance(e, FileExistsError):  # (a link to nothing, where a folder is made)
        return "something that is no folder is in the way"
    return (getattr(e, "strerror", None) or str(e) or type(e).__name__).lower()


def _cannot_keep(root: Path, e: OSError, key: str) -> None:
    """Say once (for this cache folder) that it cannot be written, and that loads decode in
    memory; a damaged cache that could not be rebuilt is said in the same line."""
    damaged = _damaged.pop(key, None)
    if str(root) in _said:
        return
    _said.add(str(root))
    if damaged is None:
        head = f"could not keep the decoded images in {root} ({_why(e)})"
    else:
        head = (
            f"the decoded cache {root / key} was unreadable ({damaged}) and could not "
            f"be rebuilt ({_why(e)})"
        )
    print(
        f"note: {head}: the images are decoded in memory instead, on each load while "
        "it cannot be written",
        file=sys.stderr,
    )


def writable(key: str) -> str | None:
    """None if a cache can be kept; else a few words on why not, to show while decoding
    (and said once on stderr). Made before decoding, so that nobody waits for a cache that
    cannot be written."""
    try:
        root = decoded_dir()
    except OSError as e:
        _cannot_keep(Path("~"), e, key)
        return f"there is no cache folder ({_why(e)})"
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", suffix=".tmp", dir=root))
    except OSError as e:
        _cannot_keep(root, e, key)
        return f"the cache folder {root} cannot be written ({_why(e)})"
    return None


def _temporary_name(root: Path, key: str) -> Path:
    return root / f".{key}.{os.getpid()}.{base64.b32encode(os.urandom(5)).decode().lower()}.tmp"


def _remove(path: Path) -> bool:
    """Remove a cache (or what is in its place), first moving it aside under a temporary
    name, so that a kill mid-way leaves what the next build removes, not a half cache;
    never following a link out of it. False if it could not all be removed."""
    aside = _temporary_name(path.parent, "gone")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    except OSError:
        aside = path  # (a folder that cannot be renamed cannot lose its files either)
    try:
        if not stat.S_ISDIR(os.lstat(aside).st_mode):
            os.unlink(aside)
            return True
        try:
            shutil.rmtree(aside)
        except PermissionError:  # a folder of it made read-only: it is the cache's own
            _searchable(aside)
            shutil.rmtree(aside)
    except OSError:
        return False
    return True


def _searchable(top: Path) -> None:
    """Let this process search and write each folder under ``top`` (a cache being removed;
    links are not followed), where it may."""
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        try:
            os.chmod(folder, stat.S_IRWXU)
            with os.scandir(folder) as entries:
                stack += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue


def _sweep(root: Path) -> None:
    """Remove what killed builders left in ``root``: their temporary folders (see
    :func:`~trainer.files.remove_stale_temporaries`), and those of older versions, named
    ``.tmp-KEY-PID``, once their builder is gone and an hour has passed."""
    remove_stale_temporaries(root, folders=True)
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        m = _OLD_TEMPORARY.fullmatch(entry.name)
        if m is None or _alive(int(m["pid"])):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime >= LEGACY_STALE_AFTER:
                _remove(Path(entry.path))
        except OSError:
            continue


def store(key: str, source: str, data: Decoded) -> np.ndarray | None:
    """Keep ``data`` as the cache of ``key`` (and drop older caches of ``source``); returns
    its images memory-mapped from there, or None (said once on stderr) if they could not be
    kept: then the caller uses the images it has in memory."""
    try:
        root = decoded_dir()
    except OSError as e:
        _cannot_keep(Path("~"), e, key)
        return None
    final = root / key
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        _sweep(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", suffix=".tmp", dir=root))
        os.chmod(tmp, 0o777 & ~_umask())  # as any new folder, not a temporary's 0700
        x = np.ascontiguousarray(data.x, dtype=np.uint8)
        _write(tmp / "images.u8", x)
        meta = {
            "version": CACHE_VERSION,
            "source": source,
            "shape": list(x.shape),
            "labels": data.y is not None,
            "class_names": list(data.class_names),
            "crc32": _crc(x),
        }
        if data.y is not None:
            y = np.ascontiguousarray(data.y, dtype="<i8")
            _write(tmp / "labels.i64", y)
            meta["labels_crc32"] = _crc(y)
        meta["seal"] = _seal(meta, key)
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, final)
        except OSError:
            # a cache is in the way: another process's build of the same (use it), or a
            # damaged one that could not be removed when it was read (remove it now)
            try:
                kept = read(final, key)
            except (Damaged, OSError, ValueError):
                if not _remove(final):
                    raise
                os.rename(tmp, final)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp = None
                _damaged.pop(key, None)
                return kept.x
        tmp = None
        try:
            images = mapped(final, x.shape)
        except (OSError, Damaged):
            _remove(final)  # (changed under this process since it was written)
            raise
    except (OSError, Damaged) as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _cannot_keep(root, e if isinstance(e, OSError) else OSError(str(e)), key)
        return None
    damaged = _damaged.pop(key, None)
    if damaged is not None:
        print(
            f"note: the decoded cache {final} was unreadable ({damaged}); decoded again "
            "and kept anew",
            file=sys.stderr,
        )
    _drop_stale(root, source, key)
    return images


def _write(path: Path, a: np.ndarray) -> None:
    """Write an array's bytes to a new file, a chunk at a time; OSError if they do not all
    go (``ndarray.tofile`` says nothing of a write cut short by a file size limit)."""
    flat = a.reshape(-1).view(np.uint8)
    with open(path, "xb") as f:
        for i in range(0, len(flat), _CHUNK):
            f.write(flat[i : i + _CHUNK])


def _drop_stale(root: Path, source: str, keep: str) -> None:
    """Remove the caches of ``source`` other than ``keep`` (its files have changed since)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for d in entries:
        if d.name == keep or d.name.startswith("."):
            continue
        try:
            if not d.is_dir(follow_symlinks=False):
                continue
            with open_regular(Path(d.path) / "meta.json") as f:
                meta = json.loads(f.read(META_MAX_BYTES))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(meta, dict) and meta.get("source") == source:
            _remove(Path(d.path))


# -- for the loaders (trainer.data.idx, trainer.data.folder) ---------------------------------
def source_key(kind: str, files: list[Path], root: Path | None, options: dict) -> str | None:
    """The decoded cache's key for these files, from their bytes (None: not cacheable, as a
    file that cannot be read or is no regular file; its loader says why)."""
    try:
        return fingerprint(kind, files, root, options)
    except (OSError, ValueError):
        return None


def read_cached(key: str | None, progress: Progress | None) -> Decoded | None:
    """The decoded images kept as the cache of ``key``, said to ``progress``; None if none."""
    if key is None:
        return None
    hit = load(key)
    if hit is not None and progress is not None:
        progress(1.0, f"{len(hit.x):,} images, decoded before (read from the cache)")
    return hit


def in_memory(key: str | None, progress: Progress | None) -> Progress | None:
    """``progress``, saying "in memory" and why when the cache of ``key`` cannot be kept."""
    unkept = None if key is None or progress is None else writable(key)
    if unkept is None:
        return progress
    return lambda fraction, text: progress(fraction, f"{text} (in memory: {unkept})")


def keep(key: str | None, source: str, x, y, class_names) -> np.ndarray:
    """Store the decoded images as the cache of ``key``; returns them memory-mapped from
    there (so that the decoded copy can go), or ``x`` itself if they could not be stored."""
    if key is None:
        return x
    kept = store(key, source, Decoded(x, y, list(class_names)))
    return x if kept is None else kept
