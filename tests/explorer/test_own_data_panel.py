"""The window's Data box offers NumPy files and CelebA: the rows each needs, the spec it
gives, the face size remembered, and the data loaded (or refused in one line)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings

from explorer.widgets.train_panel import TrainPanel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
from test_data_celeba import make_celeba  # noqa: E402


def _rows(p):
    f = p._data_form
    return {
        name: f.isRowVisible(w)
        for name, w in (
            ("images", p.images_row),
            ("labels", p.labels_row),
            ("folder", p.root_row),
            ("size", p.image_size),
            ("face", p.face_size),
        )
    }


def test_numpy_files_and_celeba_show_their_rows_and_give_their_spec(qtbot, tmp_path):
    p = TrainPanel()
    qtbot.addWidget(p)
    p.source.setCurrentIndex(p.source.findData("npz"))
    assert _rows(p) == dict(images=True, labels=True, folder=False, size=False, face=False)
    assert ".npz" in p.images.placeholderText()
    p.images.setText(str(tmp_path / "x.npz"))
    spec = p.data_spec()
    assert spec.source == "npz" and spec.images == str(tmp_path / "x.npz")
    p.source.setCurrentIndex(p.source.findData("celeba"))
    assert _rows(p) == dict(images=False, labels=False, folder=True, size=False, face=True)
    assert "CelebA" in p.root.placeholderText()
    p.root.setText(str(tmp_path))
    spec = p.data_spec()
    assert (spec.source, spec.root, spec.image_size) == ("celeba", str(tmp_path), 64)
    p.face_size.setCurrentIndex(p.face_size.findData("128"))
    assert p.data_spec().image_size == 128
    path = tmp_path / "s.ini"
    p.save_settings(QSettings(str(path), QSettings.IniFormat))
    b = TrainPanel()
    qtbot.addWidget(b)
    b.load_settings(QSettings(str(path), QSettings.IniFormat))
    assert b.data_spec().image_size == 128 and b.data_spec().source == "celeba"
    b.show_data_spec(spec.__class__("celeba", root="/faces", image_size=32))
    assert b.data_spec().image_size == 32 and b.root.text() == "/faces"


def _choose(win, source, **fields):
    p = win.panel
    p.source.setCurrentIndex(p.source.findData(source))
    for name, value in fields.items():
        getattr(p, name).setText(value)
    p.dataSpecChanged.emit()


def test_the_window_loads_celeba_and_refuses_a_bad_numpy_file(qtbot, window, tmp_path):
    win = window
    make_celeba(tmp_path / "celeba")
    _choose(win, "celeba", root=str(tmp_path / "celeba"))
    qtbot.waitUntil(
        lambda: (
            not win.busy
            and win.session.data_spec is not None
            and win.session.data_spec.source == "celeba"
        ),
        timeout=20000,
    )
    assert win.session.data.image_shape == (3, 64, 64)
    assert len(win.session.data.test_x) == 2
    np.savez(tmp_path / "bad.npz", a=np.zeros((4, 8, 8)))
    _choose(win, "npz", images=str(tmp_path / "bad.npz"))
    qtbot.waitUntil(lambda: win.banner.level == "error" and not win.busy, timeout=20000)
    assert "holds no images; name them x or images" in win.banner.text
    assert "\n" not in win.banner.text
