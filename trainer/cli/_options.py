"""The argument parser both command lines share: a mistake is one line on stderr and exit
code 2 (no usage dump), an option is only ever its whole name (``--epoch`` is a mistake,
not ``--epochs``), and a misspelt option is answered with the nearest one. Then the option
types and groups of ``latent-train``'s commands: every number is range-checked as it is
parsed, so that a bad one costs one line before any data is loaded (the ranges are those of
TrainConfig, ModelConfig and DataSpec)."""

from __future__ import annotations

import argparse
import difflib
import math
import re
from pathlib import Path

from ..text import shorten

EXIT_USAGE = 2
DEFAULT_SOURCE = "mnist"  # what `train` trains on without --dataset
NEGATIVE_NUMBER = re.compile(r"^-(\.?[0-9]|inf|infinity|nan)", re.IGNORECASE)


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the behaviour above."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # a word that starts like a negative number is an option's value, not an option:
        # "--z 0 -inf" and "--lr -1e-3" reach the option's own check, which names it
        # (argparse took "-inf" and "-1e-3" for unknown options)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str):
        # the program's name leads, as for every command (a command's prog is "latent-train
        # train"); the hint names the command's own help
        name = self.prog.split()[0]
        hint = f"{self.nearest(message)} (see {self.prog} --help)"
        self.exit(EXIT_USAGE, f"{name}: error: {message}{hint}\n")

    def nearest(self, message: str) -> str:
        """The hint "; did you mean --epochs?" for an unknown option near a known one."""
        m = re.match(r"unrecognized arguments: (--?[\w-]+)", message)
        if m is None:
            return ""
        known = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        for sub in self._subparsers._group_actions if self._subparsers else []:
            for p in getattr(sub, "choices", {}).values():  # the commands' own options
                known += [s for a in p._actions for s in a.option_strings if s.startswith("--")]
        given = m.group(1)
        # the beginning of an option first (--ep: --epochs, not --help), then a misspelling
        close = sorted({k for k in known if k.startswith(given)})[:3] or (
            difflib.get_close_matches(given, known, n=1, cutoff=0.75)
        )
        return f"; did you mean {' or '.join(close)}?" if close else ""


# -- which data options each source reads ---------------------------------------------------
# The one table of it, for ``latent-train`` and ``latent-explorer`` alike: an option given
# with a source that does not read it would be ignored, so it is refused instead. "example"
# is the bundled test images an example checkpoint names (never a choice of --dataset).
DATA_OPTIONS: dict[str, tuple[str, ...]] = {
    "mnist": (),
    "fashion-mnist": (),
    "kmnist": (),
    "shapes": ("--image-size", "--shapes-count", "--test-fraction"),
    "idx": ("--images", "--labels", "--test-fraction"),
    "folder": ("--root", "--image-size", "--background", "--test-fraction"),
    "npz": ("--images", "--labels", "--test-fraction"),
    "celeba": ("--root", "--image-size"),
    "example": (),
}
_WHAT_IT_DOES = {
    "--images": "it names an images file",
    "--labels": "it names a labels file",
    "--root": "it names a folder of images",
    "--image-size": "it sets the side of the images a source draws or resizes",
    "--shapes-count": "it sets how many shapes are drawn",
    "--background": "it sets what an image folder's transparent pixels are put on",
    "--test-fraction": "it sets the held-out share of a source without a test set of its own",
}


def given_data_options(args) -> list[str]:
    """The data options (other than ``--dataset``) given on the command line: those whose
    value is not None (every one of them defaults to None)."""
    return [o for o in _WHAT_IT_DOES if getattr(args, o[2:].replace("-", "_"), None) is not None]


def data_option_problem(source: str | None, given: list[str], named: str) -> str | None:
    """The line refusing the first of ``given`` that ``source`` does not read (None: it reads
    them all; a ``source`` of None reads none). ``named`` names the source in that line:
    "--dataset shapes", "the checkpoint's data (the built-in shapes)", …"""
    takes = DATA_OPTIONS.get(source, ()) if source is not None else ()
    for option in given:
        if option not in takes:
            *others, last = [s for s, options in DATA_OPTIONS.items() if option in options]
            which = f"{', '.join(others)} or {last}" if others else last
            why = f"{_WHAT_IT_DOES[option]} (--dataset {which})"
            return f"{option} does not apply to {named}: {why}"
    return None


# -- the option types and groups of latent-train's commands ---------------------------------
def int_in(lo: int, hi: int | None = None, terse: bool = False):
    """An argparse type: a whole number from ``lo`` to ``hi`` (no upper limit if None).
    ``terse``: ``latent-explorer``'s wording ("'x' is not a whole number", "must be 1 to 9,
    not 12"), else ``latent-train``'s ("expected a whole number from 1 to 9, got 'x'",
    "must be 1 to 9, got 12")."""
    span = f"{lo} to {hi}" if hi is not None else f"at least {lo}"

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{shorten(s)!r} is not a whole number"
                if terse
                else f"expected a whole number {'from ' if hi is not None else ''}{span}, "
                f"got {shorten(s)!r}"
            ) from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(
                f"must be {span}, not {v}" if terse else f"must be {span}, got {shorten(s)}"
            )
        return v

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def float_in(lo: float, hi: float, open_lo: bool = False, open_hi: bool = False):
    """An argparse type: a finite number in [lo, hi], either end open where asked."""
    g = lambda v: f"{v:,.0f}".replace(",", "") if float(v).is_integer() else f"{v:g}"  # noqa: E731
    span = f"{'(' if open_lo else '['}{g(lo)}, {g(hi)}{')' if open_hi else ']'}"

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number in {span}, got {shorten(s)!r}"
            ) from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {shorten(s)}")
        if not ((lo < v if open_lo else lo <= v) and (v < hi if open_hi else v <= hi)):
            raise argparse.ArgumentTypeError(f"must be in {span}, got {shorten(s)}")
        return v

    return parse


