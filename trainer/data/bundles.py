"""The test images bundled with the example models: ``examples/data/<bundle>/`` holds IDX
files and ``bundle.json`` (the class names and the licence), so that an example can be
explored with no dataset and no network. Their names and titles are
:data:`trainer.data.spec.BUNDLES`."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import torch

from ..config import MAX_CLASSES
from ..files import JSONFields, JSONFileError, atomic_write, is_text, kind_of, read_json
from ..paths import examples_dir
from .arrays import ImageData, _as_nchw, _labels
from .idx import read_idx
from .spec import BUNDLES, DataError, Progress, bundle_title, check_bundle_name

BUNDLE_IMAGES = 2000  # test images bundled per dataset (at most)
IMAGES_FILE, LABELS_FILE, BUNDLE_FILE = (
    "test-images-idx3-ubyte.gz",
    "test-labels-idx1-ubyte.gz",
    "bundle.json",
)


class ExampleError(Exception):
    """An example that cannot be found, read or built; the message says why."""


def bundle_dir(name: str, root: Path | None = None) -> Path:
    return (root or examples_dir()) / "data" / check_bundle_name(name)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    """``arr`` (uint8) as a gzipped IDX file, byte for byte the same each time."""
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()

    def write(raw):
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(head + body)

    atomic_write(path, write)


def _write_text(path: Path, text: str) -> None:
    blob = text.encode()
    atomic_write(path, lambda f: f.write(blob))


def write_bundle(name: str, data: ImageData, root: Path | None = None, seed: int = 0) -> Path:
    """Write at most :data:`BUNDLE_IMAGES` of ``data``'s test images (and labels) as the
    bundled test set ``name``; returns its folder."""
    x, y = data.test_x.numpy(), data.test_y
    if y is None:
        raise ExampleError(f"{name}: bundled test images need labels")
    idx = np.arange(len(x))
    if len(x) > BUNDLE_IMAGES:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), BUNDLE_IMAGES, replace=False))
    folder = bundle_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = x[idx]
    _write_idx(folder / IMAGES_FILE, imgs[:, 0] if imgs.shape[1] == 1 else imgs)
    _write_idx(folder / LABELS_FILE, y.numpy()[idx].astype(np.uint8))
    b = BUNDLES.get(name)
    info = {
        "title": b.title if b else name,
        "classes": list(data.class_names),
        "images": len(idx),
        "origin": b.origin if b else "",
        "licence": b.licence if b else "",
    }
    _write_text(folder / BUNDLE_FILE, json.dumps(info, indent=1) + "\n")
    return folder


def _read_json(path: Path, what: str = "") -> JSONFields:
    """The object the JSON file ``path`` holds (read as every file a user could have
    edited or damaged is: :func:`trainer.files.read_json`); DataError naming it, with
    ``what`` to do about it."""
    try:
        return JSONFields(path, read_json(path))
    except JSONFileError as e:
        raise DataError(f"{e}; {what}" if what else str(e)) from None


def load_bundle(name: str | None, progress: Progress | None = None, root: Path | None = None):
    """The bundled test set ``name`` as :class:`ImageData` with no training images."""
    folder = bundle_dir(check_bundle_name(name), root)
    hint = "reinstall Latent Explorer or run latent-train examples --rebuild"
    if not folder.is_dir():
        raise DataError(f"the bundled {bundle_title(name)} test images are not in {folder}; {hint}")
    info = _read_json(folder / BUNDLE_FILE, hint)
    try:
        names = info.items("classes")
        title = info.text("title", None)
        if not 1 <= len(names) <= MAX_CLASSES:
            raise info.error("classes", f"must name 1 to {MAX_CLASSES} classes, not {len(names)}")
        for i, n in enumerate(names):
            if not (isinstance(n, str) and is_text(n)):
                raise info.error(f"classes[{i}]", f"must be a class's name, not {kind_of(n)}")
    except JSONFileError as e:
        raise DataError(f"{e}; {hint}") from None
    x = _as_nchw(read_idx(folder / IMAGES_FILE, "images", progress), str(folder / IMAGES_FILE))
    y = read_idx(folder / LABELS_FILE, "labels", progress)
    if len(y) != len(x):
        raise DataError(f"{folder}: {len(y)} labels for {len(x)} images; {hint}")
    y, _ = _labels(y, str(folder / LABELS_FILE), classes=len(names))
    title = title if title is not None else bundle_title(name)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    return ImageData(
        name=f"{title} (bundled test images)",
        train_x=xt[:0],
        test_x=xt,
        train_y=yt[:0],
        test_y=yt,
        class_names=list(names),
    )
