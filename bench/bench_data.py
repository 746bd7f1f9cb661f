"""An image folder: its first load (decode every image, keep the cache) against the second
(the decoded cache, memory-mapped); then training from that cache with the training split
held in the device's memory against streamed to it (``--data-memory 0``).

Not a test: prints two tables. Run with

    uv run python bench/bench_data.py [--images 50000] [--size 28] [--repeats 3]
                                      [--device cpu|cuda|mps] [--steps 300] [--conv-steps 60]
                                      [--mnist DIR]
    uv run python bench/bench_data.py --smoke

It writes a folder of PNGs (10 class sub-folders; MNIST test digits when ``--mnist DIR`` holds
them, else random strokes) into a temporary folder, then loads it in fresh processes, as
``latent-train train --dataset folder --root DIR`` would: first with an empty cache, then
again, then only listing the files and making the cache's key (the part of the second load
that grows with the number of files). Each repeat starts from an empty cache. The training
rows run ``--steps`` steps of a VAE (the MLP, with its fused step, and the conv body) in
fresh processes, held and streamed in turn, in both orders; the cache's pages are in the
page cache then (it was just read).

``--smoke`` runs the smallest configuration (200 images, one repeat, a step or two, each load
and run in this process rather than a fresh one): seconds, to check that the script still
runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from fresh import python  # noqa: E402
from machine import cpu_name  # noqa: E402

LOAD = """
import sys, time
from trainer.data import DataSpec, load_data  # torch comes with it: not timed
t0 = time.perf_counter()
d = load_data(DataSpec("folder", root=sys.argv[1], image_size=int(sys.argv[2])))
print(time.perf_counter() - t0, len(d.train_x) + len(d.test_x))
"""

KEY = """
import os, sys, time
from pathlib import Path
from trainer.data import cache
from trainer.data import _image_files  # torch comes with it: not timed
t0 = time.perf_counter()
root = Path(sys.argv[1])
classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
prefix = len(os.path.join(str(root), ""))
entries = [(p[prefix:], st) for c in classes for p, st in _image_files(root / c)]
cache.folder_key(entries, {"root": str(root.resolve())})
print(time.perf_counter() - t0, len(entries))
"""

TRAIN = """
import sys, torch
from trainer.config import TrainConfig
from trainer.data import DataSpec, load_data
from trainer.loop import TrainControl, Trainer, model_config_for
from trainer.models import build_model
root, size, arch, device, budget, steps, warm = sys.argv[1:8]
torch.set_num_threads(int(sys.argv[8]))
d = load_data(DataSpec("folder", root=root, image_size=int(size)))
torch.manual_seed(0)
mc = model_config_for(d, arch=arch, latent_dim=20)
cfg = TrainConfig(epochs=100, batch_size=128, device=device,
                  data_memory=None if budget == "auto" else float(budget))
t = Trainer(build_model(mc), d, cfg)

class Until(TrainControl):
    def __init__(self, step):
        super().__init__()
        self.until = step

    @property
    def stop_requested(self):
        return t.step >= self.until