def add_data_args(p: argparse.ArgumentParser, required: bool) -> None:
    from ..data.spec import CELEBA_SIZE, SOURCES

    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        choices=SOURCES,
        default=None,  # None: not given (train: DEFAULT_SOURCE; evaluate: the checkpoint's)
        help="data source (default: %s); an option the source does not read is refused"
        % (
            DEFAULT_SOURCE
            if required
            else "the one the checkpoint was trained on; with --model it must be given"
        ),
    )
    g.add_argument(
        "--images",
        help="IDX images file (--dataset idx; .gz is fine), or NumPy file (--dataset npz: "
        ".npz with arrays x and y, or x_train, y_train, x_test, y_test; or .npy images)",
    )
    g.add_argument("--labels", help="IDX labels file (idx), or .npy labels (npz); optional")
    g.add_argument(
        "--root",
        help="image folder with one sub-folder per class (--dataset folder), or the "
        "extracted CelebA folder (--dataset celeba; see the README)",
    )
    g.add_argument(
        "--image-size",
        type=int_in(8, 256),
        default=None,
        help="side in pixels for folder and shapes images, 8-256 (default: 28); "
        f"CelebA's faces: 32, 64 or 128 (default: {CELEBA_SIZE})",
    )
    g.add_argument(
        "--test-fraction",
        type=float_in(0, 1, open_lo=True, open_hi=True),
        default=None,
        help="held-out share for sources without a test split (default: 0.2)",
    )
    g.add_argument(
        "--shapes-count",
        type=int_in(10, 1_000_000),
        default=None,
        help="number of images in the built-in shapes set (default: 6000)",
    )
    g.add_argument(
        "--background",
        choices=("white", "black"),
        default=None,
        help="folder images: what their transparent pixels are put on (default: white)",
    )


def spec_from_args(args, base=None):
    from ..data.spec import CELEBA_SIZE, DataSpec

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
    source = given.get("source", None if base is None else base.source)
    if source == "celeba" and "image_size" not in given:
        if base is None or base.source != "celeba":
            given["image_size"] = CELEBA_SIZE  # (not the 28 of the MNIST-sized sources)
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


IMAGE_FILE = "image file (.png, .jpg, ...)"  # the help of an --out that names a picture


def add_seed(p) -> None:
    """``--seed``, as every command that draws random numbers takes it."""
    from ..config import MAX_SEED

    p.add_argument(
        "--seed", type=int_in(0, MAX_SEED), default=0, help=f"0 to {MAX_SEED} (default: 0)"
    )


def add_scale(p, default: int) -> None:
    """``--scale``, the pixel magnification of a command's picture."""
    p.add_argument(
        "--scale",
        type=int_in(1, 16),
        default=default,
        help=f"pixel magnification, 1-16 (default: {default})",
    )


# -- the model a view command shows: a checkpoint, or the user's own ------------------------
OWN_OUTPUTS = ("logits", "probs", "mean")


def add_model_args(p, data: bool = True) -> None:
    """``--checkpoint`` or ``--model FILE.py:FUNCTION | FOLDER`` (with ``--weights`` and
    ``--output``), as every view command takes them; ``data``: also the data options, which
    give the images a user's model is shown on (a checkpoint names its own)."""
    g = p.add_argument_group(
        "model", "a checkpoint, or your own model (--model), explored on the data options' images"
    )
    one = g.add_mutually_exclusive_group(required=True)
    one.add_argument("--checkpoint", help="a checkpoint (a bundled example's too)")
    one.add_argument(
        "--model",
        metavar="FILE.py:FUNCTION|FOLDER",
        help="your own model instead of a checkpoint: FILE.py:FUNCTION RUNS THAT FILE'S CODE "
        "(name only one you trust) and FUNCTION() returns the model, with encode(x) giving the "
        "mean or (mu, logvar) and decode(z) the images; or a folder holding an ONNX pair "
        "(latent-train export-model), which runs no code. Needs --dataset for its images",
    )
    g.add_argument(
        "--weights",
        default=None,
        help="your model's weights (with --model FILE.py:FUNCTION): safetensors, or a state "
        "dict torch.load reads with weights_only=True",
    )
    g.add_argument(
        "--output",
        choices=OWN_OUTPUTS,
        default=None,
        help="what your model's decode returns (with --model FILE.py:FUNCTION): logits "
        "(default), probs, or mean (a Gaussian mean, which has no likelihood to evaluate)",
    )
    if data:
        add_data_args(p, required=False)
