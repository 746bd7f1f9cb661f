"""``latent-train manifold``: the Kingma & Welling Figure 4 grid, decoded over two latent
dimensions or the principal plane of the encoded test images; a conditional model gets one
grid per class. The training's ``manifold.png`` is drawn here too."""

from __future__ import annotations

import sys

from ._checks import UserError, class_index, image_out, open_model_source, own_test_data
from ._options import IMAGE_FILE, add_model_args, add_scale, int_in


def add_options(g) -> None:
    from ..config import MAX_LATENT

    add_model_args(g)
    g.add_argument("--n", type=int_in(2, 100), default=20, help="grid side, 2-100 (default: 20)")
    g.add_argument(
        "--dims",
        type=int_in(0, MAX_LATENT - 1),
        nargs=2,
        default=None,
        metavar=("DX", "DY"),
        help="the two latent dimensions (default: 0 1)",
    )
    g.add_argument(
        "--plane",
        choices=("dims", "pca"),
        default="dims",
        help="dims: the two --dims; pca: the first two principal components of the encoded "
        "test images, centred at their mean, in standard deviations (default: dims)",
    )
    g.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class name or index (CVAE; default: one grid per class, in class order)",
    )
    add_scale(g, 2)
    g.add_argument("--out", required=True, help=IMAGE_FILE)


def run(args) -> int:
    out = image_out(args.out, "manifold.png")
    ck = open_model_source(args, outputs=(("--out", out),))
    d = ck.model_config.latent_dim
    if d < 2:
        raise UserError(f"a manifold needs 2 or more latent dimensions; this model has {d}")
    dx, dy = args.dims
    if not (0 <= dx < d and 0 <= dy < d) or dx == dy:
        raise UserError(f"--dims must be two different dimensions in 0..{d - 1}, got {dx} {dy}")
    y = None
    if args.cls is not None or not ck.model_config.conditional:
        y = class_index(args.cls, ck.class_names, ck.model_config.conditional)
    plane = _principal_plane_of(ck) if args.plane == "pca" else None
    print(write_manifold(ck.model, out, y, (dx, dy), n=args.n, scale=args.scale, plane=plane))
    return 0


def _principal_plane_of(ck):
    """The principal plane of the checkpoint's encoded test images (the window's map set)."""
    from ..evaluate import posterior_means
    from ..latent import map_subset, principal_plane

    data = own_test_data(ck, "--plane pca needs")
    idx = map_subset(len(data.test_x))
    y = data.test_y[idx] if ck.model.num_classes else None
    plane = principal_plane(posterior_means(ck.model, data.test_x[idx], y).numpy())
    print(
        f"note: the principal plane of {len(idx):,} encoded test images of "
        f"{ck.data_spec.describe()}: {plane.names[0]}, {plane.names[1]}",
        file=sys.stderr,
    )
    return plane


def manifold_size(model, n: int, y, scale: int, classes: int | None = None) -> tuple[int, int]:
    """(width, height) of :func:`write_manifold`'s image, before anything is decoded."""
    from ..export import grid_size

    _, h, w = model.config.image_shape
    if model.num_classes and y is None:
        k = classes or model.num_classes
        gw, gh = grid_size(n * n, (h, w), n, 0)
        return grid_size(k, (gh, gw), min(k, 5), 6, scale)
    return grid_size(n * n, (h, w), n, 0, scale)


def write_manifold(
    model, path, y, dims, n: int, scale: int, classes: int | None = None, plane=None
):
    """The Figure 4 grid on two dimensions ``dims`` (or on ``plane``); for a conditional
    model with no class chosen, one grid for each of the first ``classes`` (default: all)."""
    import torch

    from ..export import check_grid_size, save_grid, save_mosaic
    from ..latent import decode_batch, dims_plane

    check_grid_size(path, manifold_size(model, n, y, scale, classes))
    plane = plane or dims_plane(torch.zeros(model.latent_dim), dims)
    z = plane.grid(n)
    if model.num_classes and y is None:
        k = classes or model.num_classes
        groups = [decode_batch(model, z, c) for c in range(k)]
        return save_mosaic(groups, path, nrow=n, ncol_groups=min(k, 5), scale=scale)
    return save_grid(decode_batch(model, z, y), path, nrow=n, padding=0, scale=scale)
