"""``latent-train``: train, evaluate, sample and draw manifolds from the command line.

Every mistake a user can make ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


class _Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, sparse otherwise)."""

    def __init__(self, label: str, stream=sys.stderr, width: int = 28):
        self.label, self.stream, self.width = label, stream, width
        self.tty = stream.isatty()
        self.last = -math.inf
        self.last_pct = -1

    def update(self, fraction: float, text: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        pct = int(fraction * 100)
        if not force and (now - self.last < (0.1 if self.tty else 5.0)) and pct == self.last_pct:
            return
        if not force and not self.tty and now - self.last < 5.0:
            return
        self.last, self.last_pct = now, pct
        fill = round(self.width * min(max(fraction, 0.0), 1.0))
        bar = "#" * fill + "-" * (self.width - fill)
        line = f"{self.label} [{bar}] {pct:3d}% {text}"
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def done(self, text: str = "done") -> None:
        self.update(1.0, text, force=True)
        self.close()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(s)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


# -- argument parsing -----------------------------------------------------------------------
def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _scale(s: str) -> int:
    v = _positive_int(s)
    if v > 16:
        raise argparse.ArgumentTypeError(f"must be 1 to 16, got {v}")
    return v


def _float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {s!r}")
    return v


def _add_data_args(p: argparse.ArgumentParser, required: bool) -> None:
    from .data import SOURCES

    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        choices=SOURCES,
        default=None if not required else "mnist",
        help="data source (default: mnist%s)"
        % ("" if required else "; or the one the checkpoint was trained on"),
    )
    g.add_argument("--images", help="IDX images file (--dataset idx); .gz is fine")
    g.add_argument("--labels", help="IDX labels file (--dataset idx), optional")
    g.add_argument("--root", help="image folder with one sub-folder per class (--dataset folder)")
    g.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="side in pixels for folder and shapes images (default: 28)",
    )
    g.add_argument(
        "--test-fraction",
        type=_float,
        default=None,
        help="held-out share for sources without a test split (default: 0.2)",
    )
    g.add_argument(
        "--shapes-count",
        type=_positive_int,
        default=None,
        help="number of images in the built-in shapes set (default: 6000)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage dump) and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"latent-train: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .config import ARCHS, DEVICES, LIKELIHOODS, MODELS

    parser = _Parser(
        prog="latent-train",
        description="Train variational autoencoders and look at what they learn.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model and write checkpoint, metrics and pictures")
    _add_data_args(t, required=True)
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=MODELS, default="vae", help="(default: vae)")
    m.add_argument("--arch", choices=ARCHS, default="mlp", help="network body (default: mlp)")
    m.add_argument("--latent-dim", type=_positive_int, default=20, help="1 to 256 (default: 20)")
    m.add_argument("--hidden", type=_positive_int, default=400, help="hidden units (default: 400)")
    m.add_argument(
        "--likelihood",
        choices=LIKELIHOODS,
        default="bernoulli",
        help="decoder (default: bernoulli)",
    )
    m.add_argument(
        "--gaussian-std",
        type=_float,
        default=None,
        help="fixed std of a Gaussian decoder (default: learned)",
    )
    o = t.add_argument_group("optimisation")
    o.add_argument("--epochs", type=_positive_int, default=10, help="(default: 10)")
    o.add_argument("--batch-size", type=_positive_int, default=128, help="(default: 128)")
    o.add_argument("--lr", type=_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    o.add_argument("--beta", type=_float, default=1.0, help="KL weight (default: 1)")
    o.add_argument(
        "--warmup-epochs",
        type=_float,
        default=0.0,
        help="epochs over which the KL weight ramps up from 0 (default: 0)",
    )
    o.add_argument("--seed", type=int, default=0, help="(default: 0)")
    o.add_argument("--device", choices=DEVICES, default="auto", help="(default: auto)")
    o.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads for training (default: $OMP_NUM_THREADS if set, else all cores but "
        "one, which keeps a busy machine from stalling the run)",
    )
    t.add_argument("--out", required=True, help="output folder")

    e = sub.add_parser("evaluate", help="test ELBO and importance-sampled log p(x) of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    _add_data_args(e, required=False)
    e.add_argument(
        "--iw-samples",
        type=_positive_int,
        default=1000,
        help="importance samples K per image (default: 1000; the paper uses 5000)",
    )
    e.add_argument(
        "--prior-samples",
        type=int,
        default=0,
        help="also the naive prior Monte Carlo estimate with this many samples (default: 0)",
    )
    e.add_argument("--limit", type=_positive_int, default=None, help="only the first N test images")
    e.add_argument("--device", choices=DEVICES, default="auto", help="(default: auto)")
    e.add_argument("--seed", type=int, default=0, help="(default: 0)")
    e.add_argument(
        "--out", default=None, help="JSON file for the results (default: beside the checkpoint)"
    )

    s = sub.add_parser("sample", help="an image grid of samples from the prior")
    s.add_argument("--checkpoint", required=True)
    s.add_argument(
        "--n", type=_positive_int, default=64, help="samples (per class for a CVAE; default: 64)"
    )
    s.add_argument("--nrow", type=_positive_int, default=None, help="images per row")
    s.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class name or index (CVAE; default: one row per class, the same z in each)",
    )
    s.add_argument(
        "--mode",
        choices=("mean", "sample"),
        default="mean",
        help="draw E[x|z] or pixels from p(x|z) (default: mean)",
    )
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.add_argument("--scale", type=_scale, default=2, help="pixel magnification, 1-16 (default: 2)")
    s.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")

    g = sub.add_parser("manifold", help="the Kingma & Welling Figure 4 grid as an image")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--n", type=_positive_int, default=20, help="grid side, 2-100 (default: 20)")
    g.add_argument(
        "--dims",
        type=int,
        nargs=2,
        default=(0, 1),
        metavar=("DX", "DY"),
        help="the two latent dimensions (default: 0 1)",
    )
    g.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class name or index (CVAE; default: one grid per class, in class order)",
    )
    g.add_argument("--scale", type=_scale, default=2, help="pixel magnification, 1-16 (default: 2)")
    g.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")
    return parser


