"""``latent-train``: train, evaluate, sample and draw manifolds from the command line.

Every mistake a user can make ends in one line on stderr and exit code 2. A training stopped
by Ctrl-C or SIGTERM saves what it trained and exits with 130 or 143.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from .cliparse import EXIT_USAGE, OneLineParser, data_option_problem, given_data_options

DEFAULT_SOURCE = "mnist"  # what `train` trains on without --dataset
MAX_Z = 1000.0  # traverse --z: the most a latent value may be, either way (prior std 1)
MAX_GRID_IMAGES = 10_000  # images in one `sample` grid, all classes together
TRAIN_PICTURE_CLASSES = 20  # a conditional model's training pictures show this many classes


class _Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, sparse otherwise)."""

    def __init__(self, label: str, stream=sys.stderr, width: int = 28):
        self.label, self.stream, self.width = label, stream, width
        self.tty = stream.isatty()
        self.last = -math.inf
        self.last_pct = -1

    def update(self, fraction: float, text: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        pct = int(fraction * 100)
        if not force and (now - self.last < (0.1 if self.tty else 5.0)) and pct == self.last_pct:
            return
        if not force and not self.tty and now - self.last < 5.0:
            return
        self.last, self.last_pct = now, pct
        fill = round(self.width * min(max(fraction, 0.0), 1.0))
        bar = "#" * fill + "-" * (self.width - fill)
        line = f"{self.label} [{bar}] {pct:3d}% {text}"
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def done(self, text: str = "done") -> None:
        self.update(1.0, text, force=True)
        self.close()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(s)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


# -- argument parsing -----------------------------------------------------------------------
# Every number is range-checked as it is parsed, so that a bad one costs one line before any
# data is loaded; the ranges are those of TrainConfig, ModelConfig and DataSpec.
def _shown(s: str) -> str:
    s = s.strip()
    return s if len(s) <= 30 else s[:27] + "..."


def _int_in(lo: int, hi: int):
    """An argparse type: a whole number from lo to hi."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {lo} to {hi}, got {_shown(s)!r}"
            ) from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo} to {hi}, got {_shown(s)}")
        return v

    return parse


def _float_in(lo: float, hi: float, open_lo: bool = False, open_hi: bool = False):
    """An argparse type: a finite number in [lo, hi], either end open where asked."""
    g = lambda v: f"{v:,.0f}".replace(",", "") if float(v).is_integer() else f"{v:g}"  # noqa: E731
    span = f"{'(' if open_lo else '['}{g(lo)}, {g(hi)}{')' if open_hi else ']'}"

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number in {span}, got {_shown(s)!r}"
            ) from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {_shown(s)}")
        if not ((lo < v if open_lo else lo <= v) and (v < hi if open_hi else v <= hi)):
            raise argparse.ArgumentTypeError(f"must be in {span}, got {_shown(s)}")
        return v

    return parse


def _add_data_args(p: argparse.ArgumentParser, required: bool) -> None:
    from .data import SOURCES

    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        choices=SOURCES,
        default=None,  # None: not given (train: DEFAULT_SOURCE; evaluate: the checkpoint's)
        help="data source (default: %s); an option the source does not read is refused"
        % (DEFAULT_SOURCE if required else "the one the checkpoint was trained on"),
    )
    g.add_argument("--images", help="IDX images file (--dataset idx); .gz is fine")
    g.add_argument("--labels", help="IDX labels file (--dataset idx), optional")
    g.add_argument("--root", help="image folder with one sub-folder per class (--dataset folder)")
    g.add_argument(
        "--image-size",
        type=_int_in(8, 256),
        default=None,
        help="side in pixels for folder and shapes images, 8-256 (default: 28)",
    )
    g.add_argument(
        "--test-fraction",
        type=_float_in(0, 1, open_lo=True, open_hi=True),
        default=None,
        help="held-out share for sources without a test split (default: 0.2)",
    )
    g.add_argument(
        "--shapes-count",
        type=_int_in(10, 1_000_000),
        default=None,
        help="number of images in the built-in shapes set (default: 6000)",
    )
    g.add_argument(
        "--background",
        choices=("white", "black"),
        default=None,
        help="folder images: what their transparent pixels are put on (default: white)",
    )


class _Parser(OneLineParser):
    """The parser of ``latent-train`` and its commands (see :mod:`trainer.cliparse`)."""


def build_parser() -> argparse.ArgumentParser:
    from .config import (
        ARCHS,
        DEVICES,
        FILM_MAX_MB,
        FILM_MEMORY_MB,
        FILM_MIN_MB,
        FILM_SIZES,
        LIKELIHOODS,
        MAX_BATCH,
        MAX_DATA_MEMORY_MB,
        MAX_EPOCHS,
        MAX_HIDDEN,
        MAX_LATENT,
        MAX_SEED,
        MIN_HIDDEN,
        MODELS,
        PRECISIONS,
        TRAVERSAL_COLUMNS,
    )

    seed = _int_in(0, MAX_SEED)
    seed_help = f"0 to {MAX_SEED} (default: 0)"

    parser = _Parser(
        prog="latent-train",
        description="Train variational autoencoders and look at what they learn.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model and write checkpoint, metrics and pictures")
    _add_data_args(t, required=True)
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=MODELS, default="vae", help="(default: vae)")
    m.add_argument("--arch", choices=ARCHS, default="mlp", help="network body (default: mlp)")
    m.add_argument(
        "--latent-dim",
        type=_int_in(1, MAX_LATENT),
        default=20,
        help=f"1 to {MAX_LATENT} (default: 20, the classic VAE's size; the window starts at 2, "
        "where the latent map is the whole latent space)",
    )
    m.add_argument(
        "--hidden",
        type=_int_in(MIN_HIDDEN, MAX_HIDDEN),
        default=400,
        help=f"hidden units, {MIN_HIDDEN}-{MAX_HIDDEN} (default: 400)",
    )
    m.add_argument(
        "--likelihood",
        choices=LIKELIHOODS,
        default="bernoulli",
        help="decoder (default: bernoulli)",
    )
    m.add_argument(
        "--gaussian-std",
        type=_float_in(0, 10, open_lo=True),
        default=None,
        help="fixed std of a Gaussian decoder, in (0, 10] (default: learned)",
    )
    o = t.add_argument_group("optimisation")
    o.add_argument("--epochs", type=_int_in(1, MAX_EPOCHS), default=10, help="(default: 10)")
    o.add_argument("--batch-size", type=_int_in(1, MAX_BATCH), default=128, help="(default: 128)")
    o.add_argument(
        "--lr",
        type=_float_in(0, 1, open_lo=True),
        default=1e-3,
        help="Adam learning rate, in (0, 1] (default: 1e-3)",
    )
    o.add_argument(
        "--beta", type=_float_in(0, 1000), default=None, help="KL weight, 0-1000 (default: 1)"
    )
    o.add_argument(
        "--warmup-epochs",
        type=_float_in(0, 100_000),
        default=None,
        help="epochs over which the KL weight ramps up from 0 (default: 0)",
    )
    o.add_argument("--seed", type=seed, default=0, help=seed_help)
    o.add_argument("--device", choices=DEVICES, default="auto", help="(default: auto)")
    o.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16: the layers compute in bfloat16 (mixed precision; the latent statistics, "
        "the loss, the weights and Adam's state stay float32), where the device has it: CUDA "
        "GPUs from Ampere on, x86 CPUs with AVX-512 BF16 or AMX; conv bodies trained 1.1 to "
        "1.7x as fast on such a CPU (default: fp32)",
    )
    o.add_argument(
        "--data-memory",
        metavar="MB",
        type=_float_in(0, MAX_DATA_MEMORY_MB),
        default=None,
        help="memory the data may take on the training device; a larger training split is "
        "streamed to it batch by batch from the decoded cache or host memory (default: half "
        "of the device's free memory; 0 always streams)",
    )
    o.add_argument(
        "--threads",
        type=_int_in(1, 1024),
        default=None,
        help="CPU threads for training (default: $OMP_NUM_THREADS if set, else all cores but "
        "one, which keeps a busy machine from stalling the run)",
    )
    f = t.add_argument_group("film (how the latent space formed, frame by frame)")
    f.add_argument(
        "--film",
        metavar="FILE",
        default=None,
        help="record the training as a film and write it here: .gif, or .mp4 when ffmpeg is "
        "installed (frames at every epoch's end and, densely, in the first steps)",
    )
    f.add_argument(
        "--film-memory",
        metavar="MB",
        type=_float_in(FILM_MIN_MB, FILM_MAX_MB),
        default=None,
        help=f"memory for the film's frames; past it, older frames are thinned "
        f"({FILM_MIN_MB:g}-{FILM_MAX_MB:g}, default: {FILM_MEMORY_MB:g})",
    )
    f.add_argument(
        "--film-fps",
        type=_float_in(0.5, 60),
        default=None,
        help="frames a second when the film plays (0.5-60, default: 6)",
    )
    f.add_argument(
        "--film-size",
        metavar="PX",
        type=_int_in(FILM_SIZES[0], FILM_SIZES[1]),
        default=None,
        help=f"side of the film's manifold and map, in pixels ({FILM_SIZES[0]}-{FILM_SIZES[1]}, "
        f"default: {FILM_SIZES[2]})",
    )
    t.add_argument("--out", required=True, help="output folder")

    e = sub.add_parser("evaluate", help="test ELBO and importance-sampled log p(x) of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    _add_data_args(e, required=False)
    e.add_argument(
        "--iw-samples",
        type=_int_in(1, 1_000_000),
        default=1000,
        help="importance samples K per image (default: 1000; the paper uses 5000)",
    )
    e.add_argument(
        "--prior-samples",
        type=_int_in(0, 1_000_000),
        default=0,
        help="also the naive prior Monte Carlo estimate with this many samples (default: 0)",
    )
    e.add_argument(
        "--limit", type=_int_in(1, 10**9), default=None, help="only the first N test images"
    )
    e.add_argument("--device", choices=DEVICES, default="auto", help="(default: auto)")
    e.add_argument("--seed", type=seed, default=0, help=seed_help)
    e.add_argument(
        "--out",
        default=None,
        help="JSON file for the results, or a folder for evaluation.json in it "
        "(default: evaluation.json beside the checkpoint)",
    )

    s = sub.add_parser("sample", help="an image grid of samples from the prior")
    s.add_argument("--checkpoint", required=True)
    s.add_argument(
        "--n",
        type=_int_in(1, MAX_GRID_IMAGES),
        default=64,
        help=f"samples (per class for a CVAE), at most {MAX_GRID_IMAGES} in all (default: 64)",
    )
    s.add_argument("--nrow", type=_int_in(1, MAX_GRID_IMAGES), default=None, help="images per row")
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
    s.add_argument("--seed", type=seed, default=0, help=seed_help)
    s.add_argument(
        "--scale", type=_int_in(1, 16), default=2, help="pixel magnification, 1-16 (default: 2)"
    )
    s.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")

    g = sub.add_parser("manifold", help="the Kingma & Welling Figure 4 grid as an image")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--n", type=_int_in(2, 100), default=20, help="grid side, 2-100 (default: 20)")
    g.add_argument(
        "--dims",
        type=_int_in(0, MAX_LATENT - 1),
        nargs=2,
        default=None,
        metavar=("DX", "DY"),
        help="the two latent dimensions (default: 0 1)",
    )
    g.add_argument(
        "--plane", choices=("dims", "pca"), default="dims",
        help="dims: the two --dims; pca: the first two principal components of the encoded "
        "test images, centred at their mean, in standard deviations (default: dims)",
    )  # fmt: skip
    g.add_argument(
        "--class",
        dest="cls",
        default=None,
        help="class name or index (CVAE; default: one grid per class, in class order)",
    )
    g.add_argument(
        "--scale", type=_int_in(1, 16), default=2, help="pixel magnification, 1-16 (default: 2)"
    )
    g.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")

    v = sub.add_parser("traverse", help="one row per latent dimension swept over its values")
    v.add_argument("--checkpoint", required=True)
    v.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")
    v.add_argument(
        "--columns", type=_int_in(*TRAVERSAL_COLUMNS), default=11,
        help=f"values per row, {TRAVERSAL_COLUMNS[0]}-{TRAVERSAL_COLUMNS[1]}, inverse-CDF "
        "spaced (default: 11)",
    )  # fmt: skip
    v.add_argument("--gif", action="store_true",
                   help="also write an animated GIF beside --out (every row at once)")  # fmt: skip
    v.add_argument("--class", dest="cls", default=None,
                   help="class name or index (CVAE; default: the first)")  # fmt: skip
    v.add_argument("--z", type=_float_in(-MAX_Z, MAX_Z), nargs="+", metavar="V",
                   help=f"where the other dimensions stay, each in [-{MAX_Z:g}, {MAX_Z:g}] "
                   "(default: 0, the prior mean)")  # fmt: skip
    v.add_argument("--kl-images", type=_int_in(0, 100_000), default=2000,
                   help="test images to measure each dimension's KL on, to order the rows "
                   "(0: index order; default: 2000)")  # fmt: skip
    v.add_argument(
        "--scale", type=_int_in(1, 16), default=2, help="pixel magnification, 1-16 (default: 2)"
    )

    a = sub.add_parser("arithmetic", help="decode z_a - z_b + z_c of three test images")
    a.add_argument("--checkpoint", required=True)
    for name in ("a", "b", "c"):
        a.add_argument(f"--{name}", type=_int_in(0, 10**9), required=True, metavar="I",
                       help=f"index of test image {name} (of the checkpoint's data)")  # fmt: skip
    a.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")
    a.add_argument(
        "--scale", type=_int_in(1, 16), default=4, help="pixel magnification, 1-16 (default: 4)"
    )

    q = sub.add_parser(
        "posterior", help="the test set's aggregate posterior against the prior, and its holes"
    )
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--out", required=True, help="image file (.png, .jpg, ...)")
    q.add_argument("--plane", choices=("dims", "pca"), default="dims",
                   help="the two --dims, or the principal plane (default: dims)")  # fmt: skip
    q.add_argument("--dims", type=_int_in(0, MAX_LATENT - 1), nargs=2, default=None,
                   metavar=("DX", "DY"), help="the two dimensions (default: 0 1)")  # fmt: skip
    q.add_argument(
        "--scale", type=_int_in(1, 16), default=6, help="pixel magnification, 1-16 (default: 6)"
    )

    r = sub.add_parser("runs", help="the runs kept in a project folder, side by side")
    r.add_argument("--project", metavar="DIR",
                   help="the project folder (default: the window's default)")  # fmt: skip
    r.add_argument("--add", nargs="+", metavar="PATH",
                   help="add latent-train --out folders or checkpoint files as runs")  # fmt: skip

    x = sub.add_parser(
        "examples", help="list the bundled example models, or rebuild them from scratch"
    )
    x.add_argument(
        "--rebuild", action="store_true",
        help="train every example again (seeded); rewrite the table in the README beside them",
    )  # fmt: skip
    x.add_argument("--only", nargs="+", metavar="NAME", help="rebuild only these examples")
    x.add_argument("--into", metavar="DIR",
                   help="examples folder (default: the bundled one, in a checkout)")  # fmt: skip
    x.add_argument("--mnist", metavar="DIR",
                   help="folder with the MNIST test set's t10k IDX files (default: "
                   "$LATENT_EXPLORER_MNIST, else MNIST's download in the cache)")  # fmt: skip
    x.add_argument("--epochs", type=_int_in(1, MAX_EPOCHS),
                   help="epochs for every example (default: each recipe's)")  # fmt: skip
    x.add_argument("--iw-samples", type=_int_in(1, 1_000_000), default=None,
                   help="importance samples per image for -log p(x) (default: 1000)")  # fmt: skip

    f = sub.add_parser("figures", help="the paper's figures and the KL table from the examples")
    f.add_argument("--out", required=True, metavar="DIR", help="folder for the figures")
    f.add_argument(
        "--examples", metavar="DIR",
        help="examples folder (default: the bundled ones); trains missing ones",
    )  # fmt: skip
    f.add_argument("--mnist", metavar="DIR",
                   help="folder with the MNIST test set (to train a missing example)")  # fmt: skip
    return parser


class UserError(Exception):
    pass


# -- paths the user names -------------------------------------------------------------------
def _check_path(option: str, value: str | None) -> None:
    """Refuse a path that cannot even be looked at (a symbolic link loop, a name too long);
    a missing file or an unreadable one is for whoever opens it to report."""
    if value is None:
        return
    try:
        os.stat(Path(value).expanduser())
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(
                f"{option} {value}: is or goes through a symbolic link loop "
                "(too many levels of symbolic links)"
            ) from None
        if e.errno == errno.ENAMETOOLONG:
            raise UserError(f"{option} {value}: {e.strerror}") from None
    except ValueError:  # a NUL in the name
        raise UserError(f"{option} {value!r}: not a valid path") from None


def _file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists but is not a folder, if any."""
    for p in (path, *path.parents):
        if p.is_dir():
            return None
        if p.exists():
            return p
    return None


def _probe(folder: Path) -> None:
    """Write, sync and remove a small file in ``folder``: OSError where files cannot be made
    (read-only file system, no permission, disk full)."""
    probe = folder / f".latent-train-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(bytes(4096))
            f.flush()
            os.fsync(f.fileno())
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only ever removes an empty folder
    except OSError:
        pass


def _prepare_out_folder(arg: str) -> tuple[Path, bool]:
    """Make the training's output folder and prove it writable before any data is loaded, so
    that a run that could not save is refused now rather than after training.

    Returns (folder, whether this call created it)."""
    if not arg.strip():
        raise UserError("--out is empty; name a folder for the run's files")
    _check_path("--out", arg)
    out = Path(arg).expanduser()
    blocker = _file_in_the_way(out)
    if blocker == out:
        raise UserError(f"--out {out}: exists and is not a folder")
    if blocker is not None:
        raise UserError(f"--out {out}: {blocker} is a file, not a folder")
    made = not out.is_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
        _probe(out)
    except OSError as e:
        if made:
            _remove_if_empty(out)
        raise UserError(
            f"--out {out}: cannot write there ({e.strerror or e}), so nothing was trained"
        ) from None
    return out, made


def _check_output(option: str, path: Path) -> None:
    """Refuse an output that is not a file to write: a device (``/dev/null``), a named pipe,
    a socket, a folder, or a symbolic link to nothing (a link to a regular file is written
    through: its target gets the new contents)."""
    from .files import RefusedOutput, output_target

    try:
        output_target(path)
    except RefusedOutput as e:
        raise UserError(f"{option} {path}: {e.strerror}; nothing was written") from None
    except (OSError, ValueError):
        pass  # a name that cannot be looked at: the writer says why


_READS = ("checkpoint", "images", "labels", "root", "examples", "mnist")


def _inputs(args, ck=None) -> list[tuple[str, Path]]:
    """The files and folders a command reads: (the option that names one, its path); with
    ``ck``, also the data files its checkpoint records."""
    found = [(f"--{o}", Path(v).expanduser()) for o in _READS if (v := getattr(args, o, None))]
    spec = getattr(ck, "data_spec", None)
    for o in ("images", "labels", "root"):
        if spec is not None and getattr(spec, o, None):
            found.append((f"the checkpoint's --{o}", Path(getattr(spec, o))))
    return found


def _not_an_input(
    option: str, path: Path, inputs: list[tuple[str, Path]], folder: bool = False
) -> None:
    """Refuse an output that is one of the command's inputs (the same file, through any
    link), a file it would replace inside a folder the command reads, or (``folder``) an
    output folder inside one (its files would join a folder of images)."""
    from .files import inside, same_file

    for name, source in inputs:
        if same_file(path, source):
            what = "the folder given as" if source.is_dir() else "the file given as"
        elif inside(path, source) and (folder or os.path.lexists(path)):
            what = "inside the folder given as"
        else:
            continue
        raise UserError(
            f"{option} {path}: is {what} {name}, which this command reads; write the output "
            "elsewhere"
        )


def _check_writable_file(path: Path, option: str, hint: str = "") -> None:
    """Refuse an output file that could not be written, or is no file to write, before
    any work is done for it."""
    _check_output(option, path)
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        raise UserError(f"{option} {path}: {blocker} is a file, not a folder")
    folder = next((p for p in path.parents if p.is_dir()), Path("."))  # where it would be made
    try:
        _probe(folder)
    except OSError as e:
        raise UserError(f"{option} {path}: cannot be written ({e.strerror or e}){hint}") from None


def _image_out(arg: str, example: str) -> Path:
    """The image file of ``sample`` and ``manifold``, checked before anything is decoded."""
    from .export import image_format

    if not arg.strip():
        raise UserError("--out is empty; name an image file (.png, .jpg, ...)")
    _check_path("--out", arg)
    out = Path(arg).expanduser()
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; name an image file, e.g. {out / example}")
    image_format(out)
    _check_writable_file(out, "--out")
    return out


def _fallback_folders() -> list[Path]:
    """Where a run whose --out failed at the end saves its model instead: a new folder under
    the user's data folder, else under the temporary folder."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    bases = []
    try:
        if os.environ.get("XDG_DATA_HOME"):
            bases.append(Path(os.environ["XDG_DATA_HOME"]))
        elif sys.platform == "darwin":
            bases.append(Path.home() / "Library" / "Application Support")
        elif os.name == "nt":
            bases.append(Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"))
        else:
            bases.append(Path.home() / ".local" / "share")
    except RuntimeError:  # no home folder
        pass
    folders = [b / "latent-explorer" / "unsaved" / stamp for b in bases]
    return folders + [Path(tempfile.gettempdir()) / "latent-explorer-unsaved" / stamp]


def _save_elsewhere(trainer, spec, class_names) -> Path | None:
    from .checkpoint import CheckpointError, save_trainer

    for folder in _fallback_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return save_trainer(
                folder / "checkpoint.safetensors", trainer, data_spec=spec, class_names=class_names
            )
        except (OSError, CheckpointError):
            continue
    return None


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError):
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return f"{name}{e.strerror or e}"
    return str(e)


def _data_options_apply(args, source: str, named: str) -> None:
    """Refuse a data option ``source`` does not read (see :data:`trainer.cliparse.DATA_OPTIONS`):
    it would be ignored."""
    problem = data_option_problem(source, given_data_options(args), named)
    if problem:
        raise UserError(problem)


# options that default to None so that one given can be told from one left out: their
# defaults, filled in once they are known to apply
_DEFAULTS = {
    "train": {"beta": 1.0, "warmup_epochs": 0.0},
    "manifold": {"dims": (0, 1)},
    "posterior": {"dims": (0, 1)},
}


def _check_applicable(args) -> None:
    """Right after parsing, refuse an option that would be ignored: a data option the source
    does not read (`train`, whose default is DEFAULT_SOURCE; `evaluate` with --dataset;
    `evaluate` without it is checked against its checkpoint's data once that is read), KL
    options for a plain autoencoder, --dims with the principal plane. Then fill in the
    defaults of :data:`_DEFAULTS`."""
    c = args.command
    if c == "train":
        named = f"--dataset {args.dataset or f'{DEFAULT_SOURCE} (the default)'}"
        _data_options_apply(args, args.dataset or DEFAULT_SOURCE, named)
        for option in ("beta", "warmup_epochs"):
            if args.model == "ae" and getattr(args, option) is not None:
                raise UserError(f"--{option.replace('_', '-')} does not apply to --model ae: "
                                "a plain autoencoder has no KL term to weigh")  # fmt: skip
    elif c == "evaluate" and args.dataset is not None:
        _data_options_apply(args, args.dataset, f"--dataset {args.dataset}")
    elif c in ("manifold", "posterior") and args.plane == "pca" and args.dims is not None:
        raise UserError("--dims does not apply to --plane pca: its axes are the first two "
                        "principal components of the encoded test images")  # fmt: skip
    for name, value in _DEFAULTS.get(c, {}).items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def _idx_files_together(args, ck) -> None:
    """`evaluate`: IDX images and their labels come both from the command line or both from
    the checkpoint, never one of each (the checkpoint's labels belong to its own images)."""
    spec = ck.data_spec
    theirs = spec is not None and spec.source == "idx" and args.dataset in (None, "idx")
    if args.labels is not None and args.images is None and theirs:
        raise UserError(
            f"--labels without --images: they would label the checkpoint's images "
            f"({Path(spec.images).name}); name both, or neither to evaluate on its own"
        )
    mc = ck.model_config
    if args.images is not None and args.labels is None and mc.conditional:
        raise UserError(
            f"--images without --labels: the model in {ck.path} is conditioned on "
            f"{mc.num_classes} classes and needs the labels of these images (--labels FILE)"
            + ("; the checkpoint's labels belong to its own images" if theirs else "")
        )


def _spec_from_args(args, base=None):
    from .data import DataSpec

    fields = dict(
        source=args.dataset or (DEFAULT_SOURCE if base is None else None),
        images=args.images,
        labels=args.labels,
        root=args.root,
        image_size=args.image_size,
        test_fraction=args.test_fraction,
        shapes_count=args.shapes_count,
        background=args.background,
    )
    given = {k: v for k, v in fields.items() if v is not None}
    for k in ("images", "labels", "root"):  # absolute, so a checkpoint finds its data anywhere
        if k in given:
            given[k] = str(Path(given[k]).expanduser().absolute())
    if base is not None:
        d = base.to_dict()
        if "source" in given and given["source"] != base.source:
            d = {"seed": base.seed}  # a different source: do not inherit its files
        if "images" in given or "labels" in given:  # both the user's, or both the checkpoint's
            d.update(images=None, labels=None)
        d.update(given)
        spec = DataSpec.from_dict(d)
    else:
        spec = DataSpec(**given, seed=getattr(args, "seed", 0) or 0)
    return spec


def _write_json(path: Path, obj) -> None:
    from .files import atomic_write

    blob = (json.dumps(obj, indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(blob))


def _describe(spec, data) -> str:
    return (
        f"{spec.describe()}: {len(data.train_x)} train / {len(data.test_x)} test images "
        f"of {'x'.join(map(str, data.image_shape))}, {_classes(data.num_classes)}"
    )


def _streamed(trainer, device, data_memory) -> str:
    from .loop.feed import data_bytes

    what = "given with --data-memory" if data_memory is not None else "half of what is free"
    both = data_bytes(trainer.data)
    if trainer.data_budget >= both:  # it would fit here: another process could not hold it
        return "another process's data memory is less than the images: every process streams"
    return (
        f"the images, {_mb(both)}, are more than the data memory on {device.type} "
        f"({_mb(trainer.data_budget)}, {what}): the training batches are streamed to it as "
        "it trains"
    )


def _mb(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def _classes(k: int) -> str:
    return "no labels" if not k else f"{k} class{'es' if k != 1 else ''}"


def _class_index(cls: str | None, class_names: list[str], conditional: bool) -> int | None:
    if not conditional:
        if cls is not None:
            raise UserError("--class only applies to a conditional model (--model cvae)")
        return None
    if cls is None:
        return 0
    if cls in class_names:
        return class_names.index(cls)
    try:
        k = int(cls)
    except ValueError:
        raise UserError(
            f"unknown class {cls!r}; the classes are: {', '.join(class_names)}"
        ) from None
    if not 0 <= k < len(class_names):
        raise UserError(f"class index {k} is out of range 0..{len(class_names) - 1}")
    return k


# -- commands --------------------------------------------------------------------------------
class _Interrupted(KeyboardInterrupt):
    """A second stop signal: the run ends at once, with that signal's exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _StopOnSignal:
    """While a training runs and saves: the first Ctrl-C (SIGINT) or SIGTERM asks the loop to
    stop after its current step, and the model is then saved as it stands; a second one
    interrupts at once. Installed only in the main thread, and never over a signal this
    process was started to ignore.

    ``patient``: later signals are ignored too. torchrun passes a Ctrl-C on to its processes
    and then sends them SIGTERM while they save; the save must finish (torchrun's own
    SIGKILL, 30 s later, remains the last word).

    A second signal within :attr:`ECHO_S` of the first is the same stop, arriving twice: a
    signal to a whole process group (a CI job cancelled, ``kill -INT -PGID``) reaches this
    process directly and again through ``uv run``, which passes it on."""

    ECHO_S = 0.5

    def __init__(self, control, patient: bool = False) -> None:
        self.control = control
        self.patient = patient
        self.signum: int | None = None
        self.at = 0.0  # when the first signal came
        self.saved: dict = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN:
                    signal.signal(sig, self._on_signal)
                    self.saved[sig] = signal.SIG_DFL if old is None else old
        return self

    def _on_signal(self, signum, frame) -> None:
        if self.signum is not None:
            if self.patient or time.monotonic() - self.at < self.ECHO_S:
                return
            raise _Interrupted(signum)
        self.signum, self.at = signum, time.monotonic()
        self.control.stop(signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


def cmd_train(args) -> int:
    if args.gaussian_std is not None and args.likelihood != "gaussian":
        raise UserError("--gaussian-std needs --likelihood gaussian")
    for option in ("images", "labels", "root"):
        _check_path(f"--{option}", getattr(args, option))
    given = [o for o in ("film_memory", "film_fps", "film_size") if getattr(args, o) is not None]
    if given and args.film is None:
        raise UserError(f"--{given[0].replace('_', '-')} needs --film FILE (the film to write)")
    if args.film is not None:
        from .config import FILM_MEMORY_MB, FILM_SIZES
        from .film import FilmError, check_film_path

        args.film_memory = args.film_memory or FILM_MEMORY_MB
        args.film_fps = args.film_fps or 6.0
        args.film_size = args.film_size or FILM_SIZES[2]

        _check_path("--film", args.film)
        try:  # before training: a film that cannot be written is known now
            check_film_path(Path(args.film).expanduser())
        except FilmError as e:
            raise UserError(f"--film {e}") from None
    _train_outputs_clear(args)
    from .loop.distributed import launched

    if launched() and os.environ.get("RANK", "0") != "0":  # process 0 makes and writes --out
        return _train(args, Path(args.out).expanduser())
    out, made = _prepare_out_folder(args.out)
    try:
        return _train(args, out)
    except BaseException:
        if made:
            _remove_if_empty(out)  # refused before anything was written: leave no trace
        raise


def _train_outputs_clear(args) -> None:
    """Refuse a run whose files would replace what it reads, or are no files to write."""
    from .export import MANIFEST

    inputs = _inputs(args)
    if not args.out.strip():
        return  # said by _prepare_out_folder
    out = Path(args.out).expanduser()
    _not_an_input("--out", out, inputs, folder=True)
    for name in (*RUN_FILES, MANIFEST):
        _check_output("--out", out / name)
        _not_an_input("--out", out / name, inputs)
    if args.film is not None:
        film = Path(args.film).expanduser()
        _not_an_input("--film", film, inputs)


def _check_space(out: Path, model) -> None:
    """Refuse to train when the checkpoint (weights and Adam's two moments) and pictures
    would not fit on the disk of ``out``."""
    need = 3 * sum(p.numel() * p.element_size() for p in model.parameters()) + 4_000_000
    try:
        free = shutil.disk_usage(out).free
    except OSError:
        return
    if free < need:
        raise UserError(
            f"--out {out}: {free / 1e6:.1f} MB free, but the run's files need about "
            f"{need / 1e6:.1f} MB; make room or choose another folder"
        )


def _train(args, out: Path) -> int:
    import torch

    from .checkpoint import CheckpointError, save_trainer
    from .config import ModelConfig, TrainConfig
    from .data import load_data
    from .loop.distributed import launched
    from .evaluate import final_loss_warning
    from .export import MANIFEST, ExportError
    from .loop.fused import supports
    from .loop import (
        TrainControl,
        Trainer,
        TrainingDiverged,
        bf16_problem,
        resolve_device,
        seed_everything,
    )
    from .models import build_model
    from .loop.threads import clamped, describe, training_threads, usable_cores

    spec = _spec_from_args(args)
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        device=args.device,
        data_memory=args.data_memory,
        precision=args.precision,
    )
    procs = None
    if launched():  # one of several processes started by torchrun
        from .loop import distributed

        procs = distributed.start(tcfg.device)
        device = procs.device
    else:
        device = resolve_device(tcfg.device)
    why = bf16_problem(device) if tcfg.precision == "bf16" else None
    if why:
        raise UserError(
            f"--precision bf16: {why}, so it would be emulated and train slower than fp32; "
            "leave --precision out"
        )
    main = procs is None or procs.main
    info = print if main else (lambda *a, **k: None)  # process 0 alone speaks
    threads = training_threads(args.threads)
    if clamped(args.threads):
        info(f"note: {clamped(args.threads)}", file=sys.stderr)
    if procs is not None and args.threads is None:  # the cores shared among the processes
        threads = max(1, usable_cores() // procs.on_this_machine)
    torch.set_num_threads(threads)
    if device.type == "cpu" and threads > usable_cores():
        info(
            f"note: {threads} threads on {usable_cores()} cores take turns on the same cores "
            "and train slower than one per core",
            file=sys.stderr,
        )
    if procs is not None and not procs.main:
        procs.barrier()  # process 0 downloads or decodes the data first, the others then read it
    data = load_data(spec)  # reported only once the settings are known to fit it
    if procs is not None and procs.main:
        procs.barrier()
    mcfg = ModelConfig(
        model=args.model,
        arch=args.arch,
        latent_dim=args.latent_dim,
        hidden=args.hidden,
        image_shape=data.image_shape,
        likelihood=args.likelihood,
        gaussian_std=args.gaussian_std,
        num_classes=data.num_classes,
    )
    seed_everything(tcfg.seed)
    model = build_model(mcfg)
    _check_space(out, model)
    trainer = Trainer(model, data, tcfg, device=device, processes=procs)
    film = None
    if args.film is not None and main:
        from .film import Film

        film = Film(data.test_x, data.test_y, data.class_names, budget_mb=args.film_memory)
    info(f"data: {_describe(spec, data)}", file=sys.stderr)
    if trainer.feed.streamed:
        info(_streamed(trainer, device, tcfg.data_memory), file=sys.stderr)
    if trainer.bf16 and supports(model) and procs is None:
        info("bf16: the fused step is float32; this run trains with autograd", file=sys.stderr)
    if procs is not None:
        info(
            f"{procs.world} processes ({procs.backend}), each its share of every batch of "
            f"{tcfg.batch_size}"
            + ("; the fused step trains single processes only: autograd with "
               "DistributedDataParallel here" if supports(model) else ""),
            file=sys.stderr,
        )  # fmt: skip
    info(
        f"training a {mcfg.model.upper()} ({mcfg.arch}, latent {mcfg.latent_dim}) on {device}"
        f"{' in bfloat16 (mixed precision)' if trainer.bf16 else ''}"
        f"{f', {describe(threads, args.threads)}' if device.type == 'cpu' else ''} for "
        f"{tcfg.epochs} epoch{'s' if tcfg.epochs != 1 else ''}",
        file=sys.stderr,
    )
    bar = _Progress("train")
    world = procs.world if procs is not None else 1
    last_save = [-math.inf, 0]  # when, and the epoch it holds

    def on_snapshot(s):
        bar.update(
            s.progress,
            f"epoch {s.epoch}/{s.epochs} step {s.step}/{s.total_steps} "
            f"-elbo {s.nelbo:7.2f} {s.images_per_second * world:7.0f} img/s "
            f"ETA {_fmt_time(s.eta)}",
            force=s.test is not None,
        )
        if s.test is not None:
            bar.close() if bar.tty else None
            print(
                f"  epoch {s.test.epoch}: test -ELBO {s.test.test_nelbo:.2f} "
                f"(recon {s.test.test_recon:.2f} + KL {s.test.test_kl:.2f}) nats",
                file=sys.stderr,
            )
            # the last good model, kept as the run goes: a kill loses at most a few seconds
            if not s.final and time.perf_counter() - last_save[0] >= EPOCH_SAVE_S:
                last_save[:] = time.perf_counter(), s.test.epoch
                try:
                    save_trainer(out / "checkpoint.safetensors", trainer, spec, data.class_names)
                except CheckpointError as e:  # the run goes on; its end saves again
                    print(f"note: {e}", file=sys.stderr)

    control = TrainControl()
    diverged = result = None
    # covers the saving too: a signal then waits for it
    with _StopOnSignal(control, patient=procs is not None) as stop:
        try:
            result = trainer.fit(
                control=control, on_snapshot=on_snapshot if main else None, film=film
            )
        except TrainingDiverged as e:  # the model is back at its last good state: keep that
            diverged = e
        except RuntimeError as e:
            if procs is None or _out_of_memory(e):
                raise
            kept = out / "checkpoint.safetensors"
            if main and kept.is_file() and last_save[1]:
                where = f"the last good model, after epoch {last_save[1]}, is in {kept}"
            elif kept.is_file():
                where = f"the last good model process 0 kept is in {kept}"
            else:
                where = "no checkpoint was kept"
            problem = UserError(
                f"another process of the run failed or stopped answering ({_first_line(e)}); "
                f"{where}"
            )
            problem.every_process = True  # each says what it saw: one of them died
            raise problem from None
        # a signal to any process stops them all: its number, agreed, names the stop
        signum = stop.signum if stop.signum is not None else (trainer.stop_code or None)
        signum = signum if signum is None or signum > 1 else None
        stop_name = signal.Signals(signum).name if signum else ""
        if not main:  # process 0 saves the run
            distributed.finish(procs, trainer)
            return 128 + stop.signum if stop.signum is not None else 0
        try:  # process 0 saves while the others wait for it
            if diverged is not None or result.stopped:
                bar.close()
            if signum is not None:
                print(
                    f"{stop_name}{'' if stop.signum else ' (to another process)'}: stopping; "
                    f"saving the model as it stands after step {trainer.step}",
                    file=sys.stderr,
                )
            model.eval()
            last = trainer.history.epochs[-1] if trainer.history.epochs else None
            if last is None or last["step"] != trainer.step:  # stopped inside an epoch
                st = trainer.test_stats()
                test = {"test_nelbo": st.nelbo, "test_recon": st.recon, "test_kl": st.kl}
            else:
                test = {k: last[k] for k in ("test_nelbo", "test_recon", "test_kl")}
            metrics = {
                **test,
                "images_per_second": result.images_per_second * world if result else None,
                "epochs": trainer.epochs_done,
                "steps": trainer.step,
                "seconds": result.seconds if result else None,
                "stopped_by": stop_name or None,
                "device": str(device),
                "world_size": world,
                "streamed": trainer.feed.streamed,
                "backend": procs.backend if procs is not None else None,
                "threads": threads if device.type == "cpu" else None,
                "dataset": spec.describe(),
                "model": mcfg.to_dict(),
                "train": tcfg.to_dict(),
            }
            done: list[str] = []
            try:
                _save_run(out, trainer, spec, data.class_names, metrics, done)
            except (CheckpointError, ExportError, OSError) as e:
                if "checkpoint.safetensors" in done:
                    raise UserError(
                        f"{_reason(e)}; the model is saved in {out / 'checkpoint.safetensors'}, "
                        f"but the run's other files are not (the folder has no {MANIFEST})"
                    ) from None
                where = _save_elsewhere(trainer, spec, data.class_names)
                if where is None:
                    raise UserError(
                        f"{_reason(e)}; the model could not be saved elsewhere either"
                    ) from None
                raise UserError(
                    f"{_reason(e)}; the trained model was saved to {where} instead"
                ) from None
        finally:
            if procs is not None:
                distributed.finish(procs, trainer)
    print(
        f"test -ELBO {metrics['test_nelbo']:.2f} nats; "
        f"{(metrics['images_per_second'] or 0):.0f} images/s on {device}",
        file=sys.stderr,
    )
    print(f"wrote {', '.join(done)} to {out}/", file=sys.stderr)
    film_problem = _write_film(args, film, trainer, mcfg, data) if film is not None else None
    if film_problem:
        raise UserError(f"{film_problem}; the model is saved in {out}/")
    print(out / "checkpoint.safetensors")
    if diverged is not None:
        raise UserError(f"{diverged} What was trained before it is saved in {out}/.")
    warning = final_loss_warning(trainer.history)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if signum is not None:
        print(f"stopped by {stop_name}; {out}/ holds the model as trained so far", file=sys.stderr)
        return 128 + signum  # 130 for Ctrl-C, 143 for SIGTERM
    return 0


def _one_of_many_but_first() -> bool:
    """This is a process of a run on several other than process 0, which alone speaks: the
    others' mistakes are its mistakes too (the same options, the same data)."""
    from .loop.distributed import launched

    return launched() and os.environ.get("RANK", "0") != "0"


EPOCH_SAVE_S = 5.0  # a run's checkpoint is rewritten at epoch ends, at most this often


def _first_line(e: BaseException) -> str:
    """An error's first line, without the source location a library may put before it."""
    lines = str(e).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else type(e).__name__
    return line.split(". ")[0][:160]


def _write_film(args, film, trainer, mcfg, data) -> str | None:
    """Write the run's film (after its model is safe); returns what went wrong, if anything."""
    from .film import FilmError, save_film

    bar = _Progress("film")
    title = f"{mcfg.model.upper()}, latent {mcfg.latent_dim}, {data.name}"
    try:
        path = save_film(
            film, trainer.history, Path(args.film).expanduser(), fps=args.film_fps,
            size=args.film_size, title=title,
            progress=lambda f: bar.update(f, f"{len(film)} frames"),
        )  # fmt: skip
    except FilmError as e:
        bar.close()
        return str(e)
    bar.done()
    size = path.stat().st_size / 1e6
    print(f"wrote the film to {path} ({size:.1f} MB, {len(film)} frames; in memory they took "
          f"{film.describe().split(', ', 1)[1]})", file=sys.stderr)  # fmt: skip
    return None


RUN_FILES = ("checkpoint.safetensors", "history.csv", "samples.png", "manifold.png")


def _save_run(out: Path, trainer, spec, class_names, metrics: dict, done: list[str]) -> None:
    """Write a run's files into ``out`` so that no reader takes a mix of two runs for one.

    The previous run's manifest (``metrics.json``) is removed first, the files are written,
    and a new manifest listing each of them (size, SHA-256) and the checkpoint's step is
    written last: a folder without one, or whose files differ from the ones it lists (see
    :func:`trainer.export.run_problems`), is an unfinished save. ``done`` collects the names
    written so far.
    """
    import torch

    from .checkpoint import save_trainer
    from .export import MANIFEST, file_record, grid_size, save_grid, write_history_csv
    from .latent import sample_prior

    for name in (MANIFEST, "evaluation.json"):  # they describe the previous run's model
        (out / name).unlink(missing_ok=True)
    save_trainer(out / "checkpoint.safetensors", trainer, data_spec=spec, class_names=class_names)
    done.append("checkpoint.safetensors")
    write_history_csv(trainer.history, out / "history.csv")
    done.append("history.csv")
    model = trainer.model.to("cpu")
    _, h, w = model.config.image_shape
    gen = torch.Generator().manual_seed(trainer.config.seed)
    classes = min(model.num_classes, TRAIN_PICTURE_CLASSES)
    if classes < model.num_classes:
        print(
            f"note: the pictures show the first {classes} of {model.num_classes} classes",
            file=sys.stderr,
        )
    if classes:  # one row per class: the same z under every label
        imgs, nrow = _class_rows(model, 10, gen, classes), 10
    else:
        imgs, nrow = sample_prior(model, 64, generator=gen), 8
    scale = _fitting_scale(lambda s: grid_size(len(imgs), (h, w), nrow, 2, s))
    if scale:
        save_grid(imgs, out / "samples.png", nrow=nrow, scale=scale)
        done.append("samples.png")
    if model.latent_dim >= 2:
        side = 10 if classes else 20  # a CVAE gets one grid per class
        scale = _fitting_scale(lambda s: _manifold_size(model, side, None, s, classes))
        if scale:
            _write_manifold(model, out / "manifold.png", None, (0, 1), side, scale, classes)
            done.append("manifold.png")
    for name in ("samples.png", "manifold.png"):
        if name not in done and (name == "samples.png" or model.latent_dim >= 2):
            print(f"note: {name} left out: too large a picture for these images", file=sys.stderr)
    for name in RUN_FILES:  # the previous run's pictures this run has none of
        if name not in done:
            (out / name).unlink(missing_ok=True)
    files = {name: file_record(out / name) for name in done}
    _write_json(out / MANIFEST, {**metrics, "checkpoint_step": trainer.step, "files": files})
    done.append(MANIFEST)


def _fitting_scale(size_at) -> int | None:
    """The training's pictures: magnified twice where that fits, else once, else left out."""
    from .export import ExportError, check_grid_size

    for scale in (2, 1):
        try:
            check_grid_size("", size_at(scale))
            return scale
        except ExportError:
            continue
    return None


def _open(path: str, device="cpu", args=None, outputs: tuple = ()):
    """The checkpoint at ``path``; ``outputs`` ((option, path) pairs) are refused if they
    are among what the command reads (``args``' files and the checkpoint's data)."""
    from .checkpoint import load_checkpoint

    _check_path("--checkpoint", path)
    ck = load_checkpoint(path, device=device)
    for option, out in outputs:
        _not_an_input(option, out, _inputs(args, ck))
    return ck


def _names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def _evaluation_out(args, ck) -> Path:
    """Where ``evaluate`` writes its results; refused before anything is computed if it
    cannot be written. A folder gets ``evaluation.json`` in it."""
    if args.out is None:
        from .examples import is_example

        out = Path(ck.path).with_name("evaluation.json")
        if is_example(ck.path):  # the bundled examples stay as shipped
            out = Path.cwd() / f"evaluation-{Path(ck.path).parent.name}.json"
            print(f"note: the bundled examples are read-only; results go to {out}",
                  file=sys.stderr)  # fmt: skip
        _check_writable_file(out, "results", "; pass --out FILE to write them elsewhere")
        _not_an_input("results", out, _inputs(args, ck))
        return out
    if not args.out.strip():
        raise UserError("--out is empty; name a JSON file, or a folder for evaluation.json")
    _check_path("--out", args.out)
    out = Path(args.out).expanduser()
    if out.is_dir() or args.out.endswith(("/", os.sep)):  # a folder, or one to be made
        out = out / "evaluation.json"
    _check_writable_file(out, "--out")
    _not_an_input("--out", out, _inputs(args, ck))
    return out


def _check_data_fits(ck, spec, data) -> None:
    """Refuse data a checkpoint's model cannot take, naming both sides."""
    mc = ck.model_config
    shape = lambda t: "x".join(map(str, t))  # noqa: E731
    if data.image_shape != mc.image_shape:
        raise UserError(
            f"{spec.describe()} has images of {shape(data.image_shape)} but the model in "
            f"{ck.path} takes {shape(mc.image_shape)}"
        )
    if not mc.conditional:
        return
    ours = f"the model in {ck.path} is conditioned on {mc.num_classes} classes"
    if ck.class_names:
        ours += f" ({_names(ck.class_names)})"
    if not data.num_classes:
        raise UserError(f"{ours}, but {spec.describe()} has no labels")
    if data.num_classes != mc.num_classes:
        raise UserError(
            f"{ours}, but {spec.describe()} has {data.num_classes} ({_names(data.class_names)}); "
            "evaluate it on data with the same classes"
        )
    if ck.class_names and list(ck.class_names) != list(data.class_names):
        print(
            f"note: the data's classes ({_names(data.class_names)}) are not named as the "
            f"model's ({_names(ck.class_names)}); label k is taken as the model's class k",
            file=sys.stderr,
        )


def cmd_evaluate(args) -> int:

    from .data import load_data
    from .evaluate import evaluate_model
    from .loop import resolve_device, seed_everything

    for option in ("images", "labels", "root"):
        _check_path(f"--{option}", getattr(args, option))
    device = resolve_device(args.device)
    ck = _open(args.checkpoint, device)
    out = _evaluation_out(args, ck)
    if ck.data_spec is None and args.dataset is None:
        raise UserError(f"{args.checkpoint}: records no dataset; pass --dataset and its files")
    if args.dataset is None:  # the checkpoint's source: the options must be ones it reads
        _data_options_apply(args, ck.data_spec.source,
                            f"the checkpoint's data ({ck.data_spec.describe()})")  # fmt: skip
    _idx_files_together(args, ck)
    spec = _spec_from_args(args, base=ck.data_spec)
    data = load_data(spec)
    model = ck.model
    _check_data_fits(ck, spec, data)
    print(f"data: {_describe(spec, data)}", file=sys.stderr)
    x, y = data.test_x, data.test_y if model.num_classes else None
    if args.limit:
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    seed_everything(args.seed)
    bar = _Progress("evaluate")
    res = {
        "checkpoint": str(ck.path),
        "checkpoint_step": ck.step,
        "dataset": spec.describe(),
        **evaluate_model(
            model, x, y, iw_samples=args.iw_samples, prior_samples=args.prior_samples,
            seed=args.seed, progress=lambda f, what: bar.update(f, what),
        ),
    }  # fmt: skip
    bar.done()
    if not model.is_variational:
        print(
            "note: a plain autoencoder has no ELBO or log p(x); reporting its reconstruction "
            "error (the KL column is zero)",
            file=sys.stderr,
        )
    _write_json(out, res)
    w = max(map(len, res))
    for k, v in res.items():
        if k != "kl_per_dim":
            print(f"{k:<{w}}  {v:.3f}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    import torch

    from .export import check_grid_size, grid_size, save_grid
    from .latent import sample_prior

    out = _image_out(args.out, "samples.png")
    ck = _open(args.checkpoint, args=args, outputs=(("--out", out),))
    mc = ck.model_config
    every_class = mc.conditional and args.cls is None  # one row per class, shared z
    y = None if every_class else _class_index(args.cls, ck.class_names, mc.conditional)
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
        imgs = _class_rows(ck.model, args.n, gen)
    else:
        imgs = sample_prior(ck.model, args.n, y, mode=args.mode, generator=gen)
    print(save_grid(imgs, out, nrow=nrow, scale=args.scale))
    return 0


def _class_rows(model, n: int, generator, classes: int | None = None):
    """The same n prior latents decoded under each of the first ``classes`` classes (default:
    all): (classes * n, C, H, W)."""
    import torch

    from .latent import decode_batch

    k = classes or model.num_classes
    z = torch.randn(n, model.latent_dim, generator=generator).repeat(k, 1)
    return decode_batch(model, z, torch.arange(k).repeat_interleave(n))


def cmd_manifold(args) -> int:
    out = _image_out(args.out, "manifold.png")
    ck = _open(args.checkpoint, args=args, outputs=(("--out", out),))
    d = ck.model_config.latent_dim
    if d < 2:
        raise UserError(f"a manifold needs 2 or more latent dimensions; this model has {d}")
    dx, dy = args.dims
    if not (0 <= dx < d and 0 <= dy < d) or dx == dy:
        raise UserError(f"--dims must be two different dimensions in 0..{d - 1}, got {dx} {dy}")
    y = None
    if args.cls is not None or not ck.model_config.conditional:
        y = _class_index(args.cls, ck.class_names, ck.model_config.conditional)
    plane = _principal_plane_of(ck) if args.plane == "pca" else None
    print(_write_manifold(ck.model, out, y, (dx, dy), n=args.n, scale=args.scale, plane=plane))
    return 0


def _own_test_data(ck, what: str):
    """The checkpoint's own data (for its test images), or one line saying why ``what``
    cannot have it."""
    from .data import DataError, load_data

    if ck.data_spec is None:
        raise UserError(f"{ck.path}: names no data; {what} its test images")
    try:
        data = load_data(ck.data_spec)
    except DataError as e:
        raise UserError(f"{what} the checkpoint's test images: {e}") from None
    _check_data_fits(ck, ck.data_spec, data)
    return data


def _principal_plane_of(ck):
    """The principal plane of the checkpoint's encoded test images (the window's map set)."""
    from .evaluate import posterior_means
    from .latent import map_subset, principal_plane

    data = _own_test_data(ck, "--plane pca needs")
    idx = map_subset(len(data.test_x))
    y = data.test_y[idx] if ck.model.num_classes else None
    plane = principal_plane(posterior_means(ck.model, data.test_x[idx], y).numpy())
    print(
        f"note: the principal plane of {len(idx):,} encoded test images of "
        f"{ck.data_spec.describe()}: {plane.names[0]}, {plane.names[1]}",
        file=sys.stderr,
    )
    return plane


def _kl_of(ck, n: int):
    """KL per dimension on up to ``n`` of the checkpoint's own test images, and a note on
    where they came from (None and the reason if its data cannot be loaded)."""
    from .data import DataError, load_data
    from .evaluate import elbo_stats

    if n == 0 or not ck.model.is_variational:
        why = "--kl-images 0" if n == 0 else "a plain autoencoder has no KL"
        return None, f"rows in index order ({why})"
    if ck.data_spec is None:
        return None, "rows in index order (the checkpoint names no data to measure KL on)"
    try:
        data = load_data(ck.data_spec)
        _check_data_fits(ck, ck.data_spec, data)
    except (DataError, UserError) as e:
        return None, f"rows in index order (its data could not be loaded: {e})"
    x = data.test_x[:n]
    y = data.test_y[:n] if ck.model.num_classes else None
    kl = elbo_stats(ck.model, x, y).kl_per_dim
    return kl, f"rows ordered by KL on {len(x):,} test images of {ck.data_spec.describe()}"


def cmd_traverse(args) -> int:
    import torch

    from .export import check_grid_size, grid_image, grid_size, save_gif, save_labelled_rows
    from .latent import traversal

    out = _image_out(args.out, "traverse.png")
    gif = out.with_suffix(".gif") if args.gif else None
    if gif is not None:
        _check_writable_file(gif, "--gif")
    ck = _open(args.checkpoint, args=args, outputs=(("--out", out), ("--gif", gif or out)))
    mc = ck.model_config
    d = mc.latent_dim
    check_grid_size(out, grid_size(d * args.columns, mc.image_shape[1:], args.columns, 2,
                                   args.scale))  # fmt: skip
    base = torch.zeros(d)
    if args.z is not None:
        if len(args.z) != d:
            raise UserError(f"--z gives {len(args.z)} values; the model's latent has {d}")
        base = torch.tensor(args.z, dtype=torch.float32)
    y = _class_index(args.cls, ck.class_names, mc.conditional) if mc.conditional else None
    if mc.conditional and y is None:
        y = 0
    kl, note = _kl_of(ck, args.kl_images)
    print(f"note: {note}", file=sys.stderr)
    t = traversal(ck.model, base, y, args.columns, kl)
    labels = [
        f"z{dim}" + ("" if t.kl is None else f"  {t.kl[r]:.2f} nats")
        + ("  collapsed" if t.collapsed[r] else "")
        for r, dim in enumerate(t.dims)
    ]  # fmt: skip
    save_labelled_rows(t.images, out, t.columns, labels, t.collapsed, scale=args.scale)
    print(out)
    if gif is not None:  # frame c: every dimension at its c-th value, side by side
        frames = t.images.reshape(d, t.columns, *t.images.shape[1:]).transpose(0, 1)
        side = max(1, math.ceil(math.sqrt(d)))
        save_gif(torch.stack([grid_image(f, nrow=side) for f in frames]), gif, fps=6,
                 scale=max(1, args.scale))  # fmt: skip
        print(gif)
    w = max(len(s) for s in labels)
    for r, text in enumerate(labels):
        print(f"  row {r:>3}  {text:<{w}}", file=sys.stderr)
    return 0


def _manifold_size(model, n: int, y, scale: int, classes: int | None = None) -> tuple[int, int]:
    """(width, height) of :func:`_write_manifold`'s image, before anything is decoded."""
    from .export import grid_size

    _, h, w = model.config.image_shape
    if model.num_classes and y is None:
        k = classes or model.num_classes
        gw, gh = grid_size(n * n, (h, w), n, 0)
        return grid_size(k, (gh, gw), min(k, 5), 6, scale)
    return grid_size(n * n, (h, w), n, 0, scale)


def _write_manifold(model, path, y, dims, n: int, scale: int, classes: int | None = None,
                    plane=None):  # fmt: skip
    """The Figure 4 grid on two dimensions ``dims`` (or on ``plane``); for a conditional
    model with no class chosen, one grid for each of the first ``classes`` (default: all)."""
    import torch

    from .export import check_grid_size, save_grid, save_mosaic
    from .latent import decode_batch, dims_plane

    check_grid_size(path, _manifold_size(model, n, y, scale, classes))
    plane = plane or dims_plane(torch.zeros(model.latent_dim), dims)
    z = plane.grid(n)
    if model.num_classes and y is None:
        k = classes or model.num_classes
        groups = [decode_batch(model, z, c) for c in range(k)]
        return save_mosaic(groups, path, nrow=n, ncol_groups=min(k, 5), scale=scale)
    return save_grid(decode_batch(model, z, y), path, nrow=n, padding=0, scale=scale)


def cmd_arithmetic(args) -> int:
    import torch

    from .export import save_grid
    from .latent import arithmetic

    out = _image_out(args.out, "arithmetic.png")
    ck = _open(args.checkpoint, args=args, outputs=(("--out", out),))
    data = _own_test_data(ck, "arithmetic needs")
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


def cmd_posterior(args) -> int:
    import torch

    from .evaluate import posterior_means
    from .export import save_picture
    from .latent import dims_plane, map_subset, principal_plane
    from .posterior import means_histogram, picture, posterior_vs_prior

    out = _image_out(args.out, "posterior.png")
    ck = _open(args.checkpoint, args=args, outputs=(("--out", out),))
    d = ck.model_config.latent_dim
    dx, dy = args.dims
    if not (0 <= dx < d and 0 <= dy < d) or (dx == dy and d > 1):
        raise UserError(f"--dims must be two different dimensions in 0..{d - 1}, got {dx} {dy}")
    data = _own_test_data(ck, "the posterior needs")
    idx = map_subset(len(data.test_x))
    x, y = data.test_x[idx], data.test_y[idx] if ck.model.num_classes else None
    if args.plane == "pca":
        plane = principal_plane(posterior_means(ck.model, x, y).numpy())
    else:
        plane = dims_plane(torch.zeros(d), (dx, dy))
    v = posterior_vs_prior(ck.model, x, y, plane)
    print(save_picture(picture(v), out, scale=args.scale))
    print(f"plane: {plane.names[0]} (across), {plane.names[1]} (up), {v.extent:g} either way")
    print(f"hole mass: {v.hole_mass:.4f} of the prior's probability lies where the test set's "
          f"aggregate posterior leaves it empty")  # fmt: skip
    print(f"outside the picture: {v.outside:.4f} of {v.samples:,} samples of q(z)")
    print("dimension  mean of E[z|x]  std of E[z|x]  share beyond +-4")
    for k in range(d):
        _c, _dens, beyond = means_histogram(v.means, k)
        m = v.means[:, k]
        print(f"z{k:<9}  {m.mean():+14.3f}  {m.std():13.3f}  {beyond:16.3f}")
    return 0


def cmd_runs(args) -> int:
    from .files import printable
    from .runs import HEADERS, Project, RunsError, differing, table

    project = Project(args.project)
    for path in args.add or []:
        _check_path("--add", path)
        p = Path(path)
        try:
            rec = project.add_folder(p) if p.is_dir() else project.add_file(p)
        except RunsError as e:
            raise UserError(str(e)) from None
        for note in project.notes:  # a metrics file that could not be used
            print(f"note: {note}", file=sys.stderr)
        print(f"added {printable(rec.name)} ({rec.id})", file=sys.stderr)
    runs = project.runs()
    for problem in project.problems:
        print(f"note: {problem}", file=sys.stderr)
    if not runs:
        print(f"no runs in {project.folder} yet", file=sys.stderr)
        return 0
    rows = [HEADERS, *table(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    diff = differing(runs)
    if diff:
        print(printable("settings that differ: " + "; ".join(
            f"{k} " + " / ".join(map(str, v)) for k, v in diff.items())))  # fmt: skip
    return 0


def cmd_examples(args) -> int:
    from . import examples as ex

    root = Path(args.into) if args.into else None
    if args.rebuild:
        if root is not None:
            root, _ = _prepare_out_folder(args.into)
        only = args.only
        for name in only or []:
            ex.recipe(name)  # an unknown name: refused before anything is trained
        bar = _Progress("examples")
        t0 = time.perf_counter()
        rows = ex.rebuild(
            only=only, root=root, mnist=args.mnist, epochs=args.epochs,
            iw_samples=args.iw_samples or 1000, progress=bar.update,
            log=lambda text: (bar.close(), print(text, file=sys.stderr)),
        )  # fmt: skip
        bar.done()
        print(
            f"rebuilt {len(rows)} example{'s' if len(rows) != 1 else ''} in "
            f"{_fmt_time(time.perf_counter() - t0)}; the table is in "
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


def cmd_figures(args) -> int:
    from . import figures

    if args.out.strip():  # the figures' folder is not the examples' (or MNIST's) own
        _not_an_input("--out", Path(args.out).expanduser(), _inputs(args), folder=True)
    out, _ = _prepare_out_folder(args.out)
    bar = _Progress("figures")
    written = figures.write_all(
        out, examples_root=Path(args.examples) if args.examples else None, mnist=args.mnist,
        progress=bar.update, log=lambda text: (bar.close(), print(text, file=sys.stderr)),
    )  # fmt: skip
    bar.done()
    print(figures.kl_table_markdown())
    print(f"wrote {', '.join(p.name for p in written)} to {out}/", file=sys.stderr)
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "sample": cmd_sample,
    "manifold": cmd_manifold,
    "traverse": cmd_traverse,
    "posterior": cmd_posterior,
    "arithmetic": cmd_arithmetic,
    "runs": cmd_runs,
    "examples": cmd_examples,
    "figures": cmd_figures,
}

_LESS = {  # what to ask for less of when memory runs out
    "train": "a smaller --batch-size or --hidden",
    "evaluate": "a smaller --limit, --iw-samples or --prior-samples",
    "sample": "a smaller --n or --scale",
    "manifold": "a smaller --n or --scale",
    "traverse": "a smaller --columns or --scale",
    "posterior": "a smaller --scale",
    "arithmetic": "a smaller --scale",
    "runs": "fewer runs",
    "examples": "a smaller --iw-samples",
    "figures": "closing other programs",
}


def _out_of_memory(e: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(e, oom):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def main(argv: list[str] | None = None) -> int:
    from .loop.threads import tame_environment

    notes = tame_environment()  # before torch is imported (the parser imports it)
    for note in notes if os.environ.get("RANK", "0") in ("", "0") else ():  # process 0 speaks
        print(f"note: {note}", file=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .loop.distributed import DistributedError
    from .examples import ExampleError
    from .export import ExportError
    from .loop import TrainingDiverged

    known = (UserError, ConfigError, DataError, CheckpointError, ExportError, ExampleError,
             TrainingDiverged, DistributedError)  # fmt: skip
    try:
        _check_applicable(args)
        return COMMANDS[args.command](args)
    except known as e:
        if not _one_of_many_but_first() or getattr(e, "every_process", False):
            print(f"latent-train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a file the user named could not be written
        print(f"latent-train: error: {_reason(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and not _out_of_memory(e):
            raise
        print(
            f"latent-train: error: out of memory during {args.command}; try {_LESS[args.command]}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        if not _one_of_many_but_first():
            print(f"latent-train: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
