"""The film kept with its run: ``film.bin`` beside the run's model, written whole or not at
all and read back only when every byte checks out (:func:`write_film`, :func:`read_film`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .config import FILM_MAX_MB, FILM_MIN_MB
from .files import atomic_write, open_regular
from .film import Film, FilmError, Frame
from .latent import MAP_POINTS

# -- a film kept with its run -------------------------------------------------------------------
# One file: FILM_MAGIC, the header's length (8 bytes, little-endian), the header (JSON: the
# format's version, whose model the film is, the film's state, each frame's numbers and the
# payload's sizes and SHA-256), then the payload: the images the film encodes and their
# labels, zlib-compressed (a digit's dark ground packs 4 to 1), and every frame's manifold
# and codes as they are in memory (a decoded manifold packs by a fifth at most, at a cost of
# seconds for a full film: the frames' memory bound is the file's bound).
FILM_MAGIC = b"LATENT-EXPLORER-FILM\n"
FILM_FORMAT = 1
MAX_FILM_HEADER = 16 << 20  # bytes of JSON: ~150 per frame
MAX_FILM_IMAGE_BYTES = 256 << 20  # the held-out images a film encodes (MAP_POINTS of them)


def _film_arrays(film: Film) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """(the images and labels, the frames' arrays, the frames' numbers); its lock held."""
    head = [np.ascontiguousarray(film.images.numpy(), dtype=np.uint8)]
    if film.labels is not None:
        head.append(np.ascontiguousarray(film.labels, dtype="<i8"))
    arrays, rows = [], []
    for f in film.frames:
        arrays += [
            np.ascontiguousarray(f.manifold, dtype=np.uint8),
            np.ascontiguousarray(f.codes, dtype="<f2"),
        ]
        rows.append(
            {
                "step": f.step,
                "epoch": f.epoch,
                "epoch_end": f.epoch_end,
                "test_nelbo": f.test_nelbo,
                "train_nelbo": f.train_nelbo,
                "manifold": list(f.manifold.shape),
            }
        )
    return head, arrays, rows


def write_film(film: Film, path: str | os.PathLike, owner: dict) -> Path:
    """Keep ``film`` in ``path`` (written whole or not at all), as the film of ``owner``
    (plain values naming its model: the run, its step, …; :func:`read_film` gives them back).
    Raises :class:`FilmError` naming the file."""
    import hashlib
    import json
    import zlib

    path = Path(path)
    with film._lock:  # a consistent state, should a run still be adding frames
        head, arrays, rows = _film_arrays(film)
        state = {
            "image_shape": list(film.image_shape),
            "images": len(film.images),
            "labels": film.labels is not None,
            "class_names": list(film.class_names),
            "grid": film.grid,
            "klass": film.klass,
            "budget": film.budget,
            "growth": film.growth,
            "stride": film.stride,
            "halvings": film.halvings,
            "dropped": film.dropped,
            "next_step": film.next_step,
            "early_until": film.early_until,
            "plane_names": list(film.plane_names),
            "conditional": film.conditional,
            "taken": film.taken,
            "seconds": film.seconds,
        }
    packed = zlib.compress(b"".join(a.tobytes() for a in head), 1)
    sha = hashlib.sha256(packed)
    for a in arrays:
        sha.update(a.data)
    header = json.dumps(
        {
            "format": FILM_FORMAT,
            "owner": owner,
            "film": state,
            "frames": rows,
            "payload": {
                "bytes": len(packed) + sum(a.nbytes for a in arrays),
                "packed": len(packed),
                "raw_bytes": sum(a.nbytes for a in head + arrays),
                "sha256": sha.hexdigest(),
            },
        }
    ).encode()

    def write(f):
        f.write(FILM_MAGIC + len(header).to_bytes(8, "little") + header)
        f.write(packed)
        for a in arrays:
            f.write(a.data)

    try:
        return atomic_write(path, write)
    except OSError as e:
        raise FilmError(f"{path}: could not be written ({e.strerror or e})") from None


def read_film(path: str | os.PathLike) -> Film:
    """The film :func:`write_film` kept in ``path``, its ``owner`` set to what was written
    with it. Raises :class:`FilmError` naming the file for anything else (a foreign or
    damaged file, a newer format): never a half-read film."""
    import hashlib
    import json
    import zlib

    path = Path(path)

    def bad(why: str) -> FilmError:
        return FilmError(f"{path}: {why}")

    try:
        with open_regular(path) as f:
            if f.read(len(FILM_MAGIC)) != FILM_MAGIC:
                raise bad("is not a film kept by Latent Explorer")
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= MAX_FILM_HEADER:
                raise bad("is damaged (its header's length is impossible)")
            try:
                head = json.loads(f.read(n))
            except (ValueError, RecursionError):
                raise bad("is damaged (its header is not readable)") from None
            if not isinstance(head, dict):
                raise bad("is damaged (its header is not an object)")
            version = head.get("format")
            if isinstance(version, int) and version > FILM_FORMAT:
                raise bad(
                    f"was kept by a newer version of Latent Explorer (film format "
                    f"{version}; this one reads {FILM_FORMAT})"
                )
            if version != FILM_FORMAT:
                raise bad(f"is damaged (unknown film format {version!r})")
            try:
                pay = head["payload"]
                size, packed, raw_size = (
                    int(pay["bytes"]),
                    int(pay["packed"]),
                    int(pay["raw_bytes"]),
                )
                digest = str(pay["sha256"])
            except (KeyError, TypeError, ValueError, OverflowError):
                raise bad("is damaged (its header does not describe its frames)") from None
            limit = int(FILM_MAX_MB * 2**20) + MAX_FILM_IMAGE_BYTES
            if not (0 < packed <= size <= limit and 0 < raw_size <= limit):
                raise bad("is damaged (it claims more frames than a film can hold)")
            payload = f.read(size + 1)
    except OSError as e:
        raise bad(f"could not be read ({e.strerror or e})") from None
    if len(payload) != size:
        raise bad(
            "is damaged (it is cut short)"
            if len(payload) < size
            else "is damaged (it has bytes after its frames)"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise bad("is damaged (its checksum does not match its contents)")
    unpack = zlib.decompressobj()
    try:
        images = unpack.decompress(memoryview(payload)[:packed], raw_size + 1)
    except zlib.error:
        raise bad("is damaged (its images do not decompress)") from None
    if not unpack.eof or unpack.unused_data or len(images) + size - packed != raw_size:
        raise bad("is damaged (its frames are not the size its header says)")
    try:
        film = _film_from(head, memoryview(images), memoryview(payload)[packed:])
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
        raise bad(f"is damaged ({e})") from None
    return film


def _film_from(head: dict, images_raw: memoryview, frames_raw: memoryview) -> Film:
    st, rows = head["film"], head["frames"]
    if not isinstance(st, dict) or not isinstance(rows, list):
        raise ValueError("its header does not describe its frames")
    shape = tuple(int(v) for v in st["image_shape"])
    n = int(st["images"])
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1 or not 0 < n <= MAP_POINTS:
        raise ValueError("its images are not of a film")
    raw, at = images_raw, 0

    def take(count: int, dtype, dims) -> np.ndarray:
        nonlocal at
        a = np.frombuffer(raw, dtype=dtype, count=count, offset=at).reshape(dims)
        at += a.nbytes
        return a.copy()

    images = torch.from_numpy(take(n * math.prod(shape), np.uint8, (n, *shape)))
    labels = None
    if st["labels"]:
        labels = take(n, "<i8", (n,))
        if labels.min() < 0:
            raise ValueError("its labels are negative")
        labels = torch.from_numpy(labels)
    if at != len(raw):
        raise ValueError("its images are not the size its header says")
    raw, at = frames_raw, 0
    budget = float(st["budget"]) / 2**20
    film = Film(
        images,
        labels,
        [str(c) for c in st["class_names"]],
        budget_mb=min(max(budget, FILM_MIN_MB), FILM_MAX_MB),
        klass=int(st["klass"]),
        growth=float(st["growth"]),
    )
    if film.klass < 0:
        raise ValueError("its class is negative")
    if film.grid != int(st["grid"]):
        raise ValueError("its manifold's grid does not fit its images")
    c, h, w = shape
    side = (film.grid * h, film.grid * w)
    frames = []
    for r in rows:
        dims = tuple(int(v) for v in r["manifold"])
        if dims not in (side, (*side, 3)) or (c == 3) != (len(dims) == 3):
            raise ValueError("a frame's manifold is not of its images")
        manifold = take(math.prod(dims), np.uint8, dims)
        codes = take(2 * n, "<f2", (n, 2))
        test, train = r["test_nelbo"], r["train_nelbo"]
        frames.append(
            Frame(
                step=int(r["step"]),
                epoch=float(r["epoch"]),
                epoch_end=bool(r["epoch_end"]),
                manifold=manifold,
                codes=codes.astype(np.float16),
                test_nelbo=None if test is None else float(test),
                train_nelbo=None if train is None else float(train),
            )
        )
    if at != len(raw):
        raise ValueError("its frames are not the size its header says")
    if any(b.step < a.step for a, b in zip(frames, frames[1:])):
        raise ValueError("its frames are out of order")
    film.frames = frames
    film.stride = max(1, int(st["stride"]))
    film.halvings, film.dropped = int(st["halvings"]), int(st["dropped"])
    film.next_step = int(st["next_step"])
    early = st["early_until"]
    film.early_until = None if early is None else float(early)
    names = [str(v) for v in st["plane_names"]]
    film.plane_names = (names[0], names[1])
    film.conditional = bool(st["conditional"])
    film.taken, film.seconds = int(st["taken"]), float(st["seconds"])
    film.owner = head["owner"] if isinstance(head.get("owner"), dict) else {}
    film.version = 1
    return film
