"""An image folder chosen in the window: its Background choice decides what transparent
pixels are put on, is remembered, and a folder that decodes to nothing is refused in the
message bar with what to change."""

from __future__ import annotations

from PIL import Image, ImageDraw
from PySide6.QtCore import QSettings

from explorer.widgets.train_panel import TrainPanel


def _white_strokes(root):
    """Icons drawn in white on transparency: on a white page there is nothing to see."""
    for c in ("up", "down"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            im = Image.new("LA", (24, 24), (255, 0))
            y = 4 + 4 * i if c == "down" else 20 - 4 * i
            ImageDraw.Draw(im).line((2, y, 21, 24 - y), fill=(255, 255), width=3)
            im.save(root / c / f"{i}.png")
    return root


def _choose_folder(win, root, background=None):
    p = win.panel
    p.source.setCurrentIndex(p.source.findData("folder"))
    if background is not None:
        p.background.setCurrentIndex(p.background.findData(background))
    p.root.setText(str(root))
    p.dataSpecChanged.emit()


def test_a_folder_that_decodes_blank_says_which_background_to_choose(qtbot, window, tmp_path):
    win = window
    root = _white_strokes(tmp_path / "icons")
    _choose_folder(win, root)
    assert win.panel.background.isVisible()  # offered with the folder
    qtbot.waitUntil(lambda: win.banner.level == "error" and not win.busy, timeout=10000)
    text = win.banner.text
    assert "all 8 images" not in text and "a single colour (white)" in text, text
    assert "Background: Black under Data" in text and "--background" not in text
    _choose_folder(win, root, "black")
    qtbot.waitUntil(
        lambda: (
            not win.busy
            and win.session.data_spec is not None
            and win.session.data_spec.background == "black"
        ),
        timeout=10000,
    )
    x = win.session.data.test_x.numpy()
    assert x[:, 0, 0, 0].max() == 0 and x.max() == 255  # white strokes on black
    assert win.panel.data_spec().background == "black"


def test_the_background_choice_is_remembered(qtbot, tmp_path):
    path = tmp_path / "s.ini"
    a = TrainPanel()
    qtbot.addWidget(a)
    a.source.setCurrentIndex(a.source.findData("folder"))
    a.root.setText("/data/icons")
    a.background.setCurrentIndex(a.background.findData("black"))
    a.save_settings(QSettings(str(path), QSettings.IniFormat))
    b = TrainPanel()
    qtbot.addWidget(b)
    b.load_settings(QSettings(str(path), QSettings.IniFormat))
    assert b.data_spec().background == "black"
    b.source.setCurrentIndex(b.source.findData("shapes"))
    assert b.data_spec().background == "white"  # (a folder's choice only)
