"""Where the window's file dialogs start: the folder of the user's own files of each kind
(checkpoints, exports, data), remembered between sessions.

A folder of the application's own (the bundled examples, the Runs project, the recovery
folder, the app's data and cache folders) is never remembered: opening a run from the Runs
tab must not send the next Save into a hidden project folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings

KINDS = ("checkpoints", "exports", "data", "views")


class Places:
    """``start(kind)``: the folder a dialog for ``kind`` opens in; ``remember(kind, path)``
    after the user chose ``path``. ``ours()`` lists the application's own folders."""

    def __init__(self, settings: QSettings, ours: Callable[[], list[Path]]) -> None:
        self.settings = settings
        self.ours = ours

    def start(self, kind: str) -> str:
        """The last folder the user chose for ``kind`` (exports fall back to where the
        checkpoints are, everything to the home folder)."""
        for key in dict.fromkeys((kind, "checkpoints")):
            d = self.settings.value(f"places/{key}")
            if d is None and key == "checkpoints":
                d = self.settings.value("last_dir")  # (the key of earlier versions)
            if isinstance(d, str) and d and os.path.isdir(d) and not self.is_ours(Path(d)):
                return d
        return str(Path.home())

    def suggest(self, kind: str, name: str) -> str:
        """A file name for a save dialog: ``name`` in :meth:`start`'s folder."""
        return str(Path(self.start(kind)) / name)

    def remember(self, kind: str, path: str | os.PathLike) -> None:
        """The user chose ``path`` (a file, or a folder for data): keep its folder, unless it
        is one of the application's own."""
        p = Path(path)
        folder = p if kind == "data" and p.is_dir() else p.parent
        if not self.is_ours(folder):
            self.settings.setValue(f"places/{kind}", str(folder))

    def is_ours(self, folder: Path) -> bool:
        try:
            f = folder.resolve()
        except (OSError, RuntimeError):
            return True  # a folder that cannot be resolved is no place to start
        for mine in self.ours():
            try:
                if f == mine.resolve() or f.is_relative_to(mine.resolve()):
                    return True
            except (OSError, RuntimeError):
                continue
        return False
