"""``latent-train map``: the encoded test images (posterior means) on a 2-D map, by UMAP,
t-SNE, the principal plane or two latent dimensions: a picture of it coloured by class, the
codes and their places as .npz or .csv, and a TensorBoard projector folder. It prints the
time the map took and its 5-nearest-neighbour class agreement."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._checks import (
    UserError,
    check_path,
    checkpoint_data,
    command_inputs,
    file_in_the_way,
    image_out,
    not_an_input,
    open_model_source,
    output_file,
    probe,
)
from ._console import Progress, describe_data
from ._options import IMAGE_FILE, add_model_args, add_seed, int_in

METHODS = ("umap", "tsne", "pca", "axes")
AGREEMENT_K = 5


def default_method() -> str:
    """UMAP where umap-learn is installed, else the principal plane."""
    from importlib.util import find_spec

    return "umap" if find_spec("umap") is not None else "pca"


def add_options(m) -> None:
    from ..config import MAX_LATENT

    m.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="umap, tsne (non-linear: pip install 'latent-explorer[maps]'), pca (the "
        "principal plane) or axes (two --dims) (default: umap where installed, else pca)",
    )
    m.add_argument(
        "--dims",
        type=int_in(0, MAX_LATENT - 1),
        nargs=2,
        default=None,
        metavar=("DX", "DY"),
        help="the two latent dimensions of --method axes (default: 0 1)",
    )
    m.add_argument("--out", default=None, help=f"the map as a picture: {IMAGE_FILE}")
    m.add_argument("--codes", default=None, help="the codes, labels and places as .npz or .csv")
    m.add_argument(
        "--projector",
        default=None,
        metavar="DIR",
        help="a TensorBoard projector folder (tensorboard --logdir DIR opens it)",
    )
    m.add_argument(
        "--limit",
        type=int_in(4, 10**9),
        default=None,
        help="only the first N test images (default: the whole test set)",
    )
    add_seed(m)
    add_model_args(m)


def _checkpoint(value: str) -> str:
    """A checkpoint's path, or a bundled example's model file for an example's name."""
    from ..examples import example_path, names

    if not Path(value).expanduser().exists() and value in names():
        return str(example_path(value))
    return value


def _projector_out(arg: str) -> Path:
    if not arg.strip():
        raise UserError("--projector is empty; name a folder for the projector's files")
    check_path("--projector", arg)
    out = Path(arg).expanduser()
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise UserError(f"--projector {out}: {blocker} is a file, not a folder")
    folder = next((p for p in (out, *out.parents) if p.is_dir()), Path("."))
    try:
        probe(folder)
    except OSError as e:
        raise UserError(f"--projector {out}: cannot be written ({e.strerror or e})") from None
    return out


def _codes_out(arg: str) -> Path:
    from ..codes import codes_format

    return output_file(arg, "--codes", "a .npz or .csv file", "a file", "codes.npz", codes_format)


def run(args) -> int:
    import numpy as np

    from ..codes import MapCodes, scatter_picture, write_codes, write_projector
    from ..evaluate import posterior_means, to_float
    from ..export import save_picture
    from ..maps import TITLES, Cancelled, MapCache, MapUnavailable, neighbour_agreement

    if args.out is None and args.codes is None and args.projector is None:
        raise UserError(
            "name what to write: --out map.png, --codes codes.npz|.csv or --projector DIR"
        )
    method = args.method or default_method()
    if args.method is None and method != "umap":
        print(
            "note: umap-learn is not installed, so the map is the principal plane; "
            "pip install 'latent-explorer[maps]' for UMAP and t-SNE",
            file=sys.stderr,
        )
    if args.dims is not None and method != "axes":
        raise UserError(
            f"--dims does not apply to --method {method}: it picks the two latent dimensions "
            "of --method axes"
        )
    for option in ("images", "labels", "root"):
        check_path(f"--{option}", getattr(args, option))
    outputs = []
    if args.out is not None:
        outputs.append(("--out", image_out(args.out, "map.png"), False))
    if args.codes is not None:
        outputs.append(("--codes", _codes_out(args.codes), False))
    if args.projector is not None:
        outputs.append(("--projector", _projector_out(args.projector), True))
    if args.checkpoint is not None:
        args.checkpoint = _checkpoint(args.checkpoint)
    ck = open_model_source(args)
    inputs = command_inputs(args, ck)
    for option, path, folder in outputs:
        not_an_input(option, path, inputs, folder=folder)
    spec, data = checkpoint_data(args, ck)
    print(f"data: {describe_data(spec, data)}", file=sys.stderr)
    model = ck.model
    n = len(data.test_x) if args.limit is None else min(args.limit, len(data.test_x))
    x = data.test_x[:n]
    labels = (
        data.test_y[:n].numpy().astype(np.int64)
        if data.test_y is not None
        else np.full(n, -1, dtype=np.int64)
    )
    y = data.test_y[:n] if model.num_classes else None
    d = ck.model_config.latent_dim
    dims = tuple(args.dims) if args.dims is not None else (0, 1)
    if method in ("axes", "pca") and d < 2:
        raise UserError(f"a {TITLES[method]} map needs 2 or more latent dimensions; this has {d}")
    if method == "axes" and (not all(0 <= k < d for k in dims) or dims[0] == dims[1]):
        raise UserError(f"--dims must be two different dimensions in 0..{d - 1}, got {dims}")
    codes = posterior_means(model, x, y).numpy()
    bar = Progress("map")
    t0 = time.perf_counter()
    try:
        cache = MapCache()
        p = cache.project(
            codes,
            method,
            dims=dims,
            seed=args.seed,
            progress=lambda f, what: bar.update(f, what) if f < 1 else None,
        )
    except MapUnavailable as e:
        bar.close()
        raise UserError(str(e)) from None
    except Cancelled:  # (nothing cancels a command's map but Ctrl-C)
        bar.close()
        raise UserError("the map was stopped") from None
    bar.done()
    took = time.perf_counter() - t0  # this command's map: computed now or read back
    if cache.problem:
        print(f"note: {cache.problem}", file=sys.stderr)
    class_names = tuple(ck.class_names or data.class_names or ())
    title = f"{TITLES[method]} of {n:,} test codes ({d}-D)"
    labelled = labels >= 0
    agreement = (
        neighbour_agreement(p.xy[labelled], labels[labelled], AGREEMENT_K)
        if labelled.sum() > AGREEMENT_K
        else None
    )
    if agreement is not None:
        title += f"; {AGREEMENT_K}-NN class agreement {agreement:.3f}"
    for option, path, _folder in outputs:
        if option == "--out":
            picture = scatter_picture(p.xy, labels, class_names, title, seed=args.seed)
            print(save_picture(picture, path))
        else:
            images = to_float(x).numpy() if option == "--projector" else None
            m = MapCodes(codes, labels, p.xy, method, class_names, images)
            print(write_codes(path, m) if option == "--codes" else write_projector(path, m))
    cached = p.seconds and p.transform is None and method in ("umap", "tsne")
    when = (
        f"read from the cache in {took:.2f} s (computing it took {p.seconds:.2f} s)"
        if cached
        else f"computed in {p.seconds:.2f} s"
    )
    print(f"map: {TITLES[method]} of {n:,} codes ({d}-D), {when}")
    if agreement is None:
        print(f"{AGREEMENT_K}-NN class agreement: none (the test images have no labels)")
    else:
        print(
            f"{AGREEMENT_K}-NN class agreement: {agreement:.3f} (the share of each point's "
            f"{AGREEMENT_K} nearest neighbours on the map that have its class)"
        )
    return 0
