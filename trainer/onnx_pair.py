"""A model as an ONNX pair: a folder of ``encoder.onnx``, ``decoder.onnx`` and ``model.json``,
which any ONNX runtime runs without the model's Python code, and which runs none when read.

==================  ==========================================================================
``encoder.onnx``    inputs ``x`` (B, C, H, W) float32 in [0, 1] and, for a conditional model,
                    ``y`` (B,) int64 class indices; outputs ``mu`` (B, D) and, for a
                    variational model, ``logvar`` (B, D)
``decoder.onnx``    inputs ``z`` (B, D) float32 and ``y`` as above; output ``out``
                    (B, C, H, W): logits (``output`` "logits") or the Gaussian mean in
                    [0, 1] (``output`` "mean", with its ``std``)
``model.json``      the facts: format, version, latent_dim, image_shape, num_classes, output,
                    std, variational, class_names
==================  ==========================================================================

The batch size B is dynamic; the graphs use standard ONNX operators only.
:func:`export_onnx_pair` writes a pair for a project model (it needs ``onnx`` and
``onnxscript`` besides torch); :func:`read_onnx_pair` reads one with ``onnxruntime`` (regular
files only, sizes bounded, every field of model.json checked, a first batch run through both
graphs), each mistake one line (:class:`OnnxPairError`).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .files import (
    JSONFields,
    JSONFileError,
    NotRegularFile,
    atomic_write,
    open_regular,
    printable,
    read_json,
    read_problem,
)

FORMAT = "latent-explorer-onnx-pair"
VERSION = 1
ENCODER, DECODER, FACTS = "encoder.onnx", "decoder.onnx", "model.json"
OUTPUTS = ("logits", "probs", "mean")
MAX_ONNX_BYTES = 2**31 - 1  # what one protobuf message (one .onnx file without external data) holds
MAX_FACTS_BYTES = 1 << 20
MAX_LATENT_DIM = 4096
MAX_CLASSES = 100_000
MAX_SIDE = 4096
OPSET = 18
INSTALL = "pip install 'latent-explorer[onnx]' (or, in a checkout, uv sync --extra onnx)"


class OnnxPairError(ValueError):
    """An ONNX pair that cannot be read or written: one line naming the file at fault."""


def needs(module: str, what: str):
    """``module`` imported, or one line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxPairError(f"{what} needs the {module} package: {INSTALL}") from None


# -- the facts -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PairFacts:
    """What model.json says of a pair."""

    latent_dim: int
    image_shape: tuple[int, int, int]
    num_classes: int = 0
    output: str = "logits"
    std: float | None = None
    variational: bool = True
    class_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "output": self.output,
            "std": self.std,
            "variational": self.variational,
            "class_names": list(self.class_names),
        }


def read_facts(path: Path) -> PairFacts:
    """model.json's facts, every field checked (OnnxPairError naming the file and field)."""
    try:
        f = JSONFields(path, read_json(path, max_bytes=MAX_FACTS_BYTES))
        fmt = f.text("format")
        if fmt != FORMAT:
            raise f.error("format", f"must be {FORMAT!r}, not {printable(fmt)[:80]!r}")
        version = f.whole("version", 1)
        if version > VERSION:
            raise f.error(
                "version", f"is {version}: written by a newer version (this one reads {VERSION})"
            )
        latent_dim = f.whole("latent_dim", 1, MAX_LATENT_DIM)
        shape = f.items("image_shape")
        if len(shape) != 3 or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_SIDE for s in shape
        ):
            raise f.error("image_shape", f"must be 3 whole numbers [C, H, W] from 1 to {MAX_SIDE}")
        if shape[0] not in (1, 3):
            raise f.error("image_shape", f"must have 1 or 3 channels, not {shape[0]}")
        num_classes = f.whole("num_classes", 0, MAX_CLASSES, default=0)
        if num_classes == 1:
            raise f.error("num_classes", "must be 0 (not conditional) or at least 2")
        output = f.text("output")
        if output not in OUTPUTS:
            raise f.error("output", f"must be one of {', '.join(OUTPUTS)}, not {output[:40]!r}")
        std = f.value.get("std")
        if std is not None:
            std = f.number("std", finite=True)
            if not std > 0:
                raise f.error("std", f"must be a positive number, not {std}")
            if output != "mean":
                raise f.error("std", f"applies only to output 'mean', not {output!r}")
        variational = f.value.get("variational", True)
        if not isinstance(variational, bool):
            raise f.error("variational", "must be true or false")
        names = f.items("class_names", default=[])
        if not all(isinstance(n, str) and n and len(n) <= 200 for n in names):
            raise f.error("class_names", "must be a list of names (text of 1 to 200 characters)")
        if names and len(names) != num_classes:
            raise f.error(
                "class_names", f"names {len(names)} classes but num_classes is {num_classes}"
            )
    except JSONFileError as e:
        raise OnnxPairError(str(e)) from None
    return PairFacts(
        latent_dim, (shape[0], shape[1], shape[2]), num_classes, output, std, variational, names
    )


