"""``latent-train export-model``: a checkpoint's model as an ONNX pair (``encoder.onnx``,
``decoder.onnx``, ``model.json``; see :mod:`trainer.onnx_pair`), which any ONNX runtime runs
without this program's code, and which ``--model DIR`` opens."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._checks import UserError, check_output, not_an_input, open_checkpoint, prepare_out_folder


def add_options(e) -> None:
    e.add_argument(
        "--checkpoint",
        required=True,
        help="the checkpoint to export (a bundled example's model.safetensors too)",
    )
    e.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for encoder.onnx, decoder.onnx and model.json (made if missing; "
        "those three files in it are replaced)",
    )


def run(args) -> int:
    from ..onnx_pair import DECODER, ENCODER, FACTS, OnnxPairError, export_onnx_pair, needs

    try:  # before the checkpoint is read: one line on how to install what is missing
        needs("onnx", "export-model")
        needs("onnxscript", "export-model")
    except OnnxPairError as e:
        raise UserError(str(e)) from None
    out = Path(args.out).expanduser()
    ck = open_checkpoint(args.checkpoint, args=args)
    if args.out.strip():
        not_an_input("--out", out, [("--checkpoint", Path(args.checkpoint).expanduser())], True)
    out, _ = prepare_out_folder(args.out)
    for name in (ENCODER, DECODER, FACTS):
        check_output("--out", out / name)
    t = time.perf_counter()
    try:
        written = export_onnx_pair(ck.model, out, ck.class_names)
    except OnnxPairError as e:
        raise UserError(str(e)) from None
    sizes = ", ".join(f"{p.name} ({_size(p.stat().st_size)})" for p in written)
    print(f"wrote {sizes} to {out}/ in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"
