"""Files read and written safely: reading only what is a regular file (a named pipe would
block), writing so that a crash or a full disk never leaves a half-written one behind, and
only ever over a regular file (never a device, a named pipe, a socket or a folder)."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .config import shown

# ".{target name}.{writer's pid}.{8 random characters}.tmp", as atomic_write names them
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d{1,10})\.[a-z0-9_]{8}\.tmp", re.IGNORECASE)
STALE_AFTER = 2.0  # seconds untouched before a dead writer's temporary file is removed (a
# writer on another computer sharing the folder keeps its file fresher than that)
LEGACY_STALE_AFTER = 3600.0  # the same for one named without its writer (older versions)


class NotRegularFile(OSError):
    """A path names a named pipe, a device or a socket; ``mode`` is its ``st_mode``."""

    def __init__(self, path: str | os.PathLike, mode: int) -> None:
        super().__init__(f"{path}: not a regular file")
        self.mode = mode


def printable(text: str) -> str:
    """``text`` with what a file (or its name) may smuggle into a message escaped: control
    characters such as a newline, and lone surrogates that no terminal or widget can
    encode; the message stays one line."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _need_regular(path: str | os.PathLike, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, mode)


class RefusedOutput(OSError):
    """An output names something that is not a file to replace: a device, a named pipe, a
    socket, a folder, or a symbolic link to nothing or round in a loop. ``strerror`` says
    which, ``filename`` is the path."""


