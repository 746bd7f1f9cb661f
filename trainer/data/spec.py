"""Which data to load: :class:`DataSpec`, the sources it may name and the bundled test sets'
catalogue (their names and titles), and :class:`DataError`.

Light (no torch), so that the command line's parser and the window's settings can
name data without loading the machinery that reads it.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import reprlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import MAX_SEED
from .imaging import BACKGROUNDS

SOURCES = ("mnist", "fashion-mnist", "kmnist", "shapes", "idx", "folder", "npz", "celeba")
# the test images bundled with the example models (assets/examples/data/<bundle>): data to
# explore a model with, never to train on, so it is no choice of ``--dataset``
EXAMPLE = "example"
SOURCE_TITLES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "kmnist": "Kuzushiji-MNIST",
    "shapes": "the built-in shapes",
    "celeba": "CelebA faces",
}
CELEBA_SIZES = (32, 64, 128)  # the sides CelebA's faces are resized to
CELEBA_SIZE = 64  # … without --image-size

# progress(fraction in 0..1 or None, text): called during long loads; may raise to cancel
Progress = Callable[[float | None, str], None]

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")  # a bundled test set's name


class DataError(Exception):
    """Data could not be loaded; the message names the file or source and what to do.

    ``str(e)`` speaks of the command line's flags; ``e.gui``, where the window names the
    same thing differently, says it in the window's terms.
    """

    def __init__(self, message: str, gui: str | None = None) -> None:
        super().__init__(message)
        self.gui = gui


def _short(v: Any) -> str:
    """``repr(v)``, cut short: values in messages may come from any file."""
    return reprlib.repr(v)


def check_bundle_name(name) -> str:
    """``name`` if it can name a bundled test set (a plain name, never a path)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(
            f"bundled example data must be named by a short lowercase name, not {name!r}"
        )
    return name


# -- the bundled test sets --------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    name: str
    title: str  # "MNIST digits"
    origin: str  # which images, from where
    licence: str
    trained_on: str  # what its examples were trained on, for the runs table


BUNDLES = {
    "mnist": Bundle(
        "mnist", "MNIST digits",
        "the 2,000 held-out digits of the seeded 8,000 / 2,000 split of the official MNIST "
        "test set (t10k)",
        "MNIST, by Yann LeCun, Corinna Cortes and Christopher J. C. Burges: CC BY-SA 3.0",
        "MNIST digits: 8,000 of the official test set (t10k), 2,000 held out",
    ),
    "fashion-mnist": Bundle(
        "fashion-mnist", "Fashion-MNIST",
        "2,000 images drawn (seed 0) from the 10,000 of the official Fashion-MNIST test set",
        "Fashion-MNIST, by Zalando SE (Han Xiao, Kashif Rasul, Roland Vollgraf): MIT licence",
        "Fashion-MNIST: its 60,000 training images",
    ),
    "shapes": Bundle(
        "shapes", "shapes",
        "the 1,200 test images of the built-in shapes (6,000 made with seed 0, 20% held out)",
        "made by this program",
        "shapes: 4,800 of 6,000 made with seed 0, 1,200 held out",
    ),
}  # fmt: skip


def bundle_title(name: str | None) -> str:
    b = BUNDLES.get(name or "")
    return b.title if b is not None else str(name)


def trained_on(name: str | None) -> str:
    """What the examples of bundle ``name`` were trained on ("MNIST digits: 8,000 of …")."""
    b = BUNDLES.get(name or "")
    return b.trained_on if b is not None else f"the bundled {bundle_title(name)} test images"


