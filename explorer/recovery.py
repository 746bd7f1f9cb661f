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

import contextlib
import errno
import fnmatch
import itertools
import json
import os
import stat
import time
from pathlib import Path

from PySide6.QtCore import QLockFile, QStandardPaths

from trainer.checkpoint import SUFFIX
from trainer.files import JSONFileError, atomic_write, printable, read_json

RUN_SUFFIX = ".run.json"  # beside a recovery file: the project run its model continues

_counter = itertools.count()


def default_folder() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.GenericDataLocation)
    return Path(base or Path.home() / ".local" / "share") / "latent-explorer" / "recovery"


def _lock(path: Path) -> QLockFile:
    lock = QLockFile(str(path.with_suffix(".lock")))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however old it is
    return lock


def _not_a_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot hold recovery files, or None if it is a folder."""
    try:
        mode = os.stat(folder).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link that leads round in a loop"
        return f"cannot be made or read ({e.strerror or e})"
    if stat.S_ISDIR(mode):
        return None
    kinds = [(stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")]
    kind = next((name for test, name in kinds if test(mode)), "a device")
    return f"is {kind}, not a folder"


class Recovery:
    """This window's recovery file (``path``); nothing is written until a run autosaves.
    Where the folder cannot hold it, ``usable`` is False and ``problem`` says why (the app
    runs on, without autosaves)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.path = self.folder / f"recovery-{os.getpid()}-{next(_counter)}{SUFFIX}"
        self._lock: QLockFile | None = None
        self.problem: str | None = None
        with contextlib.suppress(OSError):  # (said below, from what the folder is)
            self.folder.mkdir(parents=True, exist_ok=True)
        why = _not_a_folder(self.folder)
        if why is None:
            lock = _lock(self.path)
            if lock.tryLock(0):
                self._lock = lock
            else:
                why = "cannot be written in"
        if why is not None:
            self.problem = (
                f"Models in training are not autosaved this session: the recovery folder "
                f"{printable(str(self.folder))} {why}."
            )

    @property
    def usable(self) -> bool:
        return self._lock is not None

    def discard(self) -> None:
        """Forget the autosaved model (its training is saved, or the user let it go)."""
        with contextlib.suppress(OSError):  # none there, or no longer ours to remove
            self.path.unlink(missing_ok=True)
            run_file(self.path).unlink(missing_ok=True)

    def note_run(self, project: Path, run_id: str | None) -> None:
        """The model being trained continues run ``run_id`` of ``project`` (None: it is no
        run yet): a model recovered from here then goes on with that run, not a new one."""
        if not self.usable:
            return
        text = json.dumps({"project": str(project), "run": run_id}).encode()
        with contextlib.suppress(OSError):  # (a model recovered without it is a new run)
            atomic_write(run_file(self.path), lambda f: f.write(text))

    def close(self) -> None:
        """The window closes cleanly: nothing to recover."""
        self.discard()
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None

    def adopt(self, orphan: Path) -> Path:
        """Make a recovered file this window's own (it stays protected until saved);
        returns the file to open: this window's, or ``orphan`` itself where it cannot be
        moved (the folder is read-only, say: it is opened where it lies)."""
        if not self.usable:
            return orphan
        try:
            if not stat.S_ISREG(os.lstat(orphan).st_mode):
                return orphan  # (the opening says what it is)
            os.replace(orphan, self.path)
        except OSError:
            return orphan
        with contextlib.suppress(OSError):  # the run it continues comes along
            os.replace(run_file(orphan), run_file(self.path))
        with contextlib.suppress(OSError):
            orphan.with_suffix(".lock").unlink(missing_ok=True)
        return self.path


def _regular(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def orphans(folder: Path | None = None) -> list[Path]:
    """Recovery files left by windows that are gone, newest first: regular files only (a
    folder, a named pipe or a link of that name is none of ours); [] where the folder
    cannot be read."""
    folder = Path(folder) if folder is not None else default_folder()
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder, not a folder, a loop, unreadable: nothing to offer
        return []
    found = []
    for entry in entries:
        if not (fnmatch.fnmatchcase(entry.name, f"recovery-*{SUFFIX}") and _regular(entry)):
            continue
        path = Path(entry.path)
        lock = _lock(path)
        if lock.tryLock(0):  # nobody holds it: its window was killed or crashed
            lock.unlock()
            try:
                found.append((entry.stat(follow_symlinks=False).st_mtime, path))
            except OSError:
                continue
    # temporary files of writes that a kill interrupted are never needed again
    for entry in entries:
        if not (fnmatch.fnmatchcase(entry.name, f".recovery-*{SUFFIX}.*.tmp") and _regular(entry)):
            continue
        owner = folder / entry.name[1:].split(SUFFIX)[0]
        if not _is_held(owner.with_suffix(SUFFIX)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    return [p for _t, p in sorted(found, reverse=True)]


def run_file(recovery: Path) -> Path:
    return recovery.with_name(recovery.name.removesuffix(SUFFIX) + RUN_SUFFIX)


def run_of(recovery: Path) -> tuple[Path, str] | None:
    """(the project, the run) the model autosaved in ``recovery`` continues, if it was
    noted and reads back as such; None otherwise."""
    try:
        d = read_json(run_file(recovery), max_bytes=64 << 10, max_depth=2)
    except (JSONFileError, OSError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("project"), str):
        return None
    rid = d.get("run")
    return (Path(d["project"]), rid) if isinstance(rid, str) and rid else None


def autosaved_at(path: Path) -> str:
    """When ``path`` was autosaved, as the offer to open it says it."""
    try:
        return time.strftime("at %H:%M on %d %b", time.localtime(path.stat().st_mtime))
    except (OSError, OverflowError, ValueError):
        return "before it stopped"


def forget(found: list[Path]) -> str | None:
    """Remove the recovery files ``found`` (the user let them go); a line saying which
    could not be removed, or None."""
    kept = []
    for p in found:
        with contextlib.suppress(OSError):
            run_file(p).unlink(missing_ok=True)
        try:
            p.unlink(missing_ok=True)
        except OSError as e:
            kept.append(f"{printable(str(p))} ({e.strerror or e})")
    if not kept:
        return None
    return f"The autosave could not be removed: {kept[0]}" + (
        f" and {len(kept) - 1} more" if len(kept) > 1 else ""
    )


def _is_held(path: Path) -> bool:
    lock = _lock(path)
    if lock.tryLock(0):
        lock.unlock()
        return False
    return True
