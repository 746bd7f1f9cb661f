"""``latent-train direction``: the direction from one group's mean code to another's (two
classes, a CelebA attribute off and on, or two lists of test images), decoded as a row of
images walking along it (a PNG, or an animated GIF)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._checks import (
    UserError,
    checkpoint_data,
    class_index,
    image_out,
    not_an_input,
    open_model_source,
)
from ._options import add_model_args, add_scale, float_in, int_in

MAX_SPAN = 100.0  # --span: the most a sweep goes either way, in whole directions
MAX_STEPS = 200
MAX_FOLDER_IMAGES = 10_000  # pictures read from one --from-images / --to-images folder


def add_options(p) -> None:
    g = p.add_argument_group("the two groups (one way of giving them)")
    g.add_argument("--from", dest="source", metavar="CLASS", help="class name or number")
    g.add_argument("--to", dest="target", metavar="CLASS", help="class name or number")
    g.add_argument(
        "--attribute",
        metavar="NAME",
        help="a CelebA attribute (Smiling, Eyeglasses, ...): from the test faces without "
        "it to those with it",
    )
    g.add_argument(
        "--from-images",
        metavar="I,J,...",
        help="test image numbers (of the checkpoint's data), comma-separated, or a folder "
        "of pictures (each made like the model's images)",
    )
    g.add_argument("--to-images", metavar="I,J,...", help="as --from-images")
    p.add_argument(
        "--steps", type=int_in(2, MAX_STEPS), default=9, help="images in the row (default: 9)"
    )
    p.add_argument(
        "--span",
        type=float_in(-MAX_SPAN, MAX_SPAN),
        nargs="+",
        metavar="T",
        default=None,
        help="how far to go, in whole directions: T (0 to T) or T0 T1 (default: 1, from "
        "the start to the start plus the direction)",
    )
    p.add_argument(
        "--start",
        default="from",
        metavar="WHERE",
        help="from: the from-group's mean (default); zero: the prior's mean; a number: "
        "that test image's code",
    )
    p.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class to decode under (conditional model; default: the --from class, else the first)",
    )
    add_model_args(p)
    add_scale(p, 4)
    p.add_argument(
        "--out",
        required=True,
        help="image file (.png, .jpg, ...) for the row, or .gif for an animation",
    )


def _out(arg: str):
    """The output file and whether it is a GIF, checked before anything is decoded."""
    from ._checks import check_path, check_writable_file

    if arg.strip() and Path(arg).suffix.lower() == ".gif":
        check_path("--out", arg)
        out = Path(arg).expanduser()
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; name a file, e.g. {out / 'sweep.png'}")
        check_writable_file(out, "--out")
        return out, True
    return image_out(arg, "sweep.png"), False


def _image_list(option: str, text: str, n: int):
    import numpy as np

    rows = []
    for word in text.replace(" ", ",").split(","):
        if not word:
            continue
        try:
            k = int(word)
        except ValueError:
            raise UserError(
                f"{option} {text!r}: {word!r} is not a test image number (give I,J,...)"
            ) from None
        if not 0 <= k < n:
            raise UserError(
                f"{option}: image {k} is not in the test set ({n:,} images, 0 to {n - 1})"
            )
        rows.append(k)
    if not rows:
        raise UserError(f"{option} names no images; give test image numbers I,J,...")
    return np.array(rows, dtype=np.int64)


def _which(args) -> str:
    """Which way the groups are given: classes, attribute or images; one line if not one."""
    ways = {
        "classes": args.source is not None or args.target is not None,
        "attribute": args.attribute is not None,
        "images": args.from_images is not None or args.to_images is not None,
    }
    given = [w for w, on in ways.items() if on]
    if not given:
        raise UserError(
            "name the two groups: --from CLASS --to CLASS, --attribute NAME, or "
            "--from-images I,J,... --to-images I,J,..."
        )
    if len(given) > 1:
        options = {"classes": "--from/--to", "attribute": "--attribute", "images": "--*-images"}
        raise UserError(
            f"give the groups one way: {' and '.join(options[w] for w in given)} were both given"
        )
    way = given[0]
    if way == "classes" and (args.source is None or args.target is None):
        raise UserError(
            f"{'--to' if args.target is None else '--from'} is missing: a direction "
            "goes from one class to another"
        )
    if way == "images" and (args.from_images is None or args.to_images is None):
        missing = "--to-images" if args.to_images is None else "--from-images"
        raise UserError(f"{missing} is missing: a direction needs two groups of images")
    return way


def run(args) -> int:

    from ..directions import DirectionError, direction, span_of, sweep
    from ..export import check_grid_size, grid_size, save_gif, save_grid
    from ..latent import decode_batch

    way = _which(args)
    out, gif = _out(args.out)
    ck = open_model_source(args, outputs=(("--out", out),))
    mc = ck.model_config
    # the class to decode under (a conditional model), or the line saying --class does not apply
    chosen = class_index(args.cls, ck.class_names, mc.conditional) if args.cls is not None else None
    spec, data = checkpoint_data(args, ck)
    try:
        span = span_of(args.span if args.span is not None else 1.0)
    except DirectionError as e:
        raise UserError(f"--span: {e}") from None
    if not gif:
        check_grid_size(out, grid_size(args.steps, mc.image_shape[1:], args.steps, 2, args.scale))
    n = len(data.test_x)
    try:
        source_rows, target_rows, names, cls = _groups(way, args, data, n, ck, out)
    except DirectionError as e:
        raise UserError(str(e)) from None
    src, tgt = (_encode(ck.model, g, data) for g in (source_rows, target_rows))
    d = direction(src, tgt, names[0], names[1])
    print(f"from {d.source}: {d.source_size:,} {_what(source_rows)}")
    print(f"to {d.target}: {d.target_size:,} {_what(target_rows)}")
    print(f"length of the direction: {d.length:.4f} (latent units; {mc.latent_dim} dimensions)")
    y = None
    if mc.conditional:
        y = chosen if chosen is not None else cls or 0
    start = _start(args.start, src, ck.model, data, n)

    images = decode_batch(ck.model, sweep(start, d, args.steps, span), y)
    if gif:
        print(save_gif(images, out, fps=6, scale=args.scale))
    else:
        print(save_grid(images, out, nrow=args.steps, scale=args.scale))
    print(
        f"note: {args.steps} steps of {span[0]:g} to {span[1]:g} times the direction, from "
        f"{_start_name(args.start, d.source)}"
        + (f", decoded as class {_class_name(ck, y)}" if y is not None else ""),
        file=sys.stderr,
    )
    return 0


def _encode(model, group, data):
    """The posterior means of a group: rows of the test set, or images read from a folder."""
    import torch

    from ..evaluate import posterior_means

    if torch.is_tensor(group):
        return posterior_means(model, group)
    t = torch.from_numpy(group)
    return posterior_means(model, data.test_x[t], data.test_y[t] if model.num_classes else None)


def _what(group) -> str:
    import torch

    return "images from the folder" if torch.is_tensor(group) else "test images"


def _groups(way: str, args, data, n: int, ck, out):
    """(source group, target group, (source name, target name), the source class or None);
    a group is rows of the test set, or the images of a folder (uint8 (N, C, H, W))."""
    from ..directions import attribute_rows, check_group, class_members, class_number

    if way == "classes":
        if data.test_y is None:
            raise UserError(
                f"{data.name} has no labels: give the groups as --from-images and --to-images"
            )
        k = [
            class_number(c, data.class_names, data.num_classes) for c in (args.source, args.target)
        ]
        if k[0] == k[1]:
            raise UserError("--from and --to are the same class: that direction is nothing")
        names = [data.class_names[i] if i < len(data.class_names) else str(i) for i in k]
        groups = [
            check_group(class_members(data.test_y.numpy(), i), f"class {nm}")
            for i, nm in zip(k, names, strict=True)
        ]
        return groups[0], groups[1], tuple(f"class {nm}" for nm in names), k[0]
    if way == "attribute":
        if data.attributes is None:
            raise UserError(
                f"--attribute needs CelebA's attributes; {data.name} has none "
                "(--dataset celeba --root DIR)"
            )
        on, off = attribute_rows((data.attributes.names, data.attributes.test), args.attribute)
        a = args.attribute
        off = check_group(off, f"the test faces without {a}")
        on = check_group(on, f"the test faces with {a}")
        return off, on, (f"not {a}", a), None
    groups, names = [], []
    for option, value in (("--from-images", args.from_images), ("--to-images", args.to_images)):
        folder = Path(value).expanduser()
        if value.strip() and folder.is_dir():
            not_an_input("--out", out, [(option, folder)], folder=True)
            groups.append(_folder_images(option, folder, ck, data))
            names.append(f"folder {folder.name or folder}")
        else:
            rows = _image_list(option, value, n)
            groups.append(rows)
            names.append(f"images {_short(rows)}")
    return groups[0], groups[1], tuple(names), None


def _folder_images(option: str, folder: Path, ck, data):
    """The pictures in ``folder`` (not its sub-folders), each made like the model's data
    (:func:`trainer.data.imaging.prepare_image`): uint8 (N, C, H, W)."""
    import torch

    from ..data.folder import IMAGE_SUFFIXES
    from ..data.imaging import ImageError, prepare_image

    if ck.model.num_classes:
        raise UserError(
            f"{option} {folder}: a conditional model encodes each image with its class, which "
            "a folder does not give; name test images (I,J,...) instead"
        )
    try:
        files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    except OSError as e:
        raise UserError(f"{option} {folder}: cannot be read ({e.strerror or e})") from None
    if not files:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        raise UserError(f"{option} {folder}: holds no pictures ({kinds})")
    if len(files) > MAX_FOLDER_IMAGES:
        raise UserError(
            f"{option} {folder}: holds {len(files):,} pictures; a group takes at most "
            f"{MAX_FOLDER_IMAGES:,}"
        )
    x = data.test_x[:500].float() / 255  # light strokes on a dark ground, as MNIST's?
    edges = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
    dark = float(edges.mean()) < 0.5
    images = []
    for f in files:
        try:
            x, _done = prepare_image(f, tuple(ck.model_config.image_shape), dark)
        except ImageError as e:
            raise UserError(f"{option}: {e}") from None
        images.append(torch.from_numpy(x))
    return torch.cat(images)


def _short(rows) -> str:
    shown = ",".join(str(int(r)) for r in rows[:4])
    return shown + (f",... ({len(rows)})" if len(rows) > 4 else "")


def _start(where: str, source_codes, model, data, n: int):
    import torch

    from ..evaluate import posterior_means

    if where == "from":
        return source_codes.double().mean(0).float()
    if where == "zero":
        return torch.zeros(model.latent_dim)
    try:
        k = int(where)
    except ValueError:
        raise UserError(f"--start {where!r}: give from, zero or a test image number") from None
    if not 0 <= k < n:
        raise UserError(f"--start {k}: the test set has {n:,} images (0 to {n - 1})")
    y = data.test_y[k : k + 1] if model.num_classes else None
    return posterior_means(model, data.test_x[k : k + 1], y)[0]


def _class_name(ck, y: int) -> str:
    names = ck.class_names or []
    return names[y] if y < len(names) else str(y)


def _start_name(where: str, source: str) -> str:
    if where == "from":
        return f"the mean of {source}"
    if where == "zero":
        return "the prior's mean"
    return f"test image {where}'s code"