@dataclass(frozen=True)
class DataSpec:
    """Which data to load; stored in checkpoints so that a model can find its data again."""

    source: str = "shapes"
    images: str | None = None  # idx: images file; npz: the .npz or .npy file
    labels: str | None = None  # idx, npz (.npy images): labels file (optional)
    root: str | None = None  # folder: one sub-folder per class; celeba: the extracted CelebA
    image_size: int = 28  # folder / shapes / celeba: side of the (square) images
    test_fraction: float = 0.2  # sources without an official test split
    seed: int = 0
    shapes_count: int = 6000  # shapes: images in all
    bundle: str | None = None  # example: the bundled test set's name ("mnist", …)
    background: str = "white"  # folder: what transparent pixels are put on (or "black")

    def __post_init__(self) -> None:
        # from_dict is fed checkpoint metadata and settings files: any type may arrive here
        if not isinstance(self.source, str) or self.source not in (*SOURCES, EXAMPLE):
            raise DataError(
                f"unknown dataset {_short(self.source)}; choose one of {', '.join(SOURCES)}"
            )
        for name in ("images", "labels", "root", "bundle"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise DataError(
                    f"data field {name!r} must be a file name or empty, not {_short(v)}"
                )
        for name in ("image_size", "seed", "shapes_count"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise DataError(f"data field {name!r} must be a whole number, not {_short(v)}")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.background, str) or self.background not in BACKGROUNDS:
            raise DataError(
                f"data field 'background' must be {' or '.join(BACKGROUNDS)}, "
                f"not {_short(self.background)}"
            )
        tf = self.test_fraction
        if isinstance(tf, bool) or not isinstance(tf, numbers.Real) or not math.isfinite(tf):
            raise DataError(
                f"data field 'test_fraction' must be a number between 0 and 1, not {_short(tf)}"
            )
        object.__setattr__(self, "test_fraction", float(tf))
        if self.source == "idx" and not self.images:
            raise DataError(
                "--dataset idx needs --images FILE (and optionally --labels FILE)",
                gui="IDX files need an images file: choose one under Data ▸ Images "
                "(a labels file is optional).",
            )
        if self.source == "folder" and not self.root:
            raise DataError(
                "--dataset folder needs --root DIR (one sub-folder per class)",
                gui="An image folder needs a folder: choose one under Data ▸ Folder "
                "(one sub-folder per class).",
            )
        if self.source == "npz" and not self.images:
            raise DataError(
                "--dataset npz needs --images FILE (.npz with arrays x and y, or .npy images "
                "and optionally --labels FILE.npy)",
                gui="NumPy data needs a file: choose one under Data ▸ Images (.npz, or .npy "
                "images with an optional .npy of labels).",
            )
        if self.source == "celeba" and not self.root:
            raise DataError(
                "--dataset celeba needs --root DIR (the extracted CelebA: img_align_celeba/, "
                "list_attr_celeba.txt, list_eval_partition.txt)",
                gui="CelebA needs its folder: choose it under Data ▸ Folder (the one holding "
                "img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt).",
            )
        if self.source == "celeba" and self.image_size not in CELEBA_SIZES:
            sizes = ", ".join(map(str, CELEBA_SIZES[:-1])) + f" or {CELEBA_SIZES[-1]}"
            raise DataError(
                f"CelebA's faces are resized to {sizes} pixels (--image-size), "
                f"not {self.image_size}"
            )
        if self.source == EXAMPLE:
            check_bundle_name(self.bundle)  # a name, never a path
        if not (0.0 < self.test_fraction < 1.0):
            raise DataError(f"test fraction must be between 0 and 1, not {self.test_fraction}")
        if not (8 <= self.image_size <= 256):
            raise DataError(f"image size must be 8 to 256 pixels, not {self.image_size}")
        if not (10 <= self.shapes_count <= 1_000_000):
            raise DataError(f"shapes count must be 10 to 1000000, not {self.shapes_count}")
        if not (0 <= self.seed <= MAX_SEED):
            raise DataError(f"seed must be 0 to {MAX_SEED}, not {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        if not isinstance(d, dict):
            raise DataError(f"data settings must be a mapping of fields, not {_short(d)}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        """The data's name for people: "Fashion-MNIST", "IDX file t10k-images.gz", …"""
        if self.source == "idx":
            return f"IDX file {Path(self.images).name}"
        if self.source == "folder":
            return f"image folder {self.root}"
        if self.source == "npz":
            return f"NumPy file {Path(self.images).name}"
        if self.source == EXAMPLE:
            return f"the bundled {bundle_title(self.bundle)} test images"
        return SOURCE_TITLES[self.source]


def _real(path: str | None) -> str | None:
    """``path`` resolved (links, ``..``), for telling two names of one file apart."""
    if path is None:
        return None
    try:
        return os.path.realpath(os.path.expanduser(path))
    except (OSError, ValueError):
        return path


def same_data(a: DataSpec | None, b: DataSpec | None) -> bool:
    """``a`` and ``b`` name the same images: the same dataset, IDX file or folder (a model
    trained on one and continued on the other is not fine-tuned on other data). The shapes'
    count and a source's test split do not count; an example's bundled test images are
    its dataset's (a bundle is named as its dataset's source)."""

    def identity(s: DataSpec) -> tuple:
        if s.source == EXAMPLE:
            return (s.bundle,)
        if s.source == "idx":
            return ("idx", _real(s.images))
        if s.source == "npz":
            return ("npz", _real(s.images))
        if s.source in ("folder", "celeba"):
            return (s.source, _real(s.root))
        return (s.source,)

    return a is not None and b is not None and identity(a) == identity(b)
