"""The window's settings file: an INI file that QSettings reads at start and writes back.

Qt opens the file as a QSettings is made and reads it to its end, so a named pipe in its
place would hold the window before it ever appears, and the save at closing would put a
file where the pipe was. The file is looked at first: anything but a regular file (or no
file yet) is said once, and the session runs on the defaults, in a settings file of its own
that is thrown away at exit; the user's path is left as it is.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

from PySide6.QtCore import QSettings

from explorer.constants import ORG
from trainer.files import printable

APP = "latent-explorer"  # the settings file's name


class Settings(QSettings):
    """A QSettings whose ``problem`` says why the user's file is not the one in use
    (None when it is)."""

    problem: str | None = None


def user_file() -> Path:
    """The user's settings file (``~/.config/latent-explorer/latent-explorer.ini`` on
    Linux, or wherever ``QSettings.setPath`` put the user's INI files), found without
    opening it: Qt is asked where a file of a name that nobody uses would be."""
    probe = QSettings(QSettings.IniFormat, QSettings.UserScope, f"probe-{uuid.uuid4().hex}", APP)
    return Path(probe.fileName()).parent.parent / ORG / f"{APP}.ini"


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot be the settings file, or None: a regular file, or none yet."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None  # made at the first save
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link that leads round in a loop"
        if e.errno == errno.ENOTDIR:
            return "cannot be kept (a folder on its way is a file)"
        return f"cannot be read ({e.strerror or e})"
    except ValueError:
        return "cannot be read (its name holds a NUL character)"
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return f"is {next((k for test, k in kinds if test(mode)), 'a device')}, not a regular file"


def open_settings(path: str | os.PathLike | None = None) -> Settings:
    """The settings in INI file ``path`` (default: :func:`user_file`). Where that is not
    a regular file, settings that start empty and are kept nowhere, with ``problem`` set
    to the one line that says so."""
    path = Path(path) if path is not None else user_file()
    why = _unusable(path)
    if why is None:
        return Settings(str(path), QSettings.IniFormat)
    scratch = tempfile.mkdtemp(prefix="latent-explorer-settings-")
    atexit.register(shutil.rmtree, scratch, True)
    s = Settings(os.path.join(scratch, "settings.ini"), QSettings.IniFormat)
    s.problem = (
        f"The settings file {printable(str(path))} {why}: Latent Explorer starts with its "
        "defaults and keeps no settings this session."
    )
    return s