def _kind_of(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def output_target(path: str | os.PathLike) -> Path:
    """The file that writing ``path`` replaces: ``path`` itself when it is a regular file
    or a new name, or, when it is a symbolic link (or a chain of them) to a regular file,
    that file (the link stays a link, its target gets the new contents).

    Raises :class:`RefusedOutput` for anything else: a device (``/dev/null``), a named
    pipe, a socket, a folder, a symbolic link to nothing, or one that leads round in a
    loop. Other OSError (a name too long, a folder that cannot be searched) as ``lstat``
    raises it; ValueError for a name holding a NUL character.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path  # a new name (a missing folder is for the writer to make or report)
    except OSError as e:
        if e.errno == errno.ELOOP:  # a folder on the way leads round in a loop
            raise RefusedOutput(
                errno.ELOOP, "goes through a symbolic link loop", str(path)
            ) from None
        raise
    target = path
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise RefusedOutput(
                errno.ENOENT,
                "is a symbolic link to nothing (its target does not exist)",
                str(path),
            ) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RefusedOutput(
                    errno.ELOOP, "is a symbolic link that leads round in a loop", str(path)
                ) from None
            raise
        target = Path(os.path.realpath(path))
    if stat.S_ISREG(mode):
        return target
    what = _kind_of(mode)
    if target is not path:
        what = f"a symbolic link to {what}"
    code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
    raise RefusedOutput(code, f"is {what}, not a regular file", str(path))


def not_written(path: str | os.PathLike, e: OSError) -> str:
    """The one line that says ``path`` was not written, and why."""
    if isinstance(e, RefusedOutput):
        return f"{path}: {e.strerror}; nothing was written"
    return f"{path}: could not be written ({e.strerror or e})"


def read_problem(e: OSError, loop: str = "is a symbolic link that leads round in a loop") -> str:
    """Why a file could not be read, in a user's words: "no such file", "cannot be read
    (permission denied)", ``loop`` for a symbolic link loop, else the system's reason."""
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    if e.errno == errno.ELOOP:
        return loop
    if e.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read (permission denied)"
    return f"cannot be read ({e.strerror or e})"


def same_file(path: str | os.PathLike, source: str | os.PathLike) -> bool:
    """Whether ``path`` and ``source`` are one file (by device and inode: a hard link or a
    symbolic link to it counts); False where either cannot be looked at."""
    try:
        return os.path.samefile(path, source)
    except (OSError, ValueError):  # one of them does not exist (yet)
        return False


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path``, with every link resolved, lies inside ``folder`` (a folder)."""
    try:
        if not os.path.isdir(folder):
            return False
        here, there = os.path.realpath(path), os.path.realpath(folder)
        return os.path.commonpath([here, there]) == there
    except (OSError, ValueError):
        return False


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file.

    Never blocks: anything else is refused before it is opened, and the open itself does
    not wait for a writer should the path have been swapped for a named pipe in between.
    Raises OSError as ``open`` does (IsADirectoryError for a folder), NotRegularFile for a
    pipe, device or socket, and ValueError for a name holding a NUL character.
    """
    _need_regular(path, os.stat(path).st_mode)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    extra = getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | extra)
    try:
        _need_regular(path, os.fstat(fd).st_mode)
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _naming(path: Path, e: OSError) -> OSError:
    """``e`` about ``path``: the temporary file's name means nothing to the user."""
    if e.errno is None:
        return OSError(f"{path}: {e}")
    return OSError(e.errno, e.strerror or os.strerror(e.errno), str(path))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may be running (True where that cannot be told)."""
    if pid <= 0:
        return True
    if sys.platform == "win32":
        import ctypes

        try:
            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
            if not handle:
                return ctypes.get_last_error() != 87  # ERROR_INVALID_PARAMETER: no such process
            try:
                code = ctypes.c_ulong()
                if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                    return True
                return code.value == 259  # STILL_ACTIVE
            finally:
                kernel32.CloseHandle(handle)
        except (OSError, AttributeError, ValueError):
            return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # PermissionError: it exists, not ours
        return True
    return True


def _newest_change(entry: os.DirEntry) -> float:
    """When ``entry`` (a file, or a folder and the files in it) was last written."""
    newest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        with os.scandir(entry.path) as inner:
            for e in inner:
                with contextlib.suppress(OSError):
                    newest = max(newest, e.stat(follow_symlinks=False).st_mtime)
    return newest


def remove_stale_temporaries(
    folder: Path, name: str | None = None, *, folders: bool = False
) -> list[Path]:
    """Remove the temporary files that writers killed mid-write left in ``folder``.

    Only files named as ``atomic_write`` names them, whose writer process is gone and that
    nothing touched for ``STALE_AFTER`` seconds: never one that a live process (another
    window autosaving, say) is writing. Files of older versions, named without their writer,
    are removed for target ``name`` only, once an hour old. With ``folders``, temporary
    folders named the same way (a decoded cache being built) go too, with what is in them
    (never following a link out of them), once neither they nor anything in them was
    touched for as long. Returns what was removed.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        m = _TEMPORARY.fullmatch(entry.name)
        if m is not None:
            pid = int(m["pid"])
            if pid == os.getpid() or _alive(pid):
                continue
            age = STALE_AFTER
        elif name is not None and re.fullmatch(
            rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp", entry.name, re.IGNORECASE
        ):
            age = LEGACY_STALE_AFTER
        else:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                if not folders or m is None or now - _newest_change(entry) < age:
                    continue
                shutil.rmtree(entry.path)
            elif entry.is_file(follow_symlinks=False):
                if now - entry.stat(follow_symlinks=False).st_mtime < age:
                    continue
                os.unlink(entry.path)
            else:
                continue
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system can; Windows cannot open one)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place.

    The file and then its folder are synced to disk, so that after a crash ``path`` holds
    either its old contents or all of the new. The temporary file is named after ``path``
    and this process (``.NAME.PID.XXXXXXXX.tmp``); each call removes those that killed
    writers left in the folder. The result gets the permissions of an ordinary new file
    (0666 less the umask), not the owner-only mode of a temporary file.

    Only a regular file or a new name is written (see :func:`output_target`): a symbolic
    link to a regular file stays a link and its target is replaced the same way; a device,
    a named pipe, a socket, a folder or a broken link raises :class:`RefusedOutput` before
    anything is written. Raises OSError like ``open`` would, naming ``path``; returns
    ``path``.
    """
    path = Path(path)
    try:
        target = output_target(path)
    except RefusedOutput:
        raise
    except OSError as e:
        raise _naming(path, e) from e
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target.parent, target.name)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
        )
    except OSError as e:
        raise _naming(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        output_target(target)  # what was checked is still what is replaced
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, RefusedOutput):
            raise
        if isinstance(e, OSError):
            raise _naming(path, e) from e
        raise
    _sync_folder(target.parent)
    return path


# -- JSON files a user could have edited or damaged -------------------------------------------
MAX_JSON_BYTES = 4 << 20  # what any of the project's JSON files may take at most
MAX_JSON_DEPTH = 32  # how deeply its lists and objects may nest (the project's nest 3 or 4)
MAX_WHOLE = 2**63 - 1  # the largest count a JSON file's field holds (a 64-bit counter's)
_MISSING = object()


class JSONFileError(Exception):
    """A JSON file that cannot be used. The message is one line naming the file and,
    where one field is at fault, the field (``path``, ``field`` and ``why`` say each)."""

    def __init__(self, path: str | os.PathLike, why: str, field: str | None = None) -> None:
        self.path, self.why, self.field = Path(path), why, field
        where = f"'{printable(field)}' " if field else ""
        super().__init__(f"{printable(str(path))}: {where}{why}")


def kind_of(value) -> str:
    """What a JSON value is, in a message's words ("a whole number (5)", "null")."""

    if value is None:
        return "null"
    if isinstance(value, bool):
        return shown(value)
    if isinstance(value, int):
        return f"a whole number ({shown(value)})"
    if isinstance(value, float):
        return f"a number ({shown(value)})"
    if isinstance(value, str):
        return f"text ({shown(value)})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def is_text(value) -> bool:
    """Whether ``value`` is text that can be written out (no lone surrogate, which JSON's
    ``\\ud800`` escapes can make and no terminal or file takes)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_number(value, finite: bool = False) -> bool:
    """Whether a JSON value is a number that a float holds (never true or false; an int
    of 400 digits is none); ``finite``: not NaN or an infinity either."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        v = float(value)
    except OverflowError:
        return False
    return math.isfinite(v) or not finite