class UserError(Exception):
    pass


def _spec_from_args(args, base=None):
    from .data import DataSpec

    fields = dict(
        source=args.dataset,
        images=args.images,
        labels=args.labels,
        root=args.root,
        image_size=args.image_size,
        test_fraction=args.test_fraction,
        shapes_count=args.shapes_count,
    )
    given = {k: v for k, v in fields.items() if v is not None}
    for k in ("images", "labels", "root"):  # absolute, so a checkpoint finds its data anywhere
        if k in given:
            given[k] = str(Path(given[k]).expanduser().absolute())
    if base is not None:
        d = base.to_dict()
        if "source" in given and given["source"] != base.source:
            d = {"seed": base.seed}  # a different source: do not inherit its files
        d.update(given)
        return DataSpec.from_dict(d)
    return DataSpec(**given, seed=getattr(args, "seed", 0) or 0)


def _write_json(path: Path, obj) -> None:
    from .files import atomic_write

    blob = (json.dumps(obj, indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(blob))


def _describe(spec, data) -> str:
    return (
        f"{spec.describe()}: {len(data.train_x)} train / {len(data.test_x)} test images "
        f"of {'x'.join(map(str, data.image_shape))}, {data.num_classes} classes"
    )


def _class_index(cls: str | None, class_names: list[str], conditional: bool) -> int | None:
    if not conditional:
        if cls is not None:
            raise UserError("--class only applies to a conditional model (--model cvae)")
        return None
    if cls is None:
        return 0
    if cls in class_names:
        return class_names.index(cls)
    try:
        k = int(cls)
    except ValueError:
        raise UserError(
            f"unknown class {cls!r}; the classes are: {', '.join(class_names)}"
        ) from None
    if not 0 <= k < len(class_names):
        raise UserError(f"class index {k} is out of range 0..{len(class_names) - 1}")
    return k


# -- commands --------------------------------------------------------------------------------
def cmd_train(args) -> int:
    import torch

    from .checkpoint import save_trainer
    from .config import ModelConfig, TrainConfig
    from .data import load_data
    from .export import save_grid, write_history_csv
    from .latent import sample_prior
    from .loop import Trainer, TrainingDiverged, resolve_device, seed_everything
    from .models import build_model
    from .threads import describe, training_threads, usable_cores

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    spec = _spec_from_args(args)
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        device=args.device,
    )
    device = resolve_device(tcfg.device)
    threads = training_threads(args.threads)
    torch.set_num_threads(threads)
    if device.type == "cpu" and threads > usable_cores():
        print(
            f"note: {threads} threads on {usable_cores()} cores take turns on the same cores "
            "and train slower than one per core",
            file=sys.stderr,
        )
    data = load_data(spec)  # reported only once the settings are known to fit it
    mcfg = ModelConfig(
        model=args.model,
        arch=args.arch,
        latent_dim=args.latent_dim,
        hidden=args.hidden,
        image_shape=data.image_shape,
        likelihood=args.likelihood,
        gaussian_std=args.gaussian_std,
        num_classes=data.num_classes,
    )
    seed_everything(tcfg.seed)
    model = build_model(mcfg)
    trainer = Trainer(model, data, tcfg, device=device)
    print(f"data: {_describe(spec, data)}", file=sys.stderr)
    print(
        f"training a {mcfg.model.upper()} ({mcfg.arch}, latent {mcfg.latent_dim}) on {device}"
        f"{f', {describe(threads, args.threads)}' if device.type == 'cpu' else ''} for "
        f"{tcfg.epochs} epoch{'s' if tcfg.epochs != 1 else ''}",
        file=sys.stderr,
    )
    bar = _Progress("train")

    def on_snapshot(s):
        bar.update(
            s.progress,
            f"epoch {s.epoch}/{s.epochs} step {s.step}/{s.total_steps} "
            f"-elbo {s.nelbo:7.2f} {s.images_per_second:7.0f} img/s "
            f"ETA {_fmt_time(s.eta)}",
            force=s.test is not None,
        )
        if s.test is not None:
            bar.close() if bar.tty else None
            print(
                f"  epoch {s.test.epoch}: test -ELBO {s.test.test_nelbo:.2f} "
                f"(recon {s.test.test_recon:.2f} + KL {s.test.test_kl:.2f}) nats",
                file=sys.stderr,
            )

    diverged = None
    try:
        result = trainer.fit(on_snapshot=on_snapshot)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted: saving what was trained so far", file=sys.stderr)
        result = None
    except TrainingDiverged as e:  # the model is back at its last good state: keep that
        bar.close()
        diverged, result = e, None
    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_trainer(
        out / "checkpoint.safetensors", trainer, data_spec=spec, class_names=data.class_names
    )
    write_history_csv(trainer.history, out / "history.csv")
    last = trainer.history.epochs[-1] if trainer.history.epochs else None
    model.eval()
    stats = trainer.test_stats() if last is None else None
    metrics = {
        "test_nelbo": last["test_nelbo"] if last else stats.nelbo,
        "test_recon": last["test_recon"] if last else stats.recon,
        "test_kl": last["test_kl"] if last else stats.kl,
        "images_per_second": result.images_per_second if result else None,
        "epochs": trainer.epochs_done,
        "steps": trainer.step,
        "seconds": result.seconds if result else None,
        "device": str(device),
        "threads": threads if device.type == "cpu" else None,
        "dataset": spec.describe(),
        "model": mcfg.to_dict(),
        "train": tcfg.to_dict(),
    }
    _write_json(out / "metrics.json", metrics)
    cpu_model = model.to("cpu")
    gen = torch.Generator().manual_seed(tcfg.seed)
    if mcfg.conditional:  # one row per class: the same z under every label
        save_grid(_class_rows(cpu_model, 10, gen), out / "samples.png", nrow=10, scale=2)
    else:
        save_grid(sample_prior(cpu_model, 64, generator=gen), out / "samples.png", nrow=8, scale=2)
    written = ["checkpoint.safetensors", "metrics.json", "history.csv", "samples.png"]
    if mcfg.latent_dim >= 2:
        side = 10 if mcfg.conditional else 20  # a CVAE gets one grid per class
        _write_manifold(cpu_model, out / "manifold.png", None, (0, 1), n=side, scale=2)
        written.append("manifold.png")
    print(
        f"test -ELBO {metrics['test_nelbo']:.2f} nats; "
        f"{(metrics['images_per_second'] or 0):.0f} images/s on {device}",
        file=sys.stderr,
    )
    print(f"wrote {', '.join(written)} to {out}/", file=sys.stderr)
    print(ckpt)
    if diverged is not None:
        raise UserError(f"{diverged} What was trained before it is saved in {out}/.")
    return 0


