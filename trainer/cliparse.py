"""The argument parser both command lines share: a mistake is one line on stderr and exit
code 2 (no usage dump), an option is only ever its whole name (``--epoch`` is a mistake,
not ``--epochs``), and a misspelt option is answered with the nearest one."""

from __future__ import annotations

import argparse
import difflib
import re

EXIT_USAGE = 2
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
    "example": (),
}
_WHAT_IT_DOES = {
    "--images": "it names an IDX images file",
    "--labels": "it names an IDX labels file",
    "--root": "it names an image folder",
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