def facts_of(model) -> PairFacts:
    """The facts of a project model (trainer.models.LatentModel)."""
    mc = model.config
    gaussian = mc.likelihood == "gaussian"
    std = float(model.decoder_log_std().exp()) if gaussian else None
    return PairFacts(
        latent_dim=mc.latent_dim,
        image_shape=tuple(mc.image_shape),
        num_classes=mc.num_classes if mc.conditional else 0,
        output="mean" if gaussian else "logits",
        std=std,
        variational=model.is_variational,
    )


# -- writing ---------------------------------------------------------------------------------
class _Encoder(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, y=None):
        mu, logvar = self.model.encode(x, y)
        return mu if logvar is None else (mu, logvar)


class _Decoder(torch.nn.Module):
    def __init__(self, model, mean: bool) -> None:
        super().__init__()
        self.model, self.mean = model, mean

    def forward(self, z, y=None):
        out = self.model.decode(z, y)
        return self.model.mean_image(out) if self.mean else out


def _to_onnx(module, args: tuple, inputs: list[str], outputs: list[str]) -> bytes:
    """``module`` exported by torch's ONNX exporter, as the bytes of one .onnx file."""
    needs("onnx", "exporting an ONNX pair")
    needs("onnxscript", "exporting an ONNX pair")
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic = {name: {0: batch} for name in inputs}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    return program.model_proto.SerializeToString()


def export_onnx_pair(
    model, folder: str | os.PathLike, class_names: list[str] | tuple = ()
) -> list[Path]:
    """Write ``model`` (a project model) as an ONNX pair into ``folder``: the paths written.
    Each file is written whole or not at all."""
    folder = Path(folder)
    facts = facts_of(model)
    if class_names and len(class_names) == facts.num_classes:
        facts = PairFacts(**{**facts.__dict__, "class_names": [str(n) for n in class_names]})
    was_training = model.training
    model.eval()
    try:
        b = 2
        x = torch.rand(b, *facts.image_shape)
        z = torch.zeros(b, facts.latent_dim)
        cond = facts.num_classes > 0
        y = (torch.arange(b) % facts.num_classes,) if cond else ()
        y_in = ["y"] if cond else []
        with torch.no_grad():
            enc = _to_onnx(
                _Encoder(model),
                (x, *y),
                ["x", *y_in],
                ["mu", "logvar"] if facts.variational else ["mu"],
            )
            dec = _to_onnx(_Decoder(model, facts.output == "mean"), (z, *y), ["z", *y_in], ["out"])
    finally:
        model.train(was_training)
    import json

    text = json.dumps(facts.to_json(), indent=1).encode("utf-8") + b"\n"
    written = []
    for name, blob in ((ENCODER, enc), (DECODER, dec), (FACTS, text)):
        written.append(atomic_write(folder / name, lambda f, blob=blob: f.write(blob)))
    return written