def _open(path: str, device="cpu"):
    from .checkpoint import load_checkpoint

    return load_checkpoint(path, device=device)


def _nll(label, estimator, model, x, y, k, gen) -> float:
    """Mean negative log-likelihood by ``estimator`` with k samples, with a progress bar."""
    bar = _Progress(f"{label}, K={k}")
    ll = estimator(model, x, y, k=k, generator=gen,
                   progress=lambda d, t: bar.update(d / t, f"{d}/{t}"))  # fmt: skip
    bar.done()
    return float(-ll.mean())


def cmd_evaluate(args) -> int:
    import torch

    from .data import load_data
    from .evaluate import active_units, elbo_stats, iw_log_likelihood, prior_mc_log_likelihood
    from .loop import resolve_device, seed_everything

    device = resolve_device(args.device)
    ck = _open(args.checkpoint, device)
    if ck.data_spec is None and args.dataset is None:
        raise UserError(f"{args.checkpoint}: records no dataset; pass --dataset and its files")
    spec = _spec_from_args(args, base=ck.data_spec)
    data = load_data(spec)
    model = ck.model
    if data.image_shape != ck.model_config.image_shape:
        raise UserError(
            f"the data's images are {data.image_shape}, the model's {ck.model_config.image_shape}"
        )
    print(f"data: {_describe(spec, data)}", file=sys.stderr)
    x, y = data.test_x, data.test_y if model.num_classes else None
    if args.limit:
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    seed_everything(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    st = elbo_stats(model, x, y)
    res = {
        "checkpoint": str(ck.path),
        "dataset": spec.describe(),
        "n_images": len(x),
        "test_nelbo": st.nelbo,
        "test_recon": st.recon,
        "test_kl": st.kl,
    }
    if model.is_variational:
        n_active, _ = active_units(model, x, y)
        res["active_units"] = n_active
        res["kl_per_dim"] = [round(float(v), 4) for v in st.kl_per_dim]
        t0 = time.perf_counter()
        res["iw_samples"] = args.iw_samples
        res["test_nll_iw"] = _nll("log p(x)", iw_log_likelihood, model, x, y, args.iw_samples, gen)
        res["seconds_iw"] = time.perf_counter() - t0
        if args.prior_samples > 0:
            res["prior_samples"] = args.prior_samples
            res["test_nll_prior_mc"] = _nll(
                "prior MC", prior_mc_log_likelihood, model, x, y, args.prior_samples, gen
            )
    else:
        print(
            "note: a plain autoencoder has no ELBO or log p(x); reporting its reconstruction "
            "error (the KL column is zero)",
            file=sys.stderr,
        )
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name("evaluation.json")
    _write_json(out, res)
    w = max(map(len, res))
    for k, v in res.items():
        if k != "kl_per_dim":
            print(f"{k:<{w}}  {v:.3f}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    import torch

    from .export import save_grid
    from .latent import sample_prior

    ck = _open(args.checkpoint)
    gen = torch.Generator().manual_seed(args.seed)
    if ck.model_config.conditional and args.cls is None:  # one row per class, shared z
        imgs = _class_rows(ck.model, args.n, gen)
        print(save_grid(imgs, args.out, nrow=args.nrow or args.n, scale=args.scale))
        return 0
    y = _class_index(args.cls, ck.class_names, ck.model_config.conditional)
    imgs = sample_prior(ck.model, args.n, y, mode=args.mode, generator=gen)
    nrow = args.nrow or max(1, round(math.sqrt(args.n)))
    print(save_grid(imgs, args.out, nrow=nrow, scale=args.scale))
    return 0


def _class_rows(model, n: int, generator):
    """The same n prior latents decoded under every class: (classes * n, C, H, W)."""
    import torch

    from .latent import decode_batch

    k = model.num_classes
    z = torch.randn(n, model.latent_dim, generator=generator).repeat(k, 1)
    return decode_batch(model, z, torch.arange(k).repeat_interleave(n))


def cmd_manifold(args) -> int:

    ck = _open(args.checkpoint)
    d = ck.model_config.latent_dim
    if d < 2:
        raise UserError(f"a manifold needs 2 or more latent dimensions; this model has {d}")
    dx, dy = args.dims
    if not (0 <= dx < d and 0 <= dy < d) or dx == dy:
        raise UserError(f"--dims must be two different dimensions in 0..{d - 1}, got {dx} {dy}")
    if not 2 <= args.n <= 100:
        raise UserError(f"--n must be 2 to 100, got {args.n}")
    y = None
    if args.cls is not None or not ck.model_config.conditional:
        y = _class_index(args.cls, ck.class_names, ck.model_config.conditional)
    print(_write_manifold(ck.model, args.out, y, (dx, dy), n=args.n, scale=args.scale))
    return 0


def _write_manifold(model, path, y, dims, n: int, scale: int):
    """The Figure 4 grid; for a conditional model with no class chosen, one grid per class."""
    import torch

    from .export import save_grid, save_mosaic
    from .latent import decode_batch, grid_latents

    if model.num_classes and y is None:
        k = model.num_classes
        z = grid_latents(n, dims, torch.zeros(model.latent_dim))
        groups = [decode_batch(model, z, c) for c in range(k)]
        per_row = min(k, 5)
        return save_mosaic(groups, path, nrow=n, ncol_groups=per_row, scale=scale)
    z = grid_latents(n, dims, torch.zeros(model.latent_dim))
    return save_grid(decode_batch(model, z, y), path, nrow=n, padding=0, scale=scale)


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "sample": cmd_sample,
    "manifold": cmd_manifold,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .export import ExportError
    from .loop import TrainingDiverged

    try:
        return COMMANDS[args.command](args)
    except (UserError, ConfigError, DataError, CheckpointError, ExportError, TrainingDiverged) as e:
        print(f"latent-train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a file the user named could not be written
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"latent-train: error: {name}{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("latent-train: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
