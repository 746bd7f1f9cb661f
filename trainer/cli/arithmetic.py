"""``latent-train arithmetic``: decode z_a - z_b + z_c of three of the checkpoint's test
images, shown beside them."""

from __future__ import annotations

from ._checks import UserError, image_out, open_model_source, own_test_data
from ._options import IMAGE_FILE, add_model_args, add_scale, int_in


def add_options(a) -> None:
    add_model_args(a)
    for name in ("a", "b", "c"):
        a.add_argument(
            f"--{name}",
            type=int_in(0, 10**9),
            required=True,
            metavar="I",
            help=f"index of test image {name} (of the checkpoint's data)",
        )
    a.add_argument("--out", required=True, help=IMAGE_FILE)
    add_scale(a, 4)


def run(args) -> int:
    import torch

    from ..export import save_grid
    from ..latent import arithmetic

    out = image_out(args.out, "arithmetic.png")
    ck = open_model_source(args, outputs=(("--out", out),))
    data = own_test_data(ck, "arithmetic needs")
    n = len(data.test_x)
    idx = [args.a, args.b, args.c]
    for name, i in zip("abc", idx, strict=True):
        if i >= n:
            raise UserError(f"--{name} {i}: the test set has {n} images (0 to {n - 1})")
    t = torch.tensor(idx)
    y = data.test_y[t] if ck.model.num_classes else None
    row, _z = arithmetic(ck.model, data.test_x[t], y)
    print(save_grid(row, out, nrow=4, scale=args.scale))
    return 0