# -- reading ---------------------------------------------------------------------------------
def _read_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or one line saying why not."""
    where = printable(str(path))
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise OnnxPairError(f"{where}: is too large ({size:,} bytes; at most {limit:,})")
            data = f.read(limit + 1)
    except FileNotFoundError:
        why = "is a symbolic link to nothing" if os.path.islink(path) else "does not exist"
        raise OnnxPairError(f"{where}: {why}") from None
    except IsADirectoryError:
        raise OnnxPairError(f"{where}: is a folder, not a file") from None
    except NotRegularFile:
        raise OnnxPairError(
            f"{where}: is not a regular file (a named pipe, device or socket)"
        ) from None
    except OSError as e:
        raise OnnxPairError(f"{where}: {read_problem(e)}") from None
    except ValueError:
        raise OnnxPairError(f"{where}: is not a valid file name") from None
    if len(data) > limit:
        raise OnnxPairError(f"{where}: is too large (more than {limit:,} bytes)")
    return data


def _first_line(e: BaseException) -> str:
    text = printable(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    return text[:200]


def _session(path: Path, ort):
    data = _read_file(path, MAX_ONNX_BYTES)
    if not data:
        raise OnnxPairError(f"{printable(str(path))}: is empty, not an ONNX model")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a warning is no business of the user's
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own error classes: a damaged or foreign file
        raise OnnxPairError(
            f"{printable(str(path))}: is not an ONNX model onnxruntime can run ({_first_line(e)})"
        ) from None


_FLOAT, _INT64 = "tensor(float)", "tensor(int64)"


def _check_io(path: Path, items, expected: list[tuple[str, str, tuple]]) -> None:
    """The graph's inputs or outputs are those ``expected``: (name, type, shape without the
    batch), in that order."""
    where = printable(str(path))
    got = [(i.name, i.type, tuple(i.shape)) for i in items]
    names = [g[0] for g in got]
    want = [e[0] for e in expected]
    if names != want:
        raise OnnxPairError(
            f"{where}: has {', '.join(names) or 'none'} where model.json says "
            f"{', '.join(want)} (see its docs: the pair's inputs and outputs)"
        )
    for (name, kind, shape), (_, want_kind, want_shape) in zip(got, expected):
        if kind != want_kind:
            raise OnnxPairError(f"{where}: {name} is {kind}, not {want_kind}")
        if len(shape) != 1 + len(want_shape):
            raise OnnxPairError(
                f"{where}: {name} has {len(shape)} axes where model.json says {1 + len(want_shape)}"
            )
        if isinstance(shape[0], int):
            raise OnnxPairError(
                f"{where}: {name}'s batch axis is fixed at {shape[0]}; a pair's batch size "
                "must be dynamic"
            )
        for have, want_n in zip(shape[1:], want_shape):
            if isinstance(have, int) and have != want_n:
                raise OnnxPairError(
                    f"{where}: {name} is shaped {_dims(shape)} where model.json says "
                    f"(batch, {', '.join(map(str, want_shape))})"
                )


def _dims(shape) -> str:
    return "(" + ", ".join(str(s) if isinstance(s, int) else "batch" for s in shape) + ")"


class OnnxPair:
    """An ONNX pair read from a folder: :meth:`encode` and :meth:`decode` take and give
    torch tensors, as a project model's do; :attr:`facts` says the rest."""

    def __init__(self, folder: Path, facts: PairFacts, encoder, decoder) -> None:
        self.folder, self.facts = folder, facts
        self._encoder, self._decoder = encoder, decoder

    @property
    def source(self) -> str:
        return f"ONNX pair {self.folder}"

    def _feed(self, first: str, t: torch.Tensor, y) -> dict:
        feed = {first: np.ascontiguousarray(t.detach().cpu().float().numpy())}
        if self.facts.num_classes:
            if y is None:
                raise OnnxPairError("this is a conditional model: a class label is needed")
            y = torch.as_tensor(y)
            if y.dim() == 2:  # one-hot rows
                y = y.argmax(1)
            feed["y"] = np.ascontiguousarray(y.detach().cpu().long().reshape(-1).numpy())
        return feed

    def encode(self, x: torch.Tensor, y=None):
        """mu (B, D), or (mu, logvar) for a variational model."""
        out = self._encoder.run(None, self._feed("x", x, y))
        got = [torch.from_numpy(o).to(x.device) for o in out]
        return (got[0], got[1]) if self.facts.variational else got[0]

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """(B, C, H, W): logits or the mean, as ``facts.output`` says."""
        (out,) = self._decoder.run(None, self._feed("z", z, y))
        return torch.from_numpy(out).to(z.device)

    def foreign_arguments(self) -> tuple[tuple, dict]:
        """The arguments of trainer.foreign.ForeignModel that make this pair one."""
        f = self.facts
        return (self.encode, self.decode), {
            "latent_dim": f.latent_dim,
            "image_shape": f.image_shape,
            "num_classes": f.num_classes,
            "output": f.output,
            "std": f.std,
            "one_hot": False,
            "module": None,
            "source": self.source,
        }


