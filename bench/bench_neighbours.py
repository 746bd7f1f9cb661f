"""Nearest neighbours: how long the index takes to build, and how long a search takes, for
10,000 and 60,000 training images of the bundled 20-D MLP VAEs (784-400-20).

The index is built as the window builds it (posterior means in batches of 1,000, the
machine's threads); searches run as the window runs them, on one thread (the GUI thread's
``GUI_THREADS``): the latent search (the codes nearest to z), the pixel search (the images
nearest to a picture) and the whole search of a point (decode z, then both), for 200 prior
samples, seeded. Prints a Markdown table.

- 10,000: MNIST's t10k images (``--mnist DIR``), all of them as the searched set;
- 60,000: the Fashion-MNIST training set, where Debian's package has it
  (/usr/share/datasets/fashion-mnist), with the Fashion-MNIST 20-D example; elsewhere the
  row says so, and a stand-in row searches MNIST's 10,000 six times over (the timings
  depend on the count and the image size, not on what the images show).

    uv run python bench/bench_neighbours.py [--mnist DIR] [--queries 200]
    uv run python bench/bench_neighbours.py --smoke [--mnist DIR]

``--smoke`` runs the smallest configuration (512 images, 10 searches): seconds, to check
that the script still runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import cpu_name  # noqa: E402

from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.data import (  # noqa: E402
    DEBIAN_FASHION,
    DataSpec,
    ImageData,
    debian_fashion_available,
    load_data,
)
from trainer.examples import example_path  # noqa: E402
from trainer.loop.threads import GUI_THREADS  # noqa: E402
from trainer.neighbours import NeighbourIndex, search  # noqa: E402

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def searched_set(name: str, x: torch.Tensor, y: torch.Tensor | None, classes) -> ImageData:
    """``x`` as the training images of a data set (the index searches them)."""
    return ImageData(name, x, x[:1], y, None if y is None else y[:1], list(classes))


def percentiles(ms: list[float]) -> str:
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 95):.2f}"


def measure(label: str, model, data: ImageData, queries: int, threads: int) -> str:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    index = NeighbourIndex.build(model, data, "train")
    build = time.perf_counter() - t0
    torch.set_num_threads(GUI_THREADS)
    gen = torch.Generator().manual_seed(0)
    zs = torch.randn(queries, model.latent_dim, generator=gen)
    lat, pix, both = [], [], []
    for z in zs:
        t = time.perf_counter()
        index.query(z, 8)
        lat.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        found = search(model, index, z, 8)
        both.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        index.query_pixels(found.image, 8)
        pix.append((time.perf_counter() - t) * 1e3)
    return (
        f"| {label} | {len(index):,} | {build:.2f} | {index.nbytes / 1e6:.1f} | "
        f"{percentiles(lat)} | {percentiles(pix)} | {percentiles(both)} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--mnist",
        type=Path,
        default=DEFAULT_MNIST,
        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    )
    ap.add_argument("--queries", type=int, default=200, help="searches timed per row")
    ap.add_argument("--smoke", action="store_true", help="the smallest configuration")
    args = ap.parse_args()
    if not (args.mnist / "t10k-images-idx3-ubyte.gz").is_file():
        sys.exit(
            f"{args.mnist}: no t10k-images-idx3-ubyte.gz (the MNIST test set) there; give the "
            "folder that holds it and t10k-labels-idx1-ubyte.gz with --mnist DIR"
        )
    threads = torch.get_num_threads()
    spec = DataSpec(
        "idx",
        images=str(args.mnist / "t10k-images-idx3-ubyte.gz"),
        labels=str(args.mnist / "t10k-labels-idx1-ubyte.gz"),
    )
    mnist = load_data(spec)
    x = torch.cat([mnist.train_x.to("cpu"), mnist.test_x])  # all of t10k
    y = torch.cat([mnist.train_y, mnist.test_y])
    model = load_checkpoint(example_path("mnist-vae-20d")).model.eval()
    queries = 10 if args.smoke else args.queries
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; build on {threads} threads, "
        f"searches on {GUI_THREADS}; k = 8; {queries} searches of prior samples per row\n"
    )
    print(
        "| images searched | count | build (s) | index (MB) | latent search p50 / p95 (ms) "
        "| pixel search p50 / p95 (ms) | decode + both p50 / p95 (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    if args.smoke:
        small = searched_set("smoke", x[:512], y[:512], mnist.class_names)
        print(measure("MNIST t10k, first 512 (smoke)", model, small, queries, threads))
        return 0
    ten = searched_set("mnist", x, y, mnist.class_names)
    print(measure("MNIST t10k", model, ten, queries, threads))
    if debian_fashion_available():
        fashion = load_data(DataSpec("fashion-mnist"))
        fmodel = load_checkpoint(example_path("fashion-vae-20d")).model.eval()
        print(measure("Fashion-MNIST train", fmodel, fashion, queries, threads))
    else:
        print(
            f"| Fashion-MNIST train: not here ({DEBIAN_FASHION} is missing) | 60,000 | "
            "- | - | - | - | - |"
        )
        six = searched_set("six", x.repeat(6, 1, 1, 1), y.repeat(6), mnist.class_names)
        print(measure("stand-in: MNIST t10k six times", model, six, queries, threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
