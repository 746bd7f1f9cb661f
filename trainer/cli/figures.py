"""``latent-train figures``: the paper's figures and the KL table, drawn from the example
models (an example missing from the folder given is trained first)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._checks import command_inputs, not_an_input, prepare_out_folder
from ._console import Progress


def add_options(f) -> None:
    f.add_argument("--out", required=True, metavar="DIR", help="folder for the figures")
    f.add_argument(
        "--examples",
        metavar="DIR",
        help="examples folder (default: the bundled ones); trains missing ones",
    )
    f.add_argument(
        "--mnist", metavar="DIR", help="folder with the MNIST test set (to train a missing example)"
    )


def run(args) -> int:
    from .. import figures
    from .examples import rebuild

    if args.out.strip():  # the figures' folder is not the examples' (or MNIST's) own
        not_an_input("--out", Path(args.out).expanduser(), command_inputs(args), folder=True)
    out, _ = prepare_out_folder(args.out)
    bar = Progress("figures")
    written = figures.write_all(
        out,
        examples_root=Path(args.examples) if args.examples else None,
        mnist=args.mnist,
        progress=bar.update,
        log=lambda text: (bar.close(), print(text, file=sys.stderr)),
        rebuild=rebuild,
    )
    bar.done()
    print(figures.kl_table_markdown())
    print(f"wrote {', '.join(p.name for p in written)} to {out}/", file=sys.stderr)
    return 0
