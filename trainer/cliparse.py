"""The argument parser both command lines share: a mistake is one line on stderr and exit
code 2 (no usage dump), an option is only ever its whole name (``--epoch`` is a mistake,
not ``--epochs``), and a misspelt option is answered with the nearest one."""

from __future__ import annotations

import argparse
import difflib
import re

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the behaviour above."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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
        close = difflib.get_close_matches(m.group(1), known, n=1, cutoff=0.75)
        return f"; did you mean {close[0]}?" if close else ""