def _too_deep(value, limit: int) -> bool:
    """Whether ``value``'s lists and objects nest more than ``limit`` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def read_json(
    path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> object:
    """The value a JSON file holds, read the one safe way.

    Only a regular file (or a link to one) is read, never a named pipe, device or socket
    (see :func:`open_regular`: it never blocks); at most ``max_bytes``; UTF-8 (a byte
    order mark is allowed); lists and objects nested at most ``max_depth`` deep. Raises
    :class:`JSONFileError` (one line naming the file) for anything else, a missing file
    included. The value's fields are for the caller to check (:class:`JSONFields`).
    """
    try:
        with open_regular(path) as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        why = "is a symbolic link to nothing" if os.path.islink(path) else "does not exist"
        raise JSONFileError(path, why) from None
    except IsADirectoryError:
        raise JSONFileError(path, "is a folder, not a file") from None
    except NotRegularFile as e:
        raise JSONFileError(path, f"is {_kind_of(e.mode)}, not a regular file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise JSONFileError(path, "is a symbolic link that leads round in a loop") from None
        raise JSONFileError(path, f"cannot be read ({e.strerror or e})") from None
    except ValueError:  # a NUL character in the name
        raise JSONFileError(path, "cannot be read (its name holds a NUL character)") from None
    if len(raw) > max_bytes:
        raise JSONFileError(path, f"is larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise JSONFileError(path, f"is not UTF-8 text (byte {e.start} is not)") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONFileError(path, f"nests more than {max_depth} levels deep") from None
    except ValueError as e:  # JSONDecodeError, or a number of too many digits
        raise JSONFileError(path, f"is not valid JSON ({printable(str(e))[:120]})") from None
    if _too_deep(value, max_depth):
        raise JSONFileError(path, f"nests more than {max_depth} levels deep")
    return value


class JSONFields:
    """The fields of one object read from a JSON file, each checked as it is taken: a
    missing field (without a default) or one of the wrong kind raises
    :class:`JSONFileError` naming the file and the field; a field given a default may be
    left out, but not be null. ``where`` names the object (``"model"``) for a nested
    one."""

    def __init__(self, path: str | os.PathLike, value, where: str = "") -> None:
        self.path, self.where = path, where
        if not isinstance(value, dict):
            why = f"must be an object, not {kind_of(value)}"
            raise JSONFileError(
                path, why if where else f"holds {kind_of(value)}, not an object", where or None
            )
        self.value = value

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, why: str) -> JSONFileError:
        return JSONFileError(self.path, why, self.name(key))

    def _take(self, key: str, default):
        if key not in self.value:
            if default is _MISSING:
                raise self.error(key, "is missing")
            return default, False
        return self.value[key], True

    def _wrong(self, key: str, v, kind: str) -> JSONFileError:
        return self.error(key, f"must be {kind}, not {kind_of(v)}")

    def text(self, key: str, default=_MISSING, *, path: bool = False) -> str:
        """A text; one that no file system or terminal takes (a lone surrogate; a NUL
        character, for a ``path``) is refused."""
        v, given = self._take(key, default)
        if not given:
            return v
        if not isinstance(v, str):
            raise self._wrong(key, v, "text")
        if not is_text(v):
            raise self.error(key, "is not valid text (it holds a lone surrogate)")
        if path and (not v or "\0" in v):
            raise self.error(key, "must name a file" if not v else "holds a NUL character")
        return v

    def whole(self, key: str, lo: int | None = None, hi: int | None = MAX_WHOLE, default=_MISSING):
        """A whole number (never true or false) from ``lo`` to ``hi`` (by default, at most
        what a 64-bit counter holds)."""
        v, given = self._take(key, default)
        if not given:
            return v
        span = (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi is not None else "")
        if not isinstance(v, int) or isinstance(v, bool):
            raise self._wrong(key, v, f"a whole number{span}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self._wrong(key, v, f"a whole number{span}")
        return v

    def number(self, key: str, default=_MISSING, *, finite: bool = False):
        """A number (never true or false) that a float holds; ``finite``: not NaN or an
        infinity either."""
        v, given = self._take(key, default)
        if not given:
            return v
        if not is_number(v, finite):
            raise self._wrong(key, v, "a finite number" if finite else "a number")
        return v

    def object(self, key: str, default=_MISSING) -> JSONFields | None:
        """A nested object, as its own fields (None where it may be and is left out)."""
        v, given = self._take(key, default)
        if not given:
            return None if v is None else JSONFields(self.path, v, self.name(key))
        return JSONFields(self.path, v, self.name(key))

    def items(self, key: str, default=_MISSING) -> list:
        """A list (its items are for the caller to check)."""
        v, given = self._take(key, default)
        if not given:
            return v
        if not isinstance(v, list):
            raise self._wrong(key, v, "a list")
        return v
