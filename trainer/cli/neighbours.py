"""``latent-train neighbours``: the training images nearest to a point of the latent space,
by code and by the pixels of its decoded image (does the model generate or remember?).

The point is ``--z`` (its values), ``--index I`` (the code of an image of the data) or
``--sample`` (a prior sample, seeded). The training images of the checkpoint's data are
searched (``--dataset`` and its files name other data, as for ``evaluate``); data without
training images (an example's bundled test images) is searched in its test images, and the
output says so. A conditional model's search keeps to the class it decodes with.
"""

from __future__ import annotations

import argparse
import math
import sys

from ._checks import (
    UserError,
    check_path,
    checkpoint_data,
    class_index,
    data_options_apply,
    image_out,
    open_model_source,
)
from ._console import Progress
from ._options import IMAGE_FILE, add_model_args, add_scale, add_seed, int_in
from .traverse import MAX_Z

MAX_K = 64  # neighbours shown in each row of the picture


def z_values(s: str) -> list[float]:
    """``--z "0.1,-2,3"``: finite numbers separated by commas."""
    parts = [p.strip() for p in s.split(",")]
    if not s.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, such as 0.1,-2,0.5, got {s!r}"
        )
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{p!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{p} is not a finite number")
        if abs(v) > MAX_Z:
            raise argparse.ArgumentTypeError(
                f"each value must be in [-{MAX_Z:g}, {MAX_Z:g}], got {p}"
            )
        values.append(v)
    return values


z_values.__name__ = "numbers"


def add_options(p) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--z",
        type=z_values,
        metavar="VALUES",
        help=f'the point: its values, "0.1,-2,...", each in [-{MAX_Z:g}, {MAX_Z:g}]',
    )
    which.add_argument(
        "--index",
        type=int_in(0, 10**9),
        metavar="I",
        help="the code (posterior mean) of image I of the data (--split: test or train)",
    )
    which.add_argument("--sample", action="store_true", help="a sample of the prior (--seed)")
    p.add_argument(
        "--split",
        choices=("test", "train"),
        default=None,
        help="the set --index counts in (default: test)",
    )
    p.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class name or index a conditional model decodes with, and the search keeps to "
        "(default: the image's own with --index, else 0)",
    )
    p.add_argument(
        "--k",
        type=int_in(1, MAX_K),
        default=8,
        help=f"neighbours in each row, 1-{MAX_K} (default: 8)",
    )
    add_seed(p)
    add_scale(p, 3)
    p.add_argument("--out", default=None, help=f"{IMAGE_FILE} of the query and its neighbours")
    add_model_args(p)


def run(args) -> int:
    import torch

    from ..export import save_neighbours
    from ..neighbours import NeighbourIndex, describe, search, searched
    from .evaluate import _idx_files_together

    if args.split is not None and args.index is None:
        raise UserError("--split applies to --index only: it says which set image I is in")
    if args.seed and not args.sample:
        raise UserError("--seed applies to --sample only: nothing else here is random")
    for option in ("images", "labels", "root"):
        check_path(f"--{option}", getattr(args, option))
    out = image_out(args.out, "neighbours.png") if args.out is not None else None
    outputs = (("--out", out),) if out is not None else ()
    ck = open_model_source(args, outputs=outputs)
    model, mc = ck.model, ck.model_config
    d = mc.latent_dim
    if args.z is not None and len(args.z) != d:
        raise UserError(f"--z has {len(args.z)} values; the model's latent has {d}")
    if args.cls is not None and not mc.conditional:
        raise UserError("--class only applies to a conditional model (--model cvae)")
    if args.dataset is not None:
        data_options_apply(args, args.dataset, f"--dataset {args.dataset}")
    spec, data = checkpoint_data(args, ck, check=_idx_files_together)
    names = list(ck.class_names or data.class_names)

    cls = class_index(args.cls, names, mc.conditional) if args.cls is not None else None
    if args.index is not None:
        split = args.split or "test"
        x = data.test_x if split == "test" else data.train_x
        y = data.test_y if split == "test" else data.train_y
        if args.index >= len(x):
            n = len(x)
            has = f"0 to {n - 1}" if n else "none"
            raise UserError(f"--index {args.index}: the {split} set has {n:,} images ({has})")
        own = int(y[args.index]) if y is not None else None
        with torch.no_grad():
            xi = x[args.index : args.index + 1].float() / 255.0
            yi = torch.tensor([own]) if mc.conditional else None
            z = model.encode(xi, yi)[0][0].float()
        if mc.conditional and cls is None:
            cls = own
        what = f"{split} image {args.index}" + (f" ({names[own]})" if own is not None else "")
    elif args.sample:
        gen = torch.Generator().manual_seed(args.seed)
        z = torch.randn(d, generator=gen)
        what = f"a prior sample (seed {args.seed})"
    else:
        z = torch.tensor(args.z)
        what = "the given z"
    if mc.conditional and cls is None:
        cls = 0

    source, _x, labels = searched(data, "train")
    n = len(_x) if cls is None else int((labels == cls).sum())
    where = "training images" if source == "train" else "test images"
    if args.k > n:
        of = f" of class {cls}" if cls is not None else ""
        raise UserError(f"--k {args.k}: there are only {n:,} {where}{of} to search")
    print(f"data: {spec.describe()}", file=sys.stderr)
    if source == "test":
        print(
            f"note: {spec.describe()}: no training images; searching its "
            f"{len(_x):,} test images instead",
            file=sys.stderr,
        )
    if mc.conditional:
        print(f"note: the search keeps to class {cls}, which z is decoded with", file=sys.stderr)
    bar = Progress("encode")
    index = NeighbourIndex.build(model, data, "train", progress=bar.update)
    bar.done()
    found = search(model, index, z, args.k, cls)
    shown = ", ".join(f"{v:+.3f}" for v in found.z)
    print(f"query: {what}; z = ({shown})")
    for nb in (found.latent, found.pixels):
        print(describe(nb, names) + ":")
        print("  rank  row     class  distance")
        for rank, (row, dist) in enumerate(zip(nb.rows, nb.distances), 1):
            label = index.labels[row] if index.labels is not None else None
            name = names[int(label)] if label is not None and int(label) < len(names) else "-"
            print(f"  {rank:>4}  {row:<6}  {name:<5}  {dist:.4f}")
    if out is not None:
        print(save_neighbours(found, index, out, scale=args.scale))
    return 0