def read_onnx_pair(folder: str | os.PathLike) -> OnnxPair:
    """The ONNX pair in ``folder``, checked through: its files, model.json's every field, the
    graphs' inputs and outputs against it, and a first batch of two through both."""
    folder = Path(folder).expanduser()
    where = printable(str(folder))
    if not folder.exists():
        raise OnnxPairError(f"{where}: does not exist")
    if not folder.is_dir():
        raise OnnxPairError(
            f"{where}: is a file; an ONNX pair is a folder of {ENCODER}, {DECODER} and {FACTS}"
        )
    facts = read_facts(folder / FACTS)
    ort = needs("onnxruntime", "reading an ONNX pair")
    encoder = _session(folder / ENCODER, ort)
    decoder = _session(folder / DECODER, ort)
    c, h, w = facts.image_shape
    d = facts.latent_dim
    y_in = [("y", _INT64, ())] if facts.num_classes else []
    _check_io(folder / ENCODER, encoder.get_inputs(), [("x", _FLOAT, (c, h, w)), *y_in])
    stats = [("mu", _FLOAT, (d,))] + ([("logvar", _FLOAT, (d,))] if facts.variational else [])
    _check_io(folder / ENCODER, encoder.get_outputs(), stats)
    _check_io(folder / DECODER, decoder.get_inputs(), [("z", _FLOAT, (d,)), *y_in])
    _check_io(folder / DECODER, decoder.get_outputs(), [("out", _FLOAT, (c, h, w))])
    pair = OnnxPair(folder, facts, encoder, decoder)
    _first_batch(pair)
    return pair


def _first_batch(pair: OnnxPair) -> None:
    """Two images through the encoder and two latents through the decoder: the shapes
    model.json gives, finite values."""
    f = pair.facts
    y = torch.arange(2) % f.num_classes if f.num_classes else None
    try:
        stats = pair.encode(torch.full((2, *f.image_shape), 0.5), y)
        out = pair.decode(torch.zeros(2, f.latent_dim), y)
    except OnnxPairError:
        raise
    except Exception as e:
        raise OnnxPairError(
            f"{printable(str(pair.folder))}: its graphs fail on a first batch ({_first_line(e)})"
        ) from None
    mu = stats[0] if f.variational else stats
    for name, t, shape in (("mu", mu, (2, f.latent_dim)), ("out", out, (2, *f.image_shape))):
        if tuple(t.shape) != shape:
            raise OnnxPairError(
                f"{printable(str(pair.folder))}: {name} of a first batch is shaped "
                f"{tuple(t.shape)}, not {shape} as model.json says"
            )
        if not torch.isfinite(t).all():
            raise OnnxPairError(
                f"{printable(str(pair.folder))}: {name} of a first batch is not finite"
            )


def is_onnx_pair(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a folder that holds (or should hold) an ONNX pair: any folder
    with a model.json or an encoder.onnx in it."""
    p = Path(path).expanduser()
    return p.is_dir() and any(os.path.lexists(p / n) for n in (FACTS, ENCODER, DECODER))


__all__ = [
    "FORMAT",
    "VERSION",
    "OnnxPair",
    "OnnxPairError",
    "PairFacts",
    "export_onnx_pair",
    "is_onnx_pair",
    "needs",
    "read_facts",
    "read_onnx_pair",
]
