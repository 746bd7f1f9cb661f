"""Can Qt open a window here? Checked before Qt tries, because Qt's own answer is an abort.

On Linux, Qt draws X11 windows through its ``xcb`` platform plugin, which links a dozen
``libxcb-*`` system libraries that a desktop may lack. When one is missing, Qt prints a
message that can blame the wrong library and aborts the process. This module asks the
dynamic linker (``ldd``) which libraries the plugin cannot find and turns the answer into
one line naming them and the Debian/Ubuntu packages that provide them.

Nothing here imports Qt or torch: it runs before either is loaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# sonames whose Debian package name does not follow the usual rule (see package_for)
_PACKAGES = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
    "libgcc_s.so.1": "libgcc-s1",
    "libz.so.1": "zlib1g",
    "libGLdispatch.so.0": "libglvnd0",
    "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def package_for(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``.

    The rule Debian follows for library packages: ``libfoo.so.N`` is in ``libfooN`` and
    ``libfoo-1.so.N`` (a name ending in a digit) in ``libfoo-1-N``, lower case; the few
    exceptions are listed in ``_PACKAGES``.
    """
    if soname in _PACKAGES:
        return _PACKAGES[soname]
    m = re.match(r"^lib(.+?)\.so\.(\d+)", soname)
    if not m:
        return soname
    name, version = m.group(1).lower(), m.group(2)
    return f"lib{name}{'-' if name[-1].isdigit() else ''}{version}"


def qt_dir() -> Path | None:
    """PySide6's bundled Qt folder (found without importing PySide6)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "Qt"


def missing_libraries(library: str | os.PathLike, ldd: str | None = None) -> list[str]:
    """Sonames that ``library`` needs but the dynamic linker cannot find (in order, once
    each). Empty when nothing is missing or when ``ldd`` is not available to ask."""
    ldd = ldd or shutil.which("ldd")
    if ldd is None or not Path(library).exists():
        return []
    try:
        out = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd(out)


def parse_ldd(output: str) -> list[str]:
    seen: dict[str, None] = {}
    for name in _NOT_FOUND.findall(output):
        seen.setdefault(name, None)
    return list(seen)


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Will Qt pick the xcb (X11) platform for this process?"""
    platform = env.get("QT_QPA_PLATFORM", "")
    first = platform.split(";")[0].split(":")[0].strip()
    if first:
        return first == "xcb"
    # Qt's default on Linux: Wayland in a Wayland session, X11 otherwise
    wayland = env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland"
    return not wayland


def display_reachable(display: str, timeout: float = 0.5) -> bool | None:
    """Does an X server answer at ``display`` (":0", "unix:1", "host:10.0")? None when the
    form is not one this function knows (Qt is left to try)."""
    m = re.fullmatch(r"(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?", display.strip())
    if not m:
        return None
    host, num = m.group("host"), int(m.group("num"))
    if host in ("", "unix"):
        # the abstract socket (Linux) or the file socket under /tmp/.X11-unix
        for address in (f"\0/tmp/.X11-unix/X{num}", f"/tmp/.X11-unix/X{num}"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        return False
    try:
        socket.create_connection((host, 6000 + num), timeout=timeout).close()
        return True
    except OSError:
        return False


def window_problem(env: Mapping[str, str] | None = None, qt: Path | None = None) -> str | None:
    """Why no window can open here, as one line; None when nothing is known to be wrong."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or not uses_xcb(env):
        return None
    if not env.get("DISPLAY"):
        if env.get("WAYLAND_DISPLAY"):
            return None  # Qt will try Wayland first
        return (
            "there is no display to open a window on (DISPLAY is not set). Run it on a desktop, "
            "or render the window to a file with --screenshot FILE."
        )
    display = env["DISPLAY"]
    if display_reachable(display) is False:
        return (
            f"no X server answers at DISPLAY={display}: start it from a desktop session (or "
            "start the X server), or render the window to a file with --screenshot FILE."
        )
    qt = qt if qt is not None else qt_dir()
    if qt is None:
        return None
    missing = missing_libraries(qt / "plugins" / "platforms" / "libqxcb.so")
    if not missing:
        return None
    own = [m for m in missing if (qt / "lib" / m).exists() or m.startswith("libQt6")]
    system = [m for m in missing if m not in own]
    if system:
        packages = list(dict.fromkeys(package_for(m) for m in system))
        return (
            f"Qt cannot open a window: the system libraries {', '.join(system)} are missing. "
            f"On Debian or Ubuntu: sudo apt-get install {' '.join(packages)}"
        )
    return (
        f"Qt cannot open a window: its own libraries {', '.join(own)} are missing from {qt}; "
        "reinstall PySide6 (uv sync --reinstall-package PySide6-Essentials)."
    )
