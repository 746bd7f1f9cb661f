"""The torchvision MNIST family (MNIST, Fashion-MNIST, Kuzushiji-MNIST), downloaded into
:func:`trainer.paths.cache_dir`, and Debian's Fashion-MNIST files where they are installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..paths import cache_dir
from .arrays import ImageData, _as_nchw, _finish, _labels
from .idx import read_idx
from .spec import DataError, DataSpec, Progress

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


_TV = {
    "mnist": ("MNIST", MNIST_CLASSES),
    "fashion-mnist": ("FashionMNIST", FASHION_CLASSES),
    "kmnist": ("KMNIST", KMNIST_CLASSES),
}


def offline_hint() -> str:
    alts = [
        "--dataset shapes (built in, no files needed)",
        "--dataset idx --images FILE [--labels FILE]",
        "--dataset folder --root DIR",
    ]
    if debian_fashion_available():
        alts.insert(0, "--dataset fashion-mnist (Debian's files are installed)")
    else:
        alts.append("Fashion-MNIST offline via `apt-get install dataset-fashion-mnist`")
    return "offline alternatives: " + "; ".join(alts)


def debian_fashion_available(root: Path | None = None) -> bool:
    """True if Debian's ``dataset-fashion-mnist`` files are in ``root`` (default: where the
    package puts them; looked up at call time, so tests and callers can move it)."""
    root = DEBIAN_FASHION if root is None else Path(root)
    names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    return all((root / n).exists() or (root / (n + ".gz")).exists() for n in names)


def _idx_pair(
    root: Path, prefix: str, classes: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    def pick(n: str) -> Path:
        return root / n if (root / n).exists() else root / (n + ".gz")

    images, labels = pick(f"{prefix}-images-idx3-ubyte"), pick(f"{prefix}-labels-idx1-ubyte")
    x = _as_nchw(read_idx(images, "images", progress), str(images))
    y = read_idx(labels, "labels", progress)
    if len(y) != len(x):
        raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images}")
    return x, _labels(y, str(labels), classes)[0]


def is_cached(source: str) -> bool:
    """True if a torchvision dataset is already on disk (or, for Fashion-MNIST, Debian's)."""
    if source == "fashion-mnist" and debian_fashion_available():
        return True
    if source not in _TV:
        return True
    raw = cache_dir() / _TV[source][0] / "raw"
    return (raw / "train-images-idx3-ubyte").exists() and (raw / "t10k-images-idx3-ubyte").exists()


def load_torchvision(spec: DataSpec, progress: Progress | None = None) -> ImageData:
    cls_name, class_names = _TV[spec.source]
    if spec.source == "fashion-mnist" and debian_fashion_available():
        xtr, ytr = _idx_pair(DEBIAN_FASHION, "train", len(class_names), progress)
        xte, yte = _idx_pair(DEBIAN_FASHION, "t10k", len(class_names), progress)
        return _finish("fashion-mnist", xtr, xte, ytr, yte, class_names)
    import torchvision.datasets as tvd  # only here: a second or more to import

    root = cache_dir()
    if progress is not None and not is_cached(spec.source):
        progress(None, f"Downloading {spec.describe()}…")
    try:
        root.mkdir(parents=True, exist_ok=True)
        ds = {
            s: getattr(tvd, cls_name)(str(root), train=s == "train", download=True)
            for s in ("train", "test")
        }
    except Exception as e:  # urllib / socket / RuntimeError: all mean "could not get it"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".:")
        head = f"could not download {spec.source} into {root} ({first})"
        here = "Fashion-MNIST (installed on this computer), " if debian_fashion_available() else ""
        raise DataError(
            f"{head}; " + offline_hint(),
            gui=f"{head}. Without internet, choose {here}Shapes (built in), IDX files or an "
            "image folder under Data.",
        ) from None
    x = {s: ds[s].data.numpy()[:, None] for s in ds}
    y = {s: ds[s].targets.numpy().astype(np.int64) for s in ds}
    return _finish(spec.source, x["train"], x["test"], y["train"], y["test"], class_names)
