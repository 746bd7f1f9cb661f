"""``latent-train``: train, evaluate, sample and draw manifolds from the command line.

Every mistake a user can make ends in one line on stderr and exit code 2. A training stopped
by Ctrl-C or SIGTERM saves what it trained and exits with 130 or 143.

Each command is a module of this package (``train``, ``evaluate``, ...) with two functions:
``add_options(parser)``, which gives the command's parser its options, and ``run(args)``,
which does the work and returns the exit code. :data:`COMMANDS` registers them by name, in
the order ``--help`` lists them; a command's module is imported only when that command is
parsed or runs (or when a misspelt option is matched against every command's options).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from importlib import import_module

from ._checks import UserError, check_applicable, out_of_memory
from ._console import one_of_many_but_first, reason
from ._options import EXIT_USAGE, OneLineParser
from ._signals import exit_code, interrupted, signal_name


@dataclass(frozen=True)
class Command:
    """One command of ``latent-train``: what the rest of the program needs to know of it
    before its module is imported."""

    summary: str  # its line in `latent-train --help`
    less: str  # what to ask for less of when memory runs out
    # options that default to None so that one given can be told from one left out: their
    # defaults, filled in once they are known to apply (see _checks.check_applicable)
    defaults: dict = field(default_factory=dict)


COMMANDS = {
    "train": Command(
        "train a model and write checkpoint, metrics and pictures",
        "a smaller --batch-size or --hidden",
        {"beta": 1.0, "warmup_epochs": 0.0},
    ),
    "evaluate": Command(
        "test ELBO and importance-sampled log p(x) of a checkpoint",
        "a smaller --limit, --iw-samples or --prior-samples",
    ),
    "sample": Command("an image grid of samples from the prior", "a smaller --n or --scale"),
    "manifold": Command(
        "the Kingma & Welling Figure 4 grid as an image",
        "a smaller --n or --scale",
        {"dims": (0, 1)},
    ),
    "traverse": Command(
        "one row per latent dimension swept over its values", "a smaller --columns or --scale"
    ),
    "arithmetic": Command("decode z_a - z_b + z_c of three test images", "a smaller --scale"),
    "posterior": Command(
        "the test set's aggregate posterior against the prior, and its holes",
        "a smaller --scale",
        {"dims": (0, 1)},
    ),
    "runs": Command("the runs kept in a project folder, side by side", "fewer runs"),
    "examples": Command(
        "list the bundled example models, or rebuild them from scratch",
        "a smaller --iw-samples",
    ),
    "figures": Command(
        "the paper's figures and the KL table from the examples", "closing other programs"
    ),
    "export-model": Command(
        "a checkpoint's model as an ONNX pair any ONNX runtime runs", "closing other programs"
    ),
    "map": Command(
        "the encoded test images on a 2-D map (UMAP, t-SNE, PCA, axes), its codes exported",
        "a smaller --limit",
    ),
}


def command_module(name: str):
    """The module of command ``name`` (``trainer.cli.train``, ``trainer.cli.export_model``
    for ``export-model``, ...), imported on first use."""
    return import_module(f"{__name__}.{name.replace('-', '_')}")


class _Parser(OneLineParser):
    """The parser of ``latent-train`` and its commands (see :mod:`trainer.cli._options`)."""

    def nearest(self, message: str) -> str:
        # a misspelt option is matched against every command's options: load them all
        for action in self._subparsers._group_actions if self._subparsers else []:
            for parser in action.choices.values():
                if isinstance(parser, _CommandParser):
                    parser.load()
        return super().nearest(message)


class _CommandParser(_Parser):
    """A command's parser: its options are added by the command's module the first time
    the parser is used."""

    command = ""
    loaded = False

    def load(self) -> None:
        if not self.loaded:
            self.loaded = True
            command_module(self.command).add_options(self)

    def parse_known_args(self, args=None, namespace=None):
        self.load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.load()
        return super().format_help()

    def format_usage(self) -> str:
        self.load()
        return super().format_usage()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="latent-train",
        description="Train variational autoencoders and look at what they learn.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.summary).command = name
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's to fix: each is one line and exit code 2."""
    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..data import DataError
    from ..examples import ExampleError
    from ..export import ExportError
    from ..loop import TrainingDiverged
    from ..loop.distributed import DistributedError
    from ..onnx_pair import OnnxPairError
    from ..user_code import UserCodeError

    return (
        UserError,
        ConfigError,
        DataError,
        CheckpointError,
        ExportError,
        ExampleError,
        TrainingDiverged,
        DistributedError,
        OnnxPairError,
        UserCodeError,
    )


def main(argv: list[str] | None = None) -> int:
    from ..loop.threads import tame_environment

    notes = tame_environment()  # before torch is imported (the parser imports it)
    for note in notes if os.environ.get("RANK", "0") in ("", "0") else ():  # process 0 speaks
        print(f"note: {note}", file=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    known = _known_errors()
    try:
        check_applicable(args)
        for name, value in COMMANDS[args.command].defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        return command_module(args.command).run(args)
    except known as e:
        if not one_of_many_but_first() or getattr(e, "every_process", False):
            print(f"latent-train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a file the user named could not be written
        print(f"latent-train: error: {reason(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and not out_of_memory(e):
            raise
        less = COMMANDS[args.command].less
        print(
            f"latent-train: error: out of memory during {args.command}; try {less}", file=sys.stderr
        )
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        signum = interrupted(e)
        if not one_of_many_but_first():
            print(f"latent-train: interrupted ({signal_name(signum)})", file=sys.stderr)
        return exit_code(signum)
