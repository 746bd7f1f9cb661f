"""``latent-train posterior``: the test set's aggregate posterior against the prior on a
plane of the latent space, and the holes it leaves (prior mass no test image encodes to)."""

from __future__ import annotations

from ._checks import UserError, image_out, open_model_source, own_test_data
from ._options import IMAGE_FILE, add_model_args, add_scale, int_in


def add_options(q) -> None:
    from ..config import MAX_LATENT

    add_model_args(q)
    q.add_argument("--out", required=True, help=IMAGE_FILE)
    q.add_argument(
        "--plane",
        choices=("dims", "pca"),
        default="dims",
        help="the two --dims, or the principal plane (default: dims)",
    )
    q.add_argument(
        "--dims",
        type=int_in(0, MAX_LATENT - 1),
        nargs=2,
        default=None,
        metavar=("DX", "DY"),
        help="the two dimensions (default: 0 1)",
    )
    add_scale(q, 6)


def run(args) -> int:
    import torch

    from ..evaluate import posterior_means
    from ..export import save_picture
    from ..latent import dims_plane, map_subset, principal_plane
    from ..posterior import means_histogram, picture, posterior_vs_prior

    out = image_out(args.out, "posterior.png")
    ck = open_model_source(args, outputs=(("--out", out),))
    d = ck.model_config.latent_dim
    dx, dy = args.dims
    if not (0 <= dx < d and 0 <= dy < d) or (dx == dy and d > 1):
        raise UserError(f"--dims must be two different dimensions in 0..{d - 1}, got {dx} {dy}")
    data = own_test_data(ck, "the posterior needs")
    idx = map_subset(len(data.test_x))
    x, y = data.test_x[idx], data.test_y[idx] if ck.model.num_classes else None
    if args.plane == "pca":
        plane = principal_plane(posterior_means(ck.model, x, y).numpy())
    else:
        plane = dims_plane(torch.zeros(d), (dx, dy))
    v = posterior_vs_prior(ck.model, x, y, plane)
    print(save_picture(picture(v), out, scale=args.scale))
    print(f"plane: {plane.names[0]} (across), {plane.names[1]} (up), {v.extent:g} either way")
    print(
        f"hole mass: {v.hole_mass:.4f} of the prior's probability lies where the test set's "
        f"aggregate posterior leaves it empty"
    )
    print(f"outside the picture: {v.outside:.4f} of {v.samples:,} samples of q(z)")
    print("dimension  mean of E[z|x]  std of E[z|x]  share beyond +-4")
    for k in range(d):
        _c, _dens, beyond = means_histogram(v.means, k)
        m = v.means[:, k]
        print(f"z{k:<9}  {m.mean():+14.3f}  {m.std():13.3f}  {beyond:16.3f}")
    return 0
