"""A picture of the user's, dropped or pasted, is encoded the way the model's data was
prepared; a file that is no picture says so and changes nothing."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from trainer import examples as ex
from trainer.data.imaging import prepare_image


def _zero(path, size=(300, 200)):
    im = Image.new("RGB", size, "white")  # dark strokes on paper, as people draw
    ImageDraw.Draw(im).ellipse((100, 40, 200, 160), outline="black", width=14)
    im.save(path)
    return path


def _open(qtbot, win, name="mnist-vae-2d"):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)


def test_prepare_image_fits_greys_and_inverts(tmp_path):
    x, done = prepare_image(str(_zero(tmp_path / "z.png")), (1, 28, 28), dark_background=True)
    assert x.shape == (1, 1, 28, 28) and x.dtype.name == "uint8"
    assert "300 x 200 into 28 x 28" in done and "greyscale" in done and "inverted" in done
    assert x[0, 0, 0, 0] == 0 and x.max() > 200  # a dark ground, light strokes
    y, done = prepare_image(str(tmp_path / "z.png"), (3, 32, 32), dark_background=False)
    assert y.shape == (1, 3, 32, 32) and "inverted" not in done


def test_a_dropped_picture_is_encoded_and_a_text_file_is_refused(qtbot, window, tmp_path):
    _open(qtbot, window)
    s = window.session
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(_zero(tmp_path / "zero.png")))])
    before = s.z.clone()
    assert window._picture_from(md)  # what a drop does
    assert not torch.equal(s.z, before) and "inverted" in window.banner.text
    # the point is the encoding of the prepared picture
    x, _ = prepare_image(str(tmp_path / "zero.png"), (1, 28, 28), True)
    assert torch.allclose(s.z, torch.from_numpy(s.encode(torch.from_numpy(x))[0]))
    # its digit is a zero: the map's test zeros lie near it
    lat, lab = s.test_latents, s.test_labels
    import numpy as np

    nearest = lab[np.argsort(((lat - s.z.numpy()) ** 2).sum(1))[:15]]
    assert (nearest == 0).sum() >= 8, nearest
    (tmp_path / "notes.txt").write_text("not a picture")
    z = s.z.clone()
    assert not window.encode_picture(str(tmp_path / "notes.txt"))
    assert "not a picture" in window.banner.text and torch.equal(s.z, z)


def test_a_pasted_picture_is_encoded(qtbot, window, tmp_path):
    _open(qtbot, window, "fashion-vae-2d")
    QApplication.clipboard().setImage(QImage(str(_zero(tmp_path / "p.png", (64, 64)))))
    before = window.session.z.clone()
    assert window.paste_picture()
    assert not torch.equal(window.session.z, before)
    QApplication.clipboard().setText("just words")
    assert not window.paste_picture() and "no picture" in window.banner.text


def test_the_draw_tab_shows_the_pasted_picture_it_reconstructs(qtbot, window, tmp_path):
    """Draw a 1, then paste a picture: the Draw tab showed the drawn 1 beside the pasted
    picture's reconstruction, and the picture as the model saw it nowhere."""
    _open(qtbot, window)
    window.tabs.setCurrentIndex(8)  # Draw
    pad, s = window.drawing, window.session
    pad.canvas.stroke(14, 5, 14, 23)  # a "1"
    assert pad.canvas_box.heading.text() == pad.DRAWN
    QApplication.clipboard().setImage(QImage(str(_zero(tmp_path / "p.png"))))
    assert window.paste_picture()
    x, _ = prepare_image(str(tmp_path / "p.png"), (1, 28, 28), True)
    assert x.max() > 200  # a picture of a zero, not a blank
    # the canvas holds the picture exactly as it was encoded, and says what it is
    assert torch.equal(pad.canvas.as_input(1), torch.from_numpy(x))
    assert pad.canvas_box.heading.text() == pad.PICTURE
    assert torch.allclose(s.z, torch.from_numpy(s.encode(torch.from_numpy(x))[0]))
    # its reconstruction is the decoded z of that picture
    expected = s.decode_current()[0]
    qtbot.waitUntil(lambda: pad.recon.array is not None)
    assert abs(pad.recon.array - expected).max() < 1e-5
    assert "Draw tab" in window.banner.text
    # strokes draw on it; Clear starts a drawing again
    pad.canvas.stroke(4, 4, 4, 10)
    assert pad.canvas.array[5, 4] > 0.5
    pad.clear_btn.click()
    assert pad.canvas.blank and pad.canvas_box.heading.text() == pad.DRAWN


def test_a_colour_model_shows_a_colour_picture_on_its_canvas(qtbot, window, tmp_path):
    window.panel.image_size.setValue(28)
    s = window.session
    from trainer.config import ModelConfig

    s.adopt(ModelConfig(image_shape=(3, 28, 28), latent_dim=2, hidden=16))
    im = Image.new("RGB", (40, 40), (200, 30, 30))
    ImageDraw.Draw(im).rectangle((5, 5, 34, 34), fill=(20, 200, 40))
    im.save(tmp_path / "c.png")
    assert window.encode_picture(str(tmp_path / "c.png"))
    a = window.drawing.canvas.array
    assert a.shape == (28, 28, 3) and a[..., 1].max() > 0.6 and a[..., 0].max() > 0.6
    x, _ = prepare_image(str(tmp_path / "c.png"), (3, 28, 28), s.dark_ground)
    assert torch.equal(window.drawing.canvas.as_input(3), torch.from_numpy(x))


def test_a_pasted_sixteen_bit_picture_is_encoded_as_it_looks(qtbot, window):
    """Qt hands a deep picture over as a 16-bit PNG: its greys are scaled, not clipped to
    white (which would encode a blank page)."""
    import numpy as np
    from PySide6.QtGui import QImage

    _open(qtbot, window)
    a = np.zeros((64, 64), np.uint16)
    a[12:52, 20:44] = 40000
    a[20:44, 28:36] = 0  # a light "0" on black: a 16-bit picture of what MNIST shows
    qimg = QImage(a.tobytes(), 64, 64, 128, QImage.Format_Grayscale16).copy()
    QApplication.clipboard().setImage(qimg)
    assert window.paste_picture()
    flat = Image.fromarray(np.rint(a / 257).astype(np.uint8))
    x, _ = prepare_image(flat, (1, 28, 28), True)
    s = window.session
    assert torch.allclose(s.z, torch.from_numpy(s.encode(torch.from_numpy(x))[0]), atol=1e-5)


def test_postscript_dropped_as_a_png_is_refused_without_running_it(
    qtbot, window, tmp_path, monkeypatch
):
    from PIL import EpsImagePlugin

    calls = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: calls.append(self))
    _open(qtbot, window)
    trap = tmp_path / "Drawing.png"
    trap.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(trap))])
    z = window.session.z.clone()
    assert not window._picture_from(md)
    assert "Drawing.png: not a picture" in window.banner.text and calls == []
    assert torch.equal(window.session.z, z)


def test_a_conditional_model_says_which_class_it_encoded_a_picture_as(qtbot, window, tmp_path):
    """A pasted 7 was encoded as class 0 by the conditional model, without a word."""
    _open(qtbot, window, "mnist-cvae-2d")
    window.preview.classes.setCurrentIndex(3)
    assert window.encode_picture(str(_zero(tmp_path / "z.png")))
    assert "posterior mean as class 3 (the class chosen on the right)" in window.banner.text
