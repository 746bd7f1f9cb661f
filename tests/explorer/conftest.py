"""Fixtures for the explorer tests: an isolated settings file and a small, fast window."""

from __future__ import annotations

import pytest
from explorer_helpers import SHAPES
from PySide6.QtCore import QSettings

from explorer import dialogs, theme
from explorer.window import MainWindow


class Asked:
    """Stands in for the Save / Discard / Cancel dialog: records each question and gives
    ``answer`` (a test that wants another answer sets it)."""

    def __init__(self) -> None:
        self.questions: list[tuple[str, str]] = []
        self.answer = dialogs.DISCARD
        self.probe = None  # called while the question is open; its results go to ``seen``
        self.seen: list = []

    def __call__(self, parent, action: str, model: str, saved_to=None, kept=None) -> str:
        self.questions.append((action, model))
        self.kept = kept
        if self.probe is not None:
            self.seen.append(self.probe())
        return self.answer


@pytest.fixture(autouse=True)
def asked(monkeypatch) -> Asked:
    """No real modal dialog ever opens in a test (it would wait for a click forever)."""
    a = Asked()
    monkeypatch.setattr(dialogs, "ask_save", a)
    return a


class AskedFineTune:
    """Stands in for "Fine-tune on other data?": records each question, answers ``answer``."""

    def __init__(self) -> None:
        self.questions: list[tuple[str, str, str]] = []
        self.answer = True

    def __call__(self, parent, model: str, own: str, chosen: str) -> bool:
        self.questions.append((model, own, chosen))
        return self.answer


@pytest.fixture(autouse=True)
def asked_fine_tune(monkeypatch) -> AskedFineTune:
    a = AskedFineTune()
    monkeypatch.setattr(dialogs, "ask_fine_tune", a)
    return a


@pytest.fixture(scope="session", autouse=True)
def _isolated_qsettings(tmp_path_factory):
    """Any QSettings() built without a file lands in a temporary folder."""
    root = str(tmp_path_factory.mktemp("qsettings"))
    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        for scope in (QSettings.UserScope, QSettings.SystemScope):
            QSettings.setPath(fmt, scope, root)
    yield


@pytest.fixture
def settings_path(tmp_path):
    path = tmp_path / "settings.ini"
    s = QSettings(str(path), QSettings.IniFormat)
    s.setValue("train/source", "shapes")
    s.setValue("train/shapes_count", SHAPES)
    s.setValue("train/epochs", 2)
    s.sync()
    return path


@pytest.fixture
def make_window(qtbot, qapp, settings_path):
    """Build windows on the shapes data; each is closed (threads stopped) after the test."""
    theme.apply(qapp)

    def make(path=settings_path, wait_data=True, recovery=None) -> MainWindow:
        win = MainWindow(QSettings(str(path), QSettings.IniFormat), recovery_folder=recovery)
        qtbot.addWidget(win)
        win.show()
        if wait_data:
            qtbot.waitUntil(lambda: win.session.model is not None and not win.busy, timeout=20000)
        return win

    return make


@pytest.fixture
def window(make_window) -> MainWindow:
    return make_window()
