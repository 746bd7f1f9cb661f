"""``latent-train sample``: an image grid of samples from the prior; a conditional model's
shows one row per class, the same z in each."""

from __future__ import annotations

import math

from ._checks import UserError, class_index, image_out, open_model_source
from ._options import IMAGE_FILE, add_model_args, add_scale, add_seed, int_in

MAX_GRID_IMAGES = 10_000  # images in one `sample` grid, all classes together


def add_options(s) -> None:
    add_model_args(s)
    s.add_argument(
        "--n",
        type=int_in(1, MAX_GRID_IMAGES),
        default=64,
        help=f"samples (per class for a CVAE), at most {MAX_GRID_IMAGES} in all (default: 64)",
    )
    s.add_argument("--nrow", type=int_in(1, MAX_GRID_IMAGES), default=None, help="images per row")
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
    add_seed(s)
    add_scale(s, 2)
    s.add_argument("--out", required=True, help=IMAGE_FILE)


def run(args) -> int:
    import torch

    from ..export import check_grid_size, grid_size, save_grid
    from ..latent import sample_prior

    out = image_out(args.out, "samples.png")
    ck = open_model_source(args, outputs=(("--out", out),))
    mc = ck.model_config
    every_class = mc.conditional and args.cls is None  # one row per class, shared z
    y = None if every_class else class_index(args.cls, ck.class_names, mc.conditional)
    total = args.n * mc.num_classes if every_class else args.n
    nrow = args.nrow or (args.n if every_class else max(1, round(math.sqrt(args.n))))
    if total > MAX_GRID_IMAGES:
        raise UserError(
            f"--n {args.n} for each of {mc.num_classes} classes makes {total} images; a grid "
            f"holds at most {MAX_GRID_IMAGES} (pass --class, or a smaller --n)"
        )
    check_grid_size(out, grid_size(total, mc.image_shape[1:], nrow, 2, args.scale))
    gen = torch.Generator().manual_seed(args.seed)
    if every_class:
        imgs = prior_class_rows(ck.model, args.n, gen)
    else:
        imgs = sample_prior(ck.model, args.n, y, mode=args.mode, generator=gen)
    print(save_grid(imgs, out, nrow=nrow, scale=args.scale))
    return 0


def prior_class_rows(model, n: int, generator, classes: int | None = None):
    """The same n prior latents decoded under each of the first ``classes`` classes (default:
    all): (classes * n, C, H, W)."""
    import torch

    from ..latent import class_rows, decode_batch

    z = torch.randn(n, model.latent_dim, generator=generator)
    return decode_batch(model, *class_rows(z, classes or model.num_classes))
