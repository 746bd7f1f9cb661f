"""A user's own model, from ``FILE.py:FUNCTION`` and, optionally, a weights file.

This *runs the user's file* (as ``python FILE.py`` would, minus its ``__main__`` block): only
name one you trust. The function is called with no arguments and returns the model, usually a
``torch.nn.Module``; ``--weights W`` then loads its state dict from W, read as safetensors
(``.safetensors``) or with ``torch.load(weights_only=True)``, which runs no code. Each mistake
(a missing file or function, an exception in the user's code, weights that do not fit) is one
line (:class:`UserCodeError`) naming the file and, for an exception, its last line there.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from .files import NotRegularFile, open_regular, printable, read_problem

MAX_WEIGHTS_BYTES = 32 * 2**30  # as a checkpoint's
MAX_SOURCE_BYTES = 16 << 20
HOW = "give --model FILE.py:FUNCTION, a function in FILE.py that returns the model"


class UserCodeError(ValueError):
    """The user's code or weights could not give a model: one line saying why."""


@dataclass(frozen=True)
class UserModel:
    """The model a user's function returned, and where it came from."""

    model: object
    file: Path
    function: str
    weights: Path | None = None

    @property
    def source(self) -> str:
        where = f"{self.file}:{self.function}"
        return where + (f" with weights {self.weights}" if self.weights else "")


def parse_spec(spec: str) -> tuple[Path, str]:
    """``FILE.py:FUNCTION`` split into the file and the function's name."""
    text = printable(spec)
    file, sep, function = spec.rpartition(":")
    if not sep or not file:
        raise UserCodeError(f"--model {text}: names no function; {HOW}")
    if not function.isidentifier():
        raise UserCodeError(f"--model {text}: {printable(function)!r} is not a function's name")
    if not file.endswith(".py"):
        raise UserCodeError(f"--model {text}: {printable(file)} is not a Python file (.py)")
    return Path(file).expanduser(), function


def _user_frame(e: BaseException, file: Path) -> str:
    """Where in the user's file ``e`` came from: " (line N)" of its last frame there, or
    " (OTHER FILE, line N)" of its last frame at all."""
    frames = traceback.extract_tb(e.__traceback__)
    if isinstance(e, SyntaxError) and e.lineno:
        same = e.filename and os.path.realpath(e.filename) == os.path.realpath(file)
        return (
            f" (line {e.lineno})" if same else f" ({printable(str(e.filename))}, line {e.lineno})"
        )
    try:
        real = os.path.realpath(file)
        ours = [f for f in frames if os.path.realpath(f.filename) == real]
    except (OSError, ValueError):
        ours = []
    if ours:
        return f" (line {ours[-1].lineno})"
    return f" ({printable(frames[-1].filename)}, line {frames[-1].lineno})" if frames else ""


def _said(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {printable(e.msg or '')}"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {printable(text[-1])[:200]}" if text else type(e).__name__


def _import_file(file: Path):
    """The module ``file`` defines, run under a name of its own; its folder is on sys.path
    while it runs, so that it may import its neighbours."""
    where = printable(str(file))
    try:
        with open_regular(file) as f:
            if os.fstat(f.fileno()).st_size > MAX_SOURCE_BYTES:
                raise UserCodeError(f"{where}: is too large to be a model's Python file")
    except FileNotFoundError:
        raise UserCodeError(f"{where}: does not exist; {HOW}") from None
    except IsADirectoryError:
        raise UserCodeError(f"{where}: is a folder, not a Python file") from None
    except NotRegularFile:
        raise UserCodeError(f"{where}: is not a regular file") from None
    except OSError as e:
        raise UserCodeError(f"{where}: {read_problem(e)}") from None
    name = f"latent_explorer_user_model_{abs(hash(os.path.realpath(file))):x}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"{where}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(file.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, SystemExit) as e:
        sys.modules.pop(name, None)
        if isinstance(e, SystemExit):
            raise UserCodeError(f"{where}: exited while it was imported ({e.code})") from None
        raise
    except BaseException as e:
        sys.modules.pop(name, None)
        raise UserCodeError(
            f"{where}: failed while it was imported: {_said(e)}{_user_frame(e, file)}"
        ) from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


def load_user_model(spec: str, weights: str | os.PathLike | None = None) -> UserModel:
    """The model ``spec`` (``FILE.py:FUNCTION``) returns, with ``weights`` loaded into it."""
    file, function = parse_spec(spec)
    module = _import_file(file)
    where = printable(str(file))
    build = getattr(module, function, None)
    if build is None:
        defined = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", "") == module.__name__
        )
        also = f" (it defines: {', '.join(defined[:8])})" if defined else ""
        raise UserCodeError(f"{where}: has no function {function}{also}")
    if not callable(build):
        raise UserCodeError(f"{where}: {function} is not a function")
    try:
        model = build()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        raise UserCodeError(
            f"{where}: {function}() failed: {_said(e)}{_user_frame(e, file)}"
        ) from None
    if model is None:
        raise UserCodeError(f"{where}: {function}() returned None; it must return the model")
    w = None
    if weights is not None:
        w = Path(weights).expanduser()
        load_weights(model, w)
    return UserModel(model, file, function, w)


