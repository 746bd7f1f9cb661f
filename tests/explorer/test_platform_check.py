"""Starting on a machine that lacks Qt's X11 libraries: one line naming them, not an abort."""

from __future__ import annotations

import shutil

import pytest

from explorer import app, platform_check
from explorer.platform_check import (
    display_reachable,
    package_for,
    parse_ldd,
    uses_xcb,
    window_problem,
)


@pytest.fixture(autouse=True)
def _display_answers(monkeypatch):
    """The tests below are about libraries: an X server is taken to answer at DISPLAY."""
    monkeypatch.setattr(platform_check, "display_reachable", lambda d: True)


# what ldd printed for Qt 6.11's xcb plugin on a Debian 12 machine without the two packages
LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007fb8648ca000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x1)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007fb864712000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007fb863bf8000)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
"""


def test_ldd_output_gives_each_missing_library_once():
    assert parse_ldd(LDD_OUTPUT) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


@pytest.mark.parametrize(
    "soname, package",
    [
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libEGL.so.1", "libegl1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libfontconfig.so.1", "libfontconfig1"),
    ],
)
def test_sonames_map_to_debian_packages(soname, package):
    assert package_for(soname) == package


def test_platform_choice():
    assert uses_xcb({"DISPLAY": ":0"})
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"})
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})


def test_missing_system_libraries_are_named_with_the_install_line(monkeypatch, tmp_path):
    monkeypatch.setattr(platform_check, "missing_libraries", lambda lib: parse_ldd(LDD_OUTPUT))
    msg = window_problem({"DISPLAY": ":0"}, qt=tmp_path)
    assert "\n" not in msg
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1 are missing" in msg
    assert msg.endswith("sudo apt-get install libxcb-icccm4 libxcb-keysyms1")
    monkeypatch.setattr(platform_check, "missing_libraries", lambda lib: ["libQt6XcbQpa.so.6"])
    msg = window_problem({"DISPLAY": ":0"}, qt=tmp_path)
    assert "its own libraries libQt6XcbQpa.so.6" in msg and "reinstall PySide6" in msg
    monkeypatch.setattr(platform_check, "missing_libraries", lambda lib: [])
    assert window_problem({"DISPLAY": ":0"}, qt=tmp_path) is None


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_real_ldd_finds_what_a_moved_plugin_cannot_load(tmp_path):
    """The xcb plugin finds Qt's own libraries through its RUNPATH ($ORIGIN/../../lib):
    copied elsewhere it cannot, so ldd really reports them missing."""
    qt = platform_check.qt_dir()
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.exists():
        pytest.skip("this PySide6 has no xcb plugin")
    fake_qt = tmp_path / "Qt"
    (fake_qt / "plugins" / "platforms").mkdir(parents=True)
    (fake_qt / "lib").mkdir()
    shutil.copy(plugin, fake_qt / "plugins" / "platforms")
    missing = platform_check.missing_libraries(fake_qt / "plugins" / "platforms" / "libqxcb.so")
    assert "libQt6XcbQpa.so.6" in missing
    assert "\n" not in window_problem({"DISPLAY": ":0"}, qt=fake_qt)


def test_no_display_is_one_line(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "DISPLAY is not set" in window_problem({})


def test_the_command_exits_with_one_line_instead_of_a_qt_abort(monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(platform_check, "missing_libraries", lambda lib: ["libxcb-icccm.so.4"])
    assert app.main(["--quit-after", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("latent-explorer: Qt cannot open a window") and "libxcb-icccm4" in err


def test_a_display_nobody_serves_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(platform_check, "display_reachable", display_reachable)  # the real one
    assert display_reachable(":7391") is False  # no X server has this number here
    assert display_reachable("localhost:7391") is False
    assert display_reachable("what") is None
    msg = window_problem({"DISPLAY": ":7391"}, qt=tmp_path)
    assert msg.startswith("no X server answers at DISPLAY=:7391") and "\n" not in msg


def test_a_display_that_answers_is_reachable(tmp_path):
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        port = server.getsockname()[1]
        if port < 6000:
            pytest.skip("the free port is below the X range")
        assert display_reachable(f"127.0.0.1:{port - 6000}") is True
    finally:
        server.close()
