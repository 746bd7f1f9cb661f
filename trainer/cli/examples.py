"""``latent-train examples``: list the bundled example models, or rebuild them from scratch
(seeded, each by the ``latent-train train`` command its ``example.json`` records) and
rewrite the table in the README beside them."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..text import clock
from ._checks import UserError, prepare_out_folder
from ._console import Progress
from ._options import int_in, spec_from_args


def add_options(x) -> None:
    from ..config import MAX_EPOCHS

    x.add_argument(
        "--rebuild",
        action="store_true",
        help="train every example again (seeded); rewrite the table in the README beside them",
    )
    x.add_argument("--only", nargs="+", metavar="NAME", help="rebuild only these examples")
    x.add_argument(
        "--into", metavar="DIR", help="examples folder (default: the bundled one, in a checkout)"
    )
    x.add_argument(
        "--mnist",
        metavar="DIR",
        help="folder with the MNIST test set's t10k IDX files (default: "
        "$LATENT_EXPLORER_MNIST, else MNIST's download in the cache)",
    )
    x.add_argument(
        "--epochs",
        type=int_in(1, MAX_EPOCHS),
        help="epochs for every example (default: each recipe's)",
    )
    x.add_argument(
        "--iw-samples",
        type=int_in(1, 1_000_000),
        default=None,
        help="importance samples per image for -log p(x) (default: 1000)",
    )


def run(args) -> int:
    from .. import examples as ex

    root = Path(args.into) if args.into else None
    if args.rebuild:
        if root is not None:
            root, _ = prepare_out_folder(args.into)
        only = args.only
        for name in only or []:
            ex.recipe(name)  # an unknown name: refused before anything is trained
        bar = Progress("examples")
        t0 = time.perf_counter()
        rows = rebuild(
            only=only,
            root=root,
            mnist=args.mnist,
            epochs=args.epochs,
            iw_samples=args.iw_samples or 1000,
            progress=bar.update,
            log=lambda text: (bar.close(), print(text, file=sys.stderr)),
        )
        bar.done()
        print(
            f"rebuilt {len(rows)} example{'s' if len(rows) != 1 else ''} in "
            f"{clock(time.perf_counter() - t0, fixed=True)}; the table is in "
            f"{(root or ex.examples_dir()).parent / 'README.md'}",
            file=sys.stderr,
        )
        return 0
    if args.only or args.mnist or args.epochs or args.iw_samples:
        raise UserError("--only, --mnist, --epochs and --iw-samples go with --rebuild")
    found = ex.list_examples(root)
    if not found:
        raise UserError(
            f"no example models in {root or ex.examples_dir()}; make them with "
            "latent-train examples --rebuild"
        )
    w = max(len(e.name) for e in found)
    for e in found:
        if e.problem:  # its example.json: damaged
            print(f"note: {e.problem}", file=sys.stderr)
        nelbo = e.metrics.get("test_nelbo")
        what = "test -ELBO" if "test_nll_iw" in e.metrics else "recon. err."  # an AE: no ELBO
        score = f"{what} {nelbo:6.1f}" if isinstance(nelbo, float) else ""
        print(f"{e.name:<{w}}  {e.title:<38} {score}  {e.path}")
    return 0


def _shown_path(arg: str) -> str:
    """A path as the command line shows it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(arg)
    except ValueError:
        return arg
    return rel if len(rel) < len(arg) else arg


Log = Callable[[str], None]


