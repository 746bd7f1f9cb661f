"""The Draw tab: strokes drawn programmatically move the encoded point and change the
reconstruction; eraser and clear; the canvas takes the model's size and ground."""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QPoint, Qt

from trainer import examples as ex


def _open(qtbot, win, name="mnist-vae-2d"):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    win.tabs.setCurrentIndex(8)
    return win.drawing


def test_strokes_move_the_point_and_change_the_reconstruction(qtbot, window):
    pad = _open(qtbot, window)
    c = pad.canvas
    assert c.array.shape == (28, 28) and c.ground == 0.0 and c.ink == 1.0  # MNIST: dark
    s = window.session
    z0 = s.z.clone()
    c.stroke(14, 5, 14, 23)  # a "1"
    z1 = s.z.clone()
    assert not torch.equal(z0, z1) and pad.encodes == 1
    r1 = pad.recon.array.copy()
    c.stroke(8, 8, 20, 8)  # a bar across: now more like a 7
    assert not torch.equal(s.z, z1)
    assert not np.allclose(r1, pad.recon.array, atol=1e-3)
    # the point is the encoding of what is drawn
    x = torch.from_numpy(np.rint(c.array * 255).astype(np.uint8))[None, None]
    assert torch.allclose(s.z, torch.from_numpy(s.encode(x)[0]))
    # the map's cursor follows
    assert np.allclose(
        (window.map.cursor.pos().x(), window.map.cursor.pos().y()), s.z.numpy(), atol=1e-4
    )
    pad.eraser.setChecked(True)
    c.stroke(0, 8, 27, 8)
    assert c.array[8].max() < 0.5  # erased across
    pad.clear_btn.click()
    assert c.array.max() == 0.0


def test_a_mouse_drag_draws(qtbot, window):
    pad = _open(qtbot, window)
    c = pad.canvas
    c.resize(280, 280)
    qtbot.mousePress(c, Qt.LeftButton, pos=QPoint(140, 40))
    for y in range(40, 250, 20):
        qtbot.mouseMove(c, QPoint(140, y))
    qtbot.mouseRelease(c, Qt.LeftButton, pos=QPoint(140, 250))
    assert c.array[5:24, 14].min() > 0.5 and pad.encodes > 3


def test_a_cvae_encodes_the_drawing_under_the_chosen_class(qtbot, window):
    pad = _open(qtbot, window, "mnist-cvae-2d")
    window.preview.classes.setCurrentIndex(3)
    pad.canvas.stroke(10, 10, 18, 18)
    z3 = window.session.z.clone()
    window.preview.classes.setCurrentIndex(5)
    pad.canvas.stroke(10, 10, 18, 18)
    assert not torch.equal(window.session.z, z3)  # encoded under each class


def test_a_cvae_shows_the_drawings_style_as_every_class(qtbot, window):
    pad = _open(qtbot, window)
    assert not pad.classes_box.isVisible()  # an unconditional model has no class row
    pad = _open(qtbot, window, "mnist-cvae-2d")
    assert pad.classes_box.isVisible()
    s = window.session
    pad.canvas.stroke(8, 6, 20, 22)
    window.tick()
    row = pad.classes.images
    assert row is not None and row.shape[0] == 10  # one image per digit
    # each is the drawing's z decoded as that class
    expect = s.decode(s.z.reshape(1, -1).expand(10, -1), torch.arange(10))
    assert np.allclose(row, expect, atol=1e-5)
    pad.canvas.stroke(4, 14, 24, 14)  # another stroke: the row follows
    window.tick()
    assert not np.allclose(pad.classes.images, row, atol=1e-3)


def test_a_class_change_encodes_the_drawing_again_and_clear_leaves_z(qtbot, window):
    pad = _open(qtbot, window, "mnist-cvae-2d")
    s = window.session
    assert pad.recon.array is None or pad.canvas.blank  # nothing drawn: no reconstruction
    window.preview.classes.setCurrentIndex(0)
    pad.canvas.stroke(10, 6, 20, 6)
    pad.canvas.stroke(20, 6, 12, 24)  # a 7
    z0, r0 = s.z.clone(), pad.recon.array.copy()
    window.preview.classes.setCurrentIndex(7)  # the same drawing, encoded under "7"
    x = torch.from_numpy(np.rint(pad.canvas.array * 255).astype(np.uint8))[None, None]
    assert torch.allclose(s.z, torch.from_numpy(s.encode(x, torch.tensor([7]))[0]))
    assert not torch.equal(s.z, z0) and not np.allclose(pad.recon.array, r0, atol=1e-3)
    z7 = s.z.clone()
    pad.clear_btn.click()  # an empty canvas is no drawing: z stays, no reconstruction
    assert torch.equal(s.z, z7) and pad.recon.array is None


def test_a_message_never_moves_the_canvas_or_the_views(qtbot, window):
    """A message that showed or hid above the views shifted them 33 px: one hiding in the
    middle of a stroke made the rest of the stroke land lower on the canvas."""
    pad = _open(qtbot, window)
    window.banner.hide()
    qtbot.waitUntil(lambda: not window.busy)  # (the settings on the left may still be filling)
    qtbot.wait(50)

    def where():
        return [
            (w.mapTo(window, QPoint(0, 0)), w.size())
            for w in (pad.canvas, window.tabs, window.plots, window.left, window.preview)
        ]

    before = where()
    for text in ("A short message.", "A long message that wraps over lines. " * 12):
        window.show_message(text, "error", actions=[("Do it", lambda: None)])
        qtbot.wait(50)
        assert window.banner.isVisible() and where() == before
        # it is in view, whole, inside the window's middle column
        bar = window.banner.geometry()
        host = window.banner.parentWidget().rect()
        assert host.contains(bar) and bar.height() >= window.banner.minimumSizeHint().height()
        window.banner.hide()
        qtbot.wait(50)
        assert where() == before