def read_weights(path: Path) -> dict:
    """A state dict from ``path``: safetensors (``.safetensors``) or a file ``torch.save``
    wrote, read with ``weights_only=True`` (no code runs)."""
    import io

    import torch

    where = printable(str(path))
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_WEIGHTS_BYTES:
                raise UserCodeError(f"{where}: is too large ({size / 2**30:.0f} GiB)")
            data = f.read()
    except FileNotFoundError:
        raise UserCodeError(f"{where}: does not exist") from None
    except IsADirectoryError:
        raise UserCodeError(f"{where}: is a folder, not a weights file") from None
    except NotRegularFile:
        raise UserCodeError(f"{where}: is not a regular file") from None
    except OSError as e:
        raise UserCodeError(f"{where}: {read_problem(e)}") from None
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load

        try:
            state = load(data)
        except Exception as e:
            raise UserCodeError(
                f"{where}: is not a safetensors file ({printable(str(e))[:120]})"
            ) from None
    else:
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:
            first = printable(str(e).strip().splitlines()[0] if str(e).strip() else "")[:160]
            raise UserCodeError(
                f"{where}: is not a state dict torch.load(weights_only=True) reads ({first})"
            ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # as many training scripts save them
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UserCodeError(f"{where}: holds no state dict (names -> tensors)")
    return state


def _names(names, most: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def load_weights(model, path: Path) -> None:
    """Load the state dict at ``path`` into ``model``; one line where it does not fit."""
    import torch

    where = printable(str(path))
    if not isinstance(model, torch.nn.Module):
        raise UserCodeError(
            f"--weights {where}: the model is a {type(model).__name__}, not a torch.nn.Module, "
            "so it has no weights to load"
        )
    state = read_weights(path)
    own = model.state_dict()
    missing = set(own) - set(state)
    extra = set(state) - set(own)
    if missing or extra:
        parts = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"unexpected {_names(extra)}"] if extra else []
        )
        raise UserCodeError(f"{where}: does not fit the model: {'; '.join(parts)}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise UserCodeError(
                f"{where}: does not fit the model: {k} is {tuple(v.shape)} in the file but "
                f"{tuple(own[k].shape)} in the model"
            )
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise UserCodeError(f"{where}: does not fit the model ({_said(e)})") from None


def open_model(spec: str, weights: str | os.PathLike | None = None):
    """What ``--model`` names: a folder holding an ONNX pair (an :class:`~trainer.onnx_pair.
    OnnxPair`, whose reading runs no code), or ``FILE.py:FUNCTION`` (a :class:`UserModel`,
    which runs the file). Raises UserCodeError or OnnxPairError, one line either way."""
    from .onnx_pair import ENCODER, read_onnx_pair

    path = Path(spec).expanduser()
    if path.is_dir():
        if weights is not None:
            raise UserCodeError(
                f"--weights does not apply to the ONNX pair in {printable(spec)}: its weights "
                "are in its graphs"
            )
        return read_onnx_pair(path)
    if path.suffix.lower() == ".onnx" or path.name == "model.json":
        raise UserCodeError(
            f"--model {printable(spec)}: name the folder that holds {ENCODER}, not one of its "
            f"files (--model {printable(str(path.parent))})"
        )
    return load_user_model(spec, weights)


def foreign_model(own, data, output: str | None = None):
    """What ``--model`` named (an :class:`~trainer.onnx_pair.OnnxPair`, or a
    :class:`UserModel`) as a :class:`~trainer.foreign.ForeignModel` for ``data``'s images
    (``output``: what a user's ``decode`` returns, default logits; a pair knows its own), its
    first batch checked. Raises ForeignModelError, one line."""
    from .foreign import ForeignModel, check_model, wrap

    if hasattr(own, "foreign_arguments"):  # an ONNX pair knows its own facts
        args, kwargs = own.foreign_arguments()
        model = ForeignModel(*args, **kwargs)
    else:
        model = wrap(own.model, data, output=output or "logits", source=own.source)
    check_model(model, data.test_x, data.test_y if model.num_classes else None)
    if hasattr(own, "foreign_arguments"):
        spec, weights = str(Path(own.folder).absolute()), ""
    else:
        spec = f"{own.file.absolute()}:{own.function}"
        weights = str(own.weights.absolute()) if own.weights else ""
    model.config = replace(model.config, spec=spec, weights=weights)
    return model
