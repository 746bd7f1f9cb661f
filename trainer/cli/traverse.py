"""``latent-train traverse``: one row per latent dimension swept over its values (inverse-CDF
spaced), the rows ordered by each dimension's KL on the checkpoint's test images."""

from __future__ import annotations

import math
import sys

from ._checks import (
    UserError,
    check_data_fits,
    check_writable_file,
    class_index,
    image_out,
    open_model_source,
)
from ._options import IMAGE_FILE, add_model_args, add_scale, float_in, int_in

MAX_Z = 1000.0  # traverse --z: the most a latent value may be, either way (prior std 1)


def add_options(v) -> None:
    from ..config import TRAVERSAL_COLUMNS

    add_model_args(v)
    v.add_argument("--out", required=True, help=IMAGE_FILE)
    v.add_argument(
        "--columns",
        type=int_in(*TRAVERSAL_COLUMNS),
        default=11,
        help=f"values per row, {TRAVERSAL_COLUMNS[0]}-{TRAVERSAL_COLUMNS[1]}, inverse-CDF "
        "spaced (default: 11)",
    )
    v.add_argument(
        "--gif",
        action="store_true",
        help="also write an animated GIF beside --out (every row at once)",
    )
    v.add_argument(
        "--class", dest="cls", default=None, help="class name or index (CVAE; default: the first)"
    )
    v.add_argument(
        "--z",
        type=float_in(-MAX_Z, MAX_Z),
        nargs="+",
        metavar="V",
        help=f"where the other dimensions stay, each in [-{MAX_Z:g}, {MAX_Z:g}] "
        "(default: 0, the prior mean)",
    )
    v.add_argument(
        "--kl-images",
        type=int_in(0, 100_000),
        default=2000,
        help="test images to measure each dimension's KL on, to order the rows "
        "(0: index order; default: 2000)",
    )
    add_scale(v, 2)


def run(args) -> int:
    import torch

    from ..export import check_grid_size, grid_image, grid_size, save_gif, save_labelled_rows
    from ..latent import traversal

    out = image_out(args.out, "traverse.png")
    gif = out.with_suffix(".gif") if args.gif else None
    if gif is not None:
        check_writable_file(gif, "--gif")
    outputs = (("--out", out), ("--gif", gif or out))
    ck = open_model_source(args, outputs=outputs)
    mc = ck.model_config
    d = mc.latent_dim
    check_grid_size(
        out, grid_size(d * args.columns, mc.image_shape[1:], args.columns, 2, args.scale)
    )
    base = torch.zeros(d)
    if args.z is not None:
        if len(args.z) != d:
            raise UserError(f"--z gives {len(args.z)} values; the model's latent has {d}")
        base = torch.tensor(args.z, dtype=torch.float32)
    y = class_index(args.cls, ck.class_names, mc.conditional) if mc.conditional else None
    if mc.conditional and y is None:
        y = 0
    kl, note = _kl_of(ck, args.kl_images)
    print(f"note: {note}", file=sys.stderr)
    t = traversal(ck.model, base, y, args.columns, kl)
    labels = [
        f"z{dim}"
        + ("" if t.kl is None else f"  {t.kl[r]:.2f} nats")
        + ("  collapsed" if t.collapsed[r] else "")
        for r, dim in enumerate(t.dims)
    ]
    save_labelled_rows(t.images, out, t.columns, labels, t.collapsed, scale=args.scale)
    print(out)
    if gif is not None:  # frame c: every dimension at its c-th value, side by side
        frames = t.images.reshape(d, t.columns, *t.images.shape[1:]).transpose(0, 1)
        side = max(1, math.ceil(math.sqrt(d)))
        save_gif(
            torch.stack([grid_image(f, nrow=side) for f in frames]),
            gif,
            fps=6,
            scale=max(1, args.scale),
        )
        print(gif)
    w = max(len(s) for s in labels)
    for r, text in enumerate(labels):
        print(f"  row {r:>3}  {text:<{w}}", file=sys.stderr)
    return 0


def _kl_of(ck, n: int):
    """KL per dimension on up to ``n`` of the checkpoint's own test images, and a note on
    where they came from (None and the reason if its data cannot be loaded)."""
    from ..data import DataError, load_data
    from ..evaluate import elbo_stats

    if n == 0 or not ck.model.is_variational:
        why = "--kl-images 0" if n == 0 else "a plain autoencoder has no KL"
        return None, f"rows in index order ({why})"
    if ck.data_spec is None:
        return None, "rows in index order (the checkpoint names no data to measure KL on)"
    data = getattr(ck, "data", None)  # a user's model: the images named with it, loaded
    try:
        if data is None:
            data = load_data(ck.data_spec)
            check_data_fits(ck, ck.data_spec, data)
    except (DataError, UserError) as e:
        return None, f"rows in index order (its data could not be loaded: {e})"
    x = data.test_x[:n]
    y = data.test_y[:n] if ck.model.num_classes else None
    kl = elbo_stats(ck.model, x, y).kl_per_dim
    return kl, f"rows ordered by KL on {len(x):,} test images of {ck.data_spec.describe()}"
