"""Model quality against latent size, as in Kingma & Welling's comparison of 2, 5, 10 and 20.

Trains the MLP VAE (784-400-z, Bernoulli decoder) for each latent size on a seeded 8,000 /
2,000 split of the MNIST test set and reports, on the 2,000 held-out digits: the negative
ELBO, the importance-sampled negative log-likelihood, the naive prior Monte Carlo estimate
with the same number of samples, and the number of active units. Prints a table.

    uv run python bench/bench_quality.py [--epochs 30] [--k 1000] [--latents 2 5 10 20]
    uv run python bench/bench_quality.py --smoke [--mnist DIR]

``--smoke`` runs the smallest configuration (a few hundred images, one epoch, latents 2 and
5, K = 5): seconds, to check that the script still runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.data import DataSpec, ImageData, Rows, load_data
from trainer.evaluate import (
    active_units,
    elbo_stats,
    iw_log_likelihood,
    prior_mc_log_likelihood,
)
from trainer.loop import model_config_for, train

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--mnist",
        type=Path,
        default=DEFAULT_MNIST,
        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    )
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--k", type=int, default=1000, help="importance samples per image")
    ap.add_argument("--latents", type=int, nargs="+", default=[2, 5, 10, 20])
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest configuration: checks that the script runs; measures nothing",
    )
    args = ap.parse_args()
    if not (args.mnist / "t10k-images-idx3-ubyte.gz").is_file():
        sys.exit(
            f"{args.mnist}: no t10k-images-idx3-ubyte.gz (the MNIST test set) there; give the "
            "folder that holds it and t10k-labels-idx1-ubyte.gz with --mnist DIR"
        )
    spec = DataSpec(
        "idx",
        images=str(args.mnist / "t10k-images-idx3-ubyte.gz"),
        labels=str(args.mnist / "t10k-labels-idx1-ubyte.gz"),
    )
    data = load_data(spec)
    if args.smoke:
        args.epochs, args.k, args.latents = 1, 5, [2, 5]
        x = data.train_x  # kept as loaded: Rows of the cache
        x = Rows(x.base, x.index[:512]) if isinstance(x, Rows) else x[:512]
        data = ImageData(
            data.name, x, data.test_x[:256], data.train_y[:512], data.test_y[:256], data.class_names
        )
    rows = []
    for d in args.latents:
        t0 = time.perf_counter()
        cfg = TrainConfig(epochs=args.epochs, device=args.device, seed=0)
        trainer, fit = train(model_config_for(data, latent_dim=d), data, cfg)
        model = trainer.model.eval()
        x = data.test_x
        g = torch.Generator().manual_seed(0)
        st = elbo_stats(model, x)
        iw = -iw_log_likelihood(model, x, k=args.k, generator=g).mean().item()
        mc = -prior_mc_log_likelihood(model, x, k=args.k, generator=g).mean().item()
        n_active, _ = active_units(model, x)
        rows.append(
            (d, st.nelbo, iw, mc, n_active, fit.images_per_second, time.perf_counter() - t0)
        )
        print(f"latent {d}: done in {rows[-1][-1]:.0f} s", file=sys.stderr)
    print(
        f"MNIST test set, {len(data.train_x):,} train / {len(data.test_x):,} held out, MLP "
        f"784-400-z VAE, {args.epochs} epochs, batch 128, Adam 1e-3; K = {args.k} samples per "
        "image; nats per image"
    )
    print()
    print("| latent | -ELBO | -log p(x), IW | -log p(x), prior MC | active units | train img/s |")
    print("|-------:|------:|--------------:|--------------------:|-------------:|------------:|")
    for d, nelbo, iw, mc, act, ips, _ in rows:
        print(
            f"| {d:6d} | {nelbo:5.1f} | {iw:13.1f} | {mc:19.1f} | {act:5d} of {d:<3d} | "
            f"{ips:11,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
