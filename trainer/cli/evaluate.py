"""``latent-train evaluate``: the test ELBO and importance-sampled log p(x) of a checkpoint,
on its own data or on data named here, written as JSON."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._checks import (
    UserError,
    check_path,
    check_writable_file,
    checkpoint_data,
    command_inputs,
    not_an_input,
    open_model_source,
)
from ._console import Progress, describe_data, write_json
from ._options import add_model_args, add_seed, int_in


def add_options(e) -> None:
    from ..config import DEVICES

    add_model_args(e)
    e.add_argument(
        "--iw-samples",
        type=int_in(1, 1_000_000),
        default=1000,
        help="importance samples K per image (default: 1000; the paper uses 5000)",
    )
    e.add_argument(
        "--prior-samples",
        type=int_in(0, 1_000_000),
        default=0,
        help="also the naive prior Monte Carlo estimate with this many samples (default: 0)",
    )
    e.add_argument(
        "--limit", type=int_in(1, 10**9), default=None, help="only the first N test images"
    )
    e.add_argument("--device", choices=DEVICES, default="auto", help="(default: auto)")
    add_seed(e)
    e.add_argument(
        "--out",
        default=None,
        help="JSON file for the results, or a folder for evaluation.json in it "
        "(default: evaluation.json beside the checkpoint)",
    )


def run(args) -> int:
    from ..evaluate import evaluate_model
    from ..loop import resolve_device, seed_everything

    for option in ("images", "labels", "root"):
        check_path(f"--{option}", getattr(args, option))
    device = resolve_device(args.device) if args.model is None else "cpu"
    ck = open_model_source(args, device)
    model = ck.model
    problem = model.evaluate_problem()
    if problem:
        raise UserError(f"cannot evaluate {ck.path}: {problem}")
    out = _evaluation_out(args, ck)
    spec, data = checkpoint_data(args, ck, check=_idx_files_together)
    print(f"data: {describe_data(spec, data)}", file=sys.stderr)
    x, y = data.test_x, data.test_y if model.num_classes else None
    if args.limit:
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    seed_everything(args.seed)
    bar = Progress("evaluate")
    res = {
        "checkpoint" if args.model is None else "model": str(ck.path),
        "checkpoint_step": ck.step,
        "dataset": spec.describe(),
        **evaluate_model(
            model,
            x,
            y,
            iw_samples=args.iw_samples,
            prior_samples=args.prior_samples,
            seed=args.seed,
            progress=lambda f, what: bar.update(f, what),
        ),
    }
    bar.done()
    if not model.is_variational:
        print(
            "note: a plain autoencoder has no ELBO or log p(x); reporting its reconstruction "
            "error (the KL column is zero)",
            file=sys.stderr,
        )
    write_json(out, res)
    w = max(map(len, res))
    for k, v in res.items():
        if k != "kl_per_dim":
            print(f"{k:<{w}}  {v:.3f}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _evaluation_out(args, ck) -> Path:
    """Where ``evaluate`` writes its results; refused before anything is computed if it
    cannot be written. A folder gets ``evaluation.json`` in it."""
    if args.out is None and getattr(ck, "data", None) is not None:
        raise UserError(f"name a JSON file for the results of {ck.path} with --out")
    if args.out is None:
        from ..examples import is_example

        out = Path(ck.path).with_name("evaluation.json")
        if is_example(ck.path):  # the bundled examples stay as shipped
            out = Path.cwd() / f"evaluation-{Path(ck.path).parent.name}.json"
            print(f"note: the bundled examples are read-only; results go to {out}", file=sys.stderr)
        check_writable_file(out, "results", "; pass --out FILE to write them elsewhere")
        not_an_input("results", out, command_inputs(args, ck))
        return out
    if not args.out.strip():
        raise UserError("--out is empty; name a JSON file, or a folder for evaluation.json")
    check_path("--out", args.out)
    out = Path(args.out).expanduser()
    if out.is_dir() or args.out.endswith(("/", os.sep)):  # a folder, or one to be made
        out = out / "evaluation.json"
    check_writable_file(out, "--out")
    not_an_input("--out", out, command_inputs(args, ck))
    return out


def _idx_files_together(args, ck) -> None:
    """`evaluate`: IDX images (or .npy images) and their labels come both from the command
    line or both from the checkpoint, never one of each (the checkpoint's labels belong to its
    own images); an .npz archive holds its labels itself."""
    spec = ck.data_spec
    source = args.dataset or (spec.source if spec is not None else None)
    theirs = spec is not None and spec.source in ("idx", "npz") and source == spec.source
    if args.labels is not None and args.images is None and theirs:
        raise UserError(
            f"--labels without --images: they would label the checkpoint's images "
            f"({Path(spec.images).name}); name both, or neither to evaluate on its own"
        )
    mc = ck.model_config
    archive = source == "npz" and not str(args.images).lower().endswith(".npy")
    if args.images is not None and args.labels is None and mc.conditional and not archive:
        raise UserError(
            f"--images without --labels: the model in {ck.path} is conditioned on "
            f"{mc.num_classes} classes and needs the labels of these images (--labels FILE)"
            + ("; the checkpoint's labels belong to its own images" if theirs else "")
        )