def rebuild(
    only: list[str] | None = None,
    root: Path | None = None,
    mnist: str | os.PathLike | None = None,
    epochs: int | None = None,
    iw_samples: int = 1000,
    log: Log | None = None,
    progress: Callable[[float, str], None] | None = None,
    readme: Path | None = None,
) -> list[dict]:
    """Train the examples (``only`` these names, default all) from scratch, seeded, into
    ``root`` (default: the bundled folder, in a checkout:
    :func:`trainer.examples.default_root`) and write the table into ``readme`` (default
    ``README.md`` beside ``root``). ``epochs`` overrides every recipe's (for tests). Each is
    trained by running ``latent-train train``, the command its ``example.json`` records.
    Returns one row per example built."""
    from ..data import ImageData, load_data
    from ..examples import (
        REBUILD_FILE,
        _write_text,
        default_root,
        evaluate_example,
        find_mnist,
        names,
        recipe,
        train_command,
        write_bundle,
        write_table,
    )
    from . import build_parser

    root = Path(root) if root else default_root()
    readme = readme or root.parent / "README.md"
    log = log or (lambda text: None)
    chosen = [recipe(n) for n in (only or names())]
    root.mkdir(parents=True, exist_ok=True)
    mnist_dir = find_mnist(mnist) if any(r.bundle == "mnist" for r in chosen) else None
    datas: dict[str, ImageData] = {}
    rows = []
    t_all = time.perf_counter()
    for i, r in enumerate(chosen):
        base = i / len(chosen)
        if progress is not None:
            progress(base, f"{r.name}: training")
        argv = train_command(r, mnist_dir, epochs)
        if r.bundle not in datas:  # the same split the command trains on: its test part
            spec = spec_from_args(build_parser().parse_args([*argv, "--out", "x"]))
            datas[r.bundle] = load_data(spec)
            write_bundle(r.bundle, datas[r.bundle], root)
        data = datas[r.bundle]
        log(f"[{i + 1}/{len(chosen)}] {r.name}: latent-train {' '.join(argv)}")
        ck, seconds_train = _train_example(r, argv)
        model = ck.model.eval()
        if progress is not None:
            progress(base + 0.8 / len(chosen), f"{r.name}: evaluating")

        def iw_progress(done, total, base=base, name=r.name):
            if progress is not None:
                progress(base + (0.8 + 0.2 * done / total) / len(chosen), f"{name}: log p(x)")

        metrics = evaluate_example(model, data, iw_samples, progress=iw_progress)
        info = _keep(r, argv, ck, model, metrics, seconds_train, root)
        rows.append(info)
        log(
            f"    test -ELBO {metrics['test_nelbo']:.2f}"
            + (f", -log p(x) {metrics['test_nll_iw']:.2f}" if "test_nll_iw" in metrics else "")
            + f", float16 changes it by {metrics['float16_nelbo_change']:+.4f} nats, "
            f"{info['model_bytes'] / 1e6:.2f} MB, {seconds_train:.0f} s"
        )
    if progress is not None:
        progress(1.0, "done")
    if only is None:  # the whole set: the time the table quotes
        _write_text(
            root / REBUILD_FILE,
            json.dumps({"seconds": round(time.perf_counter() - t_all, 1), "examples": len(rows)})
            + "\n",
        )
    write_table(readme, root)
    return rows


def _train_example(r, argv: list[str]):
    """Train example ``r`` by running ``latent-train`` with ``argv`` into a temporary
    folder; returns its checkpoint and the seconds it took."""
    from ..checkpoint import load_checkpoint
    from ..examples import ExampleError
    from . import main

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="latent-example-") as tmp:
        code = main([*argv, "--out", tmp])
        if code != 0:
            raise ExampleError(f"{r.name}: latent-train train ended with exit code {code}")
        ck = load_checkpoint(Path(tmp) / "checkpoint.safetensors")
    return ck, time.perf_counter() - t0


def _keep(r, argv: list[str], ck, model, metrics: dict, seconds_train: float, root: Path):
    """Write example ``r`` into ``root``: its model as the bundle holds it (float16 weights,
    no optimiser state, the bundled test images as its data), thumbnail and example.json;
    returns what example.json says."""
    import torch

    from ..checkpoint import save_checkpoint
    from ..data import EXAMPLE, DataSpec
    from ..examples import INFO_FILE, MODEL_FILE, THUMB_FILE, _write_text, full_title, thumbnail

    folder = root / r.name
    folder.mkdir(exist_ok=True)
    path = save_checkpoint(
        folder / MODEL_FILE,
        model,
        ck.train_config,
        data_spec=DataSpec(source=EXAMPLE, bundle=r.bundle),
        class_names=ck.class_names,
        history=ck.history,
        epochs_done=ck.epochs_done,
        step=ck.step,
        weights_dtype=torch.float16,
    )
    thumbnail(model, folder / THUMB_FILE)
    command = "latent-train " + " ".join(shlex.quote(_shown_path(a)) for a in argv)
    info = {
        "name": r.name,
        "title": full_title(r),
        "line": r.line,
        "bundle": r.bundle,
        "command": command,
        "converted": "weights stored as float16, optimiser state left out, data: the "
        "bundled test images",
        "epochs": ck.epochs_done,
        "seconds_train": round(seconds_train, 1),
        "metrics": metrics,
        "model_bytes": path.stat().st_size,
    }
    _write_text(folder / INFO_FILE, json.dumps(info, indent=1) + "\n")
    return info
