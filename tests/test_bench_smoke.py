"""Every script in bench/ still runs: each in its smallest configuration (``--smoke``), in a
fresh interpreter, on a small made-up MNIST, printing its tables. The numbers are not
looked at (speed targets live in the benchmarks, never in tests)."""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# what each script must print: a line of every table
SCRIPTS = {
    "bench_train.py": [
        r"^\| reference \(DataLoader \+ ToTensor, \.item\(\) every step\) +\| +[\d,]+ \|",
        r"^\| latent-explorer loop, default \(fused step\) +\| +[\d,]+ \|",
        r"^\| nothing \| \d+ \(",  # the busy-machine table
        r"^\| 3 x 28 x 28 \| 128 \| [\d.]+ \| [\d,]+ \| [\d,]+ \|",  # the conv table
        r"^\| 1 x 28 x 28 \| channels-last \| [\d,]+ \|",  # what else might speed a conv step
    ],
    "bench_quality.py": [r"^\| +2 \| +[\d.]+ \|", r"^\| +5 \| +[\d.]+ \|"],
    "bench_data.py": [
        r"^first load: decode, keep the cache +[\d.]+",
        r"^second load: the cache, memory-mapped +[\d.]+",
        r"^  of which listing the files and the key +[\d.]+",
        r"^conv VAE +streamed from the cache +[\d,]+",
    ],
    "bench_maps.py": [
        r"^\| umap \| bundled MNIST test digits, first 300: 300 \| +[\d.]+ \| +[\d.]+ \|",
        r"^\| tsne \| bundled MNIST test digits, first 300: 300 \| +[\d.]+ \| +[\d.]+ \|",
        r"^\| pca \| bundled MNIST test digits, first 300: 300 \| +[\d.]+ \| +[\d.]+ \|",
        r"^\| umap \| +[\d.]+ \|",
        r"^\| tsne \| +[\d.]+ \|",
        r"^\| pca \| +[\d.]+ \|",
    ],
    "bench_explorer.py": [
        r"^launch to main window shown +median +[\d.]+",
        r"^first launch: window built -> example's map and manifold drawn +median +[\d.]+",
        r"^film: scrubbed -> drawn \+ repainted, training +p50/p95 +[\d.]+ / [\d.]+",
        r"^map hover, 70,000 points +p50/p95 +[\d.]+ / [\d.]+",
        r"^event-loop lag, training at full speed +p50/p99",
    ],
}


def _idx(path: Path, arr: np.ndarray) -> None:
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> Path:
    """640 images of strokes with labels, as MNIST's t10k files."""
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    _idx(folder / "t10k-images-idx3-ubyte.gz", (rng.random((640, 28, 28)) < 0.15) * 255)
    _idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(640) % 10)
    return folder


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_a_bench_runs_its_smallest_configuration(script, mnist, tmp_path, program_env):
    assert script in SCRIPTS, f"{script}: give it a --smoke run and name its tables in SCRIPTS"
    args = ["--smoke", "--mnist", str(mnist)]
    if script == "bench_explorer.py":
        args = ["--smoke", "--dataset", "shapes"]  # not Debian's Fashion-MNIST where installed
    env = dict(
        program_env, LATENT_EXPLORER_DATA=str(tmp_path / "data"), QT_QPA_PLATFORM="offscreen"
    )
    r = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"{script} exited {r.returncode}:\n{r.stderr[-3000:]}"
    for line in SCRIPTS[script]:
        assert re.search(line, r.stdout, re.MULTILINE), f"{script} printed no {line!r}:\n{r.stdout}"
