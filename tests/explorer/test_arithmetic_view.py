"""The Arithmetic tab: three test images and z_a - z_b + z_c decoded, in a row."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from trainer import examples as ex


def test_the_row_the_result_and_use_as_z(qtbot, window, tmp_path):
    assert window.open_checkpoint(ex.example_path("mnist-vae-20d"))
    qtbot.waitUntil(lambda: not window.busy, timeout=10000)
    window.tabs.setCurrentIndex(7)
    v = window.arithmetic
    assert v.refresh(force=True)
    assert v.images.shape == (4, 1, 28, 28) and [c.toPlainText() for c in v.captions][3] == (
        "= a − b + c"
    )
    s = window.session
    want = s.decode(v.result_z.reshape(1, -1))[0]
    assert np.allclose(v.images[3], want, atol=1e-6)
    v.use_btn.click()
    assert torch.allclose(s.z, v.result_z)
    before = [b.value() for b in v.index]
    v.random_btn.click()
    assert [b.value() for b in v.index] != before
    assert "Test images #" in v.caption.text()
    assert window.export_view("arithmetic", tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.size[0] >= 600  # magnified for a report
