"""The recovery file: a model in training, kept when the app dies before the user saved it.

Each window owns one file, ``recovery-<pid>-<n>.safetensors`` in the user's data folder,
which its runs autosave at epoch ends (``explorer.worker``), and a lock file beside it
(``QLockFile``) held as long as the window lives. The recovery file is deleted once its
training is in a file the user chose, or when the window closes cleanly. A recovery file
whose lock nobody holds belonged to a window that was killed or crashed: the next launch
offers it. Files are written atomically (a temporary file renamed into place), so a kill at
any moment leaves the previous complete file or the new one, never half of one.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from PySide6.QtCore import QLockFile, QStandardPaths

from trainer.checkpoint import SUFFIX

_counter = itertools.count()


def default_folder() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.GenericDataLocation)
    return Path(base or Path.home() / ".local" / "share") / "latent-explorer" / "recovery"


def _lock(path: Path) -> QLockFile:
    lock = QLockFile(str(path.with_suffix(".lock")))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however old it is
    return lock


class Recovery:
    """This window's recovery file (``path``); nothing is written until a run autosaves."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.path = self.folder / f"recovery-{os.getpid()}-{next(_counter)}{SUFFIX}"
        self._lock: QLockFile | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = _lock(self.path)
            if lock.tryLock(0):
                self._lock = lock
        except OSError:
            pass  # no recovery where the data folder cannot be written; the app still runs

    @property
    def usable(self) -> bool:
        return self._lock is not None

    def discard(self) -> None:
        """Forget the autosaved model (its training is saved, or the user let it go)."""
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """The window closes cleanly: nothing to recover."""
        self.discard()
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None

    def adopt(self, orphan: Path) -> None:
        """Make a recovered file this window's own (it stays protected until saved)."""
        if self.usable:
            os.replace(orphan, self.path)
            orphan.with_suffix(".lock").unlink(missing_ok=True)


def orphans(folder: Path | None = None) -> list[Path]:
    """Recovery files left by windows that are gone, newest first."""
    folder = Path(folder) if folder is not None else default_folder()
    found = []
    for path in folder.glob(f"recovery-*{SUFFIX}"):
        lock = _lock(path)
        if lock.tryLock(0):  # nobody holds it: its window was killed or crashed
            lock.unlock()
            try:
                found.append((path.stat().st_mtime, path))
            except OSError:
                continue
    # temporary files of writes that a kill interrupted are never needed again
    for tmp in folder.glob(f".recovery-*{SUFFIX}.*.tmp"):
        owner = folder / tmp.name[1:].split(SUFFIX)[0]
        if not _is_held(owner.with_suffix(SUFFIX)):
            tmp.unlink(missing_ok=True)
    return [p for _t, p in sorted(found, reverse=True)]


def _is_held(path: Path) -> bool:
    lock = _lock(path)
    if lock.tryLock(0):
        lock.unlock()
        return False
    return True