t.fit(control=Until(int(warm)))  # warm-up: allocations, the first touches of the pages
r = t.fit(control=Until(t.step + int(steps)))
print(r.images_per_second, type(t.feed).__name__)
"""


DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def digits(folder: Path) -> np.ndarray | None:
    from trainer.data import read_idx

    f = folder / "t10k-images-idx3-ubyte.gz"
    return read_idx(f, "images") if f.is_file() else None


def write_folder(root: Path, n: int, size: int, mnist: Path) -> float:
    from PIL import Image

    t0 = time.perf_counter()
    src = digits(mnist)
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


def load(
    folder: Path, size: int, cache: Path, smoke: bool, code: str = LOAD
) -> tuple[float, float]:
    env = dict(os.environ, LATENT_EXPLORER_DATA=str(cache))
    t0 = time.perf_counter()
    out = python(code, [str(folder), str(size)], env, here=smoke)
    wall = time.perf_counter() - t0
    inside = float(out.split()[0])
    return inside, wall


def train(folder: Path, cache: Path, args, arch: str, budget: str) -> float:
    env = dict(os.environ, LATENT_EXPLORER_DATA=str(cache))
    steps = args.steps if arch == "mlp" else args.conv_steps
    warm = 1 if args.smoke else 30
    out = python(
        TRAIN,
        [
            str(folder),
            str(args.size),
            arch,
            args.device,
            budget,
            str(steps),
            str(warm),
            str(args.threads),
        ],
        env,
        here=args.smoke,
    )
    ips, feed = out.split()
    assert feed == ("Streamed" if budget == "0" else "OnDevice"), feed
    return float(ips)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    ap.add_argument("--steps", type=int, default=300, help="timed steps of the MLP VAE")
    ap.add_argument("--conv-steps", type=int, default=60, help="timed steps of the conv VAE")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument(
        "--mnist",
        type=Path,
        default=DEFAULT_MNIST,
        help="folder with t10k-images-idx3-ubyte.gz (else random strokes)",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest configuration: checks that the script runs; measures nothing",
    )
    args = ap.parse_args()
    if args.smoke:
        args.images, args.repeats, args.steps, args.conv_steps = 200, 1, 2, 1
    rows = [(arch, budget) for arch in ("mlp", "conv") for budget in ("auto", "0")]
    speeds: dict[tuple[str, str], list[float]] = {r: [] for r in rows}
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        folder = tmp / "images"
        made = write_folder(folder, args.images, args.size, args.mnist)
        mb = sum(f.stat().st_size for f in folder.rglob("*.png")) / 1e6
        firsts, seconds, keys = [], [], []
        for r in range(args.repeats):
            cache = tmp / f"cache{r}"
            firsts.append(load(folder, args.size, cache, args.smoke))
            seconds.append(load(folder, args.size, cache, args.smoke))
            keys.append(load(folder, args.size, cache, args.smoke, KEY))
        cache_mb = sum(f.stat().st_size for f in (tmp / "cache0").rglob("*") if f.is_file()) / 1e6
        for r in range(args.repeats):  # held and streamed in turn, first one then the other
            for arch, budget in rows if r % 2 == 0 else rows[::-1]:
                speeds[arch, budget].append(train(folder, tmp / "cache0", args, arch, budget))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = cpu_name()
    print()
    print("Latent Explorer — loading an image folder, decoded once")
    print(f"machine : {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(
        f"folder  : {args.images:,} PNGs of {args.size}x{args.size} in 10 class folders, "
        f"{mb:.1f} MB (written in {made:.1f} s); the cache holds {cache_mb:.1f} MB"
    )
    where = "in this process (--smoke)" if args.smoke else "in a fresh process"
    print(f"runs    : {args.repeats}, each from an empty cache, each load {where}")
    print("          (load_data: the call alone; process: with Python's start and torch's import)")
    print()

    def row(name, pairs):
        ins = [p[0] for p in pairs]
        wall = [p[1] for p in pairs]
        runs = " / ".join(f"{v:.2f}" for v in ins)
        print(f"{name:<40} {statistics.median(ins):>9.2f} {statistics.median(wall):>9.2f}   {runs}")

    print(f"{'load':<40} {'load_data':>9} {'process':>9}   runs (load_data, s)")
    print("-" * 90)
    row("first load: decode, keep the cache", firsts)
    row("second load: the cache, memory-mapped", seconds)
    row("  of which listing the files and the key", keys)
    print()
    ratio = statistics.median(p[0] for p in firsts) / statistics.median(p[0] for p in seconds)
    print(f"the second load is {ratio:.0f}x faster (median load_data times)")
    print()
    print(
        f"training from the cache on {args.device} ({args.threads} threads), batch 128, "
        f"latent 20: held in the device's memory, or streamed (--data-memory 0)"
    )
    print(
        f"(timed: {args.steps} steps of the MLP, {args.conv_steps} of the conv body, after "
        f"{1 if args.smoke else 30} steps of warm-up; img/s)"
    )
    print()
    print(f"{'model':<10} {'split':<28} {'median':>9}   runs          streamed / held")
    print("-" * 90)
    for arch, budget in rows:
        v = speeds[arch, budget]
        held = statistics.median(speeds[arch, "auto"])
        ratio = f"{statistics.median(v) / held:.2f}" if budget == "0" else ""
        where = "streamed from the cache" if budget == "0" else "held in memory (default)"
        runs = " / ".join(f"{x:,.0f}" for x in v)
        print(f"{arch + ' VAE':<10} {where:<28} {statistics.median(v):>9,.0f}   {runs:<22} {ratio}")


if __name__ == "__main__":
    main()
