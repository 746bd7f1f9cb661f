"""How long a map of many codes takes, first call and later calls, and how well each method
keeps the classes apart.

    uv run python bench/bench_maps.py [--mnist DIR] [--fashion DIR]
    uv run python bench/bench_maps.py --smoke [--mnist DIR]

The codes are posterior means of 20-D models: the bundled ``mnist-vae-20d`` example's on its
2,000 bundled test digits, the same model's on the 10,000 digits of MNIST's test set
(``--mnist``), and ``fashion-vae-20d``'s on all 70,000 Fashion-MNIST images (Debian's
``dataset-fashion-mnist`` files, ``--fashion``; without them that row says so: the codes are
never tiled or jittered up to a size). Each (method, size) is timed in a fresh interpreter:
the first call includes importing the library and numba's compilation, the later call is the
same map again in that process. The second table is the 5-nearest-neighbour class agreement
of each method's map of the 2,000 bundled test codes.

``--smoke`` maps 300 codes once per method: it checks that the script runs, nothing more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
METHODS = ("umap", "tsne", "pca")
# the t-SNE not chosen, measured beside them up to the size where it ends in minutes:
# scikit-learn's (Barnes-Hut gradients, no transform for new points)
COMPARED = {"sklearn-tsne": 10_000}


def sklearn_tsne(codes: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, random_state=0, init="pca").fit_transform(codes)


def encode(example: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    from trainer.checkpoint import load_checkpoint
    from trainer.evaluate import posterior_means
    from trainer.examples import example_path

    ck = load_checkpoint(example_path(example))
    return posterior_means(ck.model, x).numpy(), np.asarray(y, dtype=np.int64)


def bundled_codes() -> tuple[np.ndarray, np.ndarray]:
    from trainer.checkpoint import load_checkpoint
    from trainer.data import load_data
    from trainer.examples import example_path

    data = load_data(load_checkpoint(example_path("mnist-vae-20d")).data_spec)
    return encode("mnist-vae-20d", data.test_x, data.test_y.numpy())


def mnist_codes(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from trainer.data.idx import read_idx

    x = read_idx(folder / "t10k-images-idx3-ubyte.gz", "images")
    y = read_idx(folder / "t10k-labels-idx1-ubyte.gz", "labels")
    x = torch.from_numpy(np.ascontiguousarray(x.reshape(len(x), 1, 28, 28)))
    return encode("mnist-vae-20d", x, y)


def fashion_codes(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from trainer.data.idx import read_idx

    def pick(name: str) -> Path:
        return folder / name if (folder / name).exists() else folder / f"{name}.gz"

    xs, ys = [], []
    for prefix in ("train", "t10k"):
        x = read_idx(pick(f"{prefix}-images-idx3-ubyte"), "images")
        xs.append(x.reshape(len(x), 1, 28, 28))
        ys.append(read_idx(pick(f"{prefix}-labels-idx1-ubyte"), "labels"))
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate(xs)))
    return encode("fashion-vae-20d", x, np.concatenate(ys))


def worker(method: str, codes_file: str, labels_file: str) -> None:
    """In a fresh interpreter: time the first map (import, compilation and all) and the same
    map again; print them and the later map's agreement as JSON."""
    t0 = time.perf_counter()
    from trainer.maps import neighbour_agreement, project

    codes, labels = np.load(codes_file), np.load(labels_file)

    def run() -> np.ndarray:
        if method in COMPARED:
            return sklearn_tsne(codes)
        return project(codes, method, seed=0).xy

    run()
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    xy = run()
    later = time.perf_counter() - t1
    print(json.dumps({"first": first, "later": later, "agree": neighbour_agreement(xy, labels)}))


def measure(method: str, codes: np.ndarray, labels: np.ndarray, tmp: Path) -> dict:
    np.save(tmp / "codes.npy", codes)
    np.save(tmp / "labels.npy", labels)
    r = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            method,
            str(tmp / "codes.npy"),
            str(tmp / "labels.npy"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise SystemExit(f"{method} on {len(codes):,} codes failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    from trainer.data.downloads import DEBIAN_FASHION, debian_fashion_available

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="MNIST's t10k files")
    ap.add_argument(
        "--fashion", type=Path, default=DEBIAN_FASHION, help="Fashion-MNIST's four IDX files"
    )
    ap.add_argument("--smoke", action="store_true", help="300 codes once per method")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    sets: list[tuple[str, tuple[np.ndarray, np.ndarray] | None]] = []
    bundled = bundled_codes()
    if args.smoke:
        sets.append(("bundled MNIST test digits, first 300", (bundled[0][:300], bundled[1][:300])))
    else:
        sets.append(("bundled MNIST test digits (mnist-vae-20d)", bundled))
        if (args.mnist / "t10k-images-idx3-ubyte.gz").is_file():
            sets.append(("MNIST t10k (mnist-vae-20d)", mnist_codes(args.mnist)))
        else:
            sets.append((f"MNIST t10k: not measured, no t10k files in {args.mnist}", None))
        if debian_fashion_available(args.fashion):
            sets.append(("Fashion-MNIST, all (fashion-vae-20d)", fashion_codes(args.fashion)))
        else:
            sets.append((f"70,000: not measured, no Fashion-MNIST files in {args.fashion}", None))
    rows, agreement = [], {}
    with tempfile.TemporaryDirectory() as d:
        for what, pair in sets:
            for method in (*METHODS, *COMPARED):
                if method in COMPARED and (
                    args.smoke or pair is None or len(pair[0]) > COMPARED[method]
                ):
                    continue
                if pair is None:
                    rows.append((method, what, None))
                    continue
                r = measure(method, *pair, Path(d))
                rows.append((method, f"{what}: {len(pair[0]):,}", r))
                if pair is sets[0][1]:
                    agreement[method] = r["agree"]
                print(
                    f"{method} {len(pair[0]):,}: {r['first']:.1f} s / {r['later']:.1f} s",
                    file=sys.stderr,
                )
    print(f"{os.cpu_count()} CPUs; each (method, codes) in a fresh interpreter; seconds")
    print()
    print("| method | codes | first call (import, compile, map) | later call |")
    print("|:-------|:------|----------------------------------:|-----------:|")
    for method, what, r in rows:
        if r is None:
            print(f"| {method} | {what} | - | - |")
        else:
            print(f"| {method} | {what} | {r['first']:.2f} | {r['later']:.2f} |")
    print()
    n = len(sets[0][1][0])
    print(f"5-NN class agreement of the map of {n:,} bundled test codes (mnist-vae-20d)")
    print()
    print("| method | 5-NN class agreement |")
    print("|:-------|---------------------:|")
    for method in (*METHODS, *COMPARED):
        if method in agreement:
            print(f"| {method} | {agreement[method]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
