"""What ``latent-train`` refuses before it works, each as one line (a :class:`UserError`):
paths that cannot be looked at, outputs that are no file to write or would replace an input,
an option that would be ignored, a class or data a checkpoint's model cannot take."""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ._options import DEFAULT_SOURCE, data_option_problem, given_data_options


class UserError(Exception):
    pass


# -- paths the user names -------------------------------------------------------------------
def check_path(option: str, value: str | None) -> None:
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


def file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists but is not a folder, if any."""
    for p in (path, *path.parents):
        if p.is_dir():
            return None
        if p.exists():
            return p
    return None


def probe(folder: Path) -> None:
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


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only ever removes an empty folder
    except OSError:
        pass


def prepare_out_folder(arg: str) -> tuple[Path, bool]:
    """Make the training's output folder and prove it writable before any data is loaded, so
    that a run that could not save is refused now rather than after training.

    Returns (folder, whether this call created it)."""
    if not arg.strip():
        raise UserError("--out is empty; name a folder for the run's files")
    check_path("--out", arg)
    out = Path(arg).expanduser()
    blocker = file_in_the_way(out)
    if blocker == out:
        raise UserError(f"--out {out}: exists and is not a folder")
    if blocker is not None:
        raise UserError(f"--out {out}: {blocker} is a file, not a folder")
    made = not out.is_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe(out)
    except OSError as e:
        if made:
            remove_if_empty(out)
        raise UserError(
            f"--out {out}: cannot write there ({e.strerror or e}), so nothing was trained"
        ) from None
    return out, made


def check_output(option: str, path: Path) -> None:
    """Refuse an output that is not a file to write: a device (``/dev/null``), a named pipe,
    a socket, a folder, or a symbolic link to nothing (a link to a regular file is written
    through: its target gets the new contents)."""
    from ..files import RefusedOutput, output_target

    try:
        output_target(path)
    except RefusedOutput as e:
        raise UserError(f"{option} {path}: {e.strerror}; nothing was written") from None
    except (OSError, ValueError):
        pass  # a name that cannot be looked at: the writer says why


_READS = ("checkpoint", "images", "labels", "root", "examples", "mnist")


def command_inputs(args, ck=None) -> list[tuple[str, Path]]:
    """The files and folders a command reads: (the option that names one, its path); with
    ``ck``, also the data files its checkpoint records."""
    found = [(f"--{o}", Path(v).expanduser()) for o in _READS if (v := getattr(args, o, None))]
    found += own_model_files(args)
    spec = getattr(ck, "data_spec", None)
    for o in ("images", "labels", "root"):
        if spec is not None and getattr(spec, o, None):
            found.append((f"the checkpoint's --{o}", Path(getattr(spec, o))))
    return found


def not_an_input(
    option: str, path: Path, inputs: list[tuple[str, Path]], folder: bool = False
) -> None:
    """Refuse an output that is one of the command's inputs (the same file, through any
    link), a file it would replace inside a folder the command reads, or (``folder``) an
    output folder inside one (its files would join a folder of images)."""
    from ..files import inside, same_file

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


def check_writable_file(path: Path, option: str, hint: str = "") -> None:
    """Refuse an output file that could not be written, or is no file to write, before
    any work is done for it."""
    check_output(option, path)
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise UserError(f"{option} {path}: {blocker} is a file, not a folder")
    folder = next((p for p in path.parents if p.is_dir()), Path("."))  # where it would be made
    try:
        probe(folder)
    except OSError as e:
        raise UserError(f"{option} {path}: cannot be written ({e.strerror or e}){hint}") from None


def output_file(arg: str, option: str, kinds: str, kind: str, example: str, check_format) -> Path:
    """The file ``option`` names, checked before any work is done for it: not empty, a usable
    path, no folder, a format ``check_format(path)`` accepts, writable. ``kinds`` names the
    files it takes when it is empty ("a .npz or .csv file"), ``kind`` when it is a folder,
    with ``example`` inside it."""
    if not arg.strip():
        raise UserError(f"{option} is empty; name {kinds}")
    check_path(option, arg)
    out = Path(arg).expanduser()
    if out.is_dir():
        raise UserError(f"{option} {out}: is a folder; name {kind}, e.g. {out / example}")
    check_format(out)
    check_writable_file(out, option)
    return out


def image_out(arg: str, example: str) -> Path:
    """The image file of ``sample`` and ``manifold``, checked before anything is decoded."""
    from ..export import image_format

    return output_file(
        arg, "--out", "an image file (.png, .jpg, ...)", "an image file", example, image_format
    )


def data_options_apply(args, source: str, named: str) -> None:
    """Refuse a data option ``source`` does not read (see
    :data:`trainer.cli._options.DATA_OPTIONS`): it would be ignored."""
    problem = data_option_problem(source, given_data_options(args), named)
    if problem:
        raise UserError(problem)


def check_applicable(args) -> None:
    """Right after parsing, refuse an option that would be ignored: a data option the source
    does not read (`train`, whose default is DEFAULT_SOURCE; `evaluate` with --dataset;
    `evaluate` without it is checked against its checkpoint's data once that is read), KL
    options for a plain autoencoder, --dims with the principal plane. (Then
    :func:`trainer.cli.main` fills in the defaults of the options that were left out.)"""
    c = args.command
    if c == "train":
        named = f"--dataset {args.dataset or f'{DEFAULT_SOURCE} (the default)'}"
        data_options_apply(args, args.dataset or DEFAULT_SOURCE, named)
        for option in ("beta", "warmup_epochs"):
            if args.model == "ae" and getattr(args, option) is not None:
                raise UserError(
                    f"--{option.replace('_', '-')} does not apply to --model ae: "
                    "a plain autoencoder has no KL term to weigh"
                )
    elif c in ("evaluate", "map") and args.dataset is not None:
        data_options_apply(args, args.dataset, f"--dataset {args.dataset}")
    elif c in ("manifold", "posterior") and args.plane == "pca" and args.dims is not None:
        raise UserError(
            "--dims does not apply to --plane pca: its axes are the first two "
            "principal components of the encoded test images"
        )


def class_index(cls: str | None, class_names: list[str], conditional: bool) -> int | None:
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


def open_checkpoint(path: str, device="cpu", args=None, outputs: tuple = ()):
    """The checkpoint at ``path``; ``outputs`` ((option, path) pairs) are refused if they
    are among what the command reads (``args``' files and the checkpoint's data)."""
    from ..checkpoint import load_checkpoint

    check_path("--checkpoint", path)
    ck = load_checkpoint(path, device=device)
    for option, out in outputs:
        not_an_input(option, out, command_inputs(args, ck))
    return ck


# -- the user's own model in place of a checkpoint -------------------------------------------
@dataclass
class OwnModel:
    """A user's model (``--model``) and the images the data options name, in the shape of a
    checkpoint for the view commands: ``model``, ``model_config`` (its
    :class:`~trainer.foreign.ForeignConfig`), ``data_spec``, ``class_names``, ``path`` (where
    it came from, for messages) and, loaded once, ``data``."""

    model: object
    data_spec: object
    data: object
    path: str
    class_names: list[str] = field(default_factory=list)
    step: int | None = None  # the optimiser steps it had: not known

    @property
    def model_config(self):
        return self.model.config


def own_model_files(args) -> list[tuple[str, Path]]:
    """The files a ``--model`` names: its Python file or its ONNX pair's folder, and
    ``--weights``."""
    spec = getattr(args, "model", None)
    if not isinstance(spec, str) or getattr(args, "command", None) == "train":
        return []
    found = []
    if Path(spec).expanduser().is_dir():
        found.append(("--model", Path(spec).expanduser()))
    elif ":" in spec:
        found.append(("--model", Path(spec.rpartition(":")[0]).expanduser()))
    if getattr(args, "weights", None):
        found.append(("--weights", Path(args.weights).expanduser()))
    return found


# the view commands that read the data options with a checkpoint too (its images in place of
# the ones it names)
READS_DATA = ("evaluate", "map", "neighbours", "direction")


def open_model_source(args, device: str = "cpu", outputs: tuple = ()):
    """What a view command shows: the checkpoint ``--checkpoint`` names (see
    :func:`open_checkpoint`; the data options are not its to take, except where the command
    reads them itself, as ``evaluate`` does), or the user's own model ``--model`` names (an
    :class:`OwnModel`: its file run or its ONNX pair read, on the images of ``--dataset``,
    checked on a first batch). ``outputs`` are refused if they are among what it reads."""
    own = getattr(args, "model", None)
    reads_data = args.command in READS_DATA
    if own is None:
        for option in ("--weights", "--output"):
            if getattr(args, option[2:], None) is not None:
                raise UserError(f"{option} goes with --model (your own model), not --checkpoint")
        given = given_data_options(args) + (["--dataset"] if args.dataset else [])
        if given and not reads_data:
            raise UserError(
                f"{given[0]} does not apply to --checkpoint: a checkpoint's views use the data "
                "it names (the data options give the images of --model, your own model)"
            )
        return open_checkpoint(args.checkpoint, device, args, outputs)
    return open_own_model(args, outputs)


def open_own_model(args, outputs: tuple = ()) -> OwnModel:
    """The user's model ``--model`` names on the images the data options name; each
    mistake one line."""
    from ..data import load_data
    from ..files import printable
    from ..foreign import ForeignModelError
    from ..user_code import foreign_model, open_model
    from ._options import spec_from_args

    spec = args.model
    if not args.dataset:
        raise UserError(
            f"--model {printable(spec)}: name the images to explore it on with --dataset "
            "(and its files: --images, --root, ...)"
        )
    if getattr(args, "device", "auto") not in ("auto", None):
        raise UserError(
            f"--device does not apply to --model: your model runs on the device its code puts "
            f"it on (not --device {args.device})"
        )
    data_options_apply(args, args.dataset, f"--dataset {args.dataset}")
    for option in ("images", "labels", "root", "weights"):
        check_path(f"--{option}", getattr(args, option, None))
    is_pair = Path(spec).expanduser().is_dir()
    if is_pair and args.output is not None:
        raise UserError(
            f"--output does not apply to the ONNX pair in {printable(spec)}: its model.json "
            "says what its decoder gives"
        )
    for option, out in outputs:
        not_an_input(option, out, command_inputs(args))
    own = open_model(spec, args.weights)  # runs the user's file (or reads the pair)
    data_spec = spec_from_args(args)
    data = load_data(data_spec)
    try:
        model = foreign_model(own, data, args.output)
    except ForeignModelError as e:
        shape = "x".join(map(str, data.image_shape))
        raise UserError(
            f"your model ({own.source}) cannot be shown on {data_spec.describe()} "
            f"({shape} images): {e}"
        ) from None
    model.eval()
    model.requires_grad_(False)
    names = list(data.class_names) if model.num_classes else []
    return OwnModel(model, data_spec, data, printable(own.source), names)


def _names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def checkpoint_data(args, ck, check=None):
    """The images a command runs a checkpoint's model on: the data options' where
    ``--dataset`` is given, else the data the checkpoint records (then the options given must
    be ones its source reads); loaded and checked to fit the model. ``check(args, ck)``, the
    command's own test of its data options, runs once those are known to apply, before any
    image is read. A user's model (:class:`OwnModel`) gives the images named with it.
    Returns (spec, data)."""
    from ..data import load_data
    from ._options import spec_from_args

    if getattr(ck, "data", None) is not None:  # a user's model: the images named with it
        return ck.data_spec, ck.data

    if ck.data_spec is None and args.dataset is None:
        raise UserError(f"{args.checkpoint}: records no dataset; pass --dataset and its files")
    if args.dataset is None:
        data_options_apply(
            args, ck.data_spec.source, f"the checkpoint's data ({ck.data_spec.describe()})"
        )
    if check is not None:
        check(args, ck)
    spec = spec_from_args(args, base=ck.data_spec)
    data = load_data(spec)
    check_data_fits(ck, spec, data)
    return spec, data


def check_data_fits(ck, spec, data) -> None:
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


def own_test_data(ck, what: str):
    """The checkpoint's own data (for its test images), or one line saying why ``what``
    cannot have it."""
    from ..data import DataError, load_data

    if getattr(ck, "data", None) is not None:  # a user's model: the images named with it
        return ck.data
    if ck.data_spec is None:
        raise UserError(f"{ck.path}: names no data; {what} its test images")
    try:
        data = load_data(ck.data_spec)
    except DataError as e:
        raise UserError(f"{what} the checkpoint's test images: {e}") from None
    check_data_fits(ck, ck.data_spec, data)
    return data


def out_of_memory(e: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(e, oom):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
