"""Loading an image folder: the first load (decode every image, keep the cache) against the
second (the decoded cache, memory-mapped).

Not a test: prints a table. Run with

    uv run python bench/bench_data.py [--images 50000] [--size 28] [--repeats 3]

It writes a folder of PNGs (10 class sub-folders; MNIST test digits when the shared copy is
found, else random strokes) into a temporary folder, then loads it in fresh processes, as
``latent-train train --dataset folder --root DIR`` would: first with an empty cache, then
again. Each repeat starts from an empty cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from machine import cpu_name  # noqa: E402

LOAD = """
import sys, time
from trainer.data import DataSpec, load_data  # torch comes with it: not timed
t0 = time.perf_counter()
d = load_data(DataSpec("folder", root=sys.argv[1], image_size=int(sys.argv[2])))
print(time.perf_counter() - t0, len(d.train_x) + len(d.test_x))
"""


def digits() -> np.ndarray | None:
    from trainer.data import read_idx

    for d in (ROOT.parent / "shared" / "data" / "mnist", ROOT / ".." / "shared" / "data" / "mnist"):
        f = d / "t10k-images-idx3-ubyte.gz"
        if f.is_file():
            return read_idx(f, "images")
    return None


def write_folder(root: Path, n: int, size: int) -> float:
    from PIL import Image

    t0 = time.perf_counter()
    src = digits()
    rng = np.random.default_rng(0)
    for k in range(10):
        (root / f"class{k}").mkdir(parents=True)
    for i in range(n):
        if src is not None:
            px = src[i % len(src)]
            if i >= len(src):  # a shifted copy: another file, another image
                px = np.roll(px, (i // len(src)) % 5 - 2, axis=1)
        else:
            px = (rng.random((28, 28)) < 0.15).astype(np.uint8) * 255
        img = Image.fromarray(px)
        if size != 28:
            img = img.resize((size, size), Image.BILINEAR)
        img.save(root / f"class{i % 10}" / f"{i:06d}.png")
    return time.perf_counter() - t0


def load(folder: Path, size: int, cache: Path) -> tuple[float, float]:
    env = dict(os.environ, LATENT_EXPLORER_DATA=str(cache))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", LOAD, str(folder), str(size)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    wall = time.perf_counter() - t0
    inside = float(out.stdout.split()[0])
    return inside, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        folder = tmp / "images"
        made = write_folder(folder, args.images, args.size)
        mb = sum(f.stat().st_size for f in folder.rglob("*.png")) / 1e6
        firsts, seconds = [], []
        for r in range(args.repeats):
            cache = tmp / f"cache{r}"
            firsts.append(load(folder, args.size, cache))
            seconds.append(load(folder, args.size, cache))
        cache_mb = sum(f.stat().st_size for f in (tmp / "cache0").rglob("*") if f.is_file()) / 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = cpu_name()
    print()
    print("Latent Explorer — loading an image folder, decoded once")
    print(f"machine : {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"folder  : {args.images:,} PNGs of {args.size}x{args.size} in 10 class folders, "
          f"{mb:.1f} MB (written in {made:.1f} s); the cache holds {cache_mb:.1f} MB")  # fmt: skip
    print(f"runs    : {args.repeats}, each from an empty cache, each load in a fresh process")
    print("          (load_data: the call alone; process: with Python's start and torch's import)")
    print()

    def row(name, pairs):
        ins = [p[0] for p in pairs]
        wall = [p[1] for p in pairs]
        runs = " / ".join(f"{v:.2f}" for v in ins)
        print(f"{name:<40} {statistics.median(ins):>9.2f} {statistics.median(wall):>9.2f}"
              f"   {runs}")  # fmt: skip

    print(f"{'load':<40} {'load_data':>9} {'process':>9}   runs (load_data, s)")
    print("-" * 90)
    row("first load: decode, keep the cache", firsts)
    row("second load: the cache, memory-mapped", seconds)
    print()
    ratio = statistics.median(p[0] for p in firsts) / statistics.median(p[0] for p in seconds)
    print(f"the second load is {ratio:.0f}x faster (median load_data times)")


if __name__ == "__main__":
    main()
