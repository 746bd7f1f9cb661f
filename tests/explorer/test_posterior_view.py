"""The Posterior vs prior tab: the holes of an autoencoder, histograms by KL, export."""

from __future__ import annotations

import numpy as np
from PIL import Image

from trainer import examples as ex
from trainer.posterior import picture


def _show(qtbot, win, name):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    win.session.refresh_test_latents(force=True)
    win.tabs.setCurrentIndex(6)
    assert win.posterior.refresh(force=True)
    return win.posterior


def test_an_autoencoder_shows_its_holes(qtbot, window, tmp_path):
    v = _show(qtbot, window, "mnist-ae-2d")
    # drawn the way up the map is: the plot's y axis points up, so its first row is the
    # bottom of the plane (most of this autoencoder's codes lie below z1 = 0)
    assert np.array_equal(v.item.image, picture(v.result)[::-1])
    bottom, top = v.result.posterior[: v.result.bins // 2], v.result.posterior[v.result.bins // 2 :]
    assert bottom.sum() > top.sum()  # rows of result.posterior: b increasing
    assert v.result.hole_mass > 0.4
    assert f"{v.result.hole_mass:.1%}" in v.note.text() and "codes" in v.note.text()
    assert [d for d, _ in v.hist_plots] == [0, 1]
    assert window.export_view("posterior vs prior", tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (6 * v.result.bins, 6 * v.result.bins)


def test_a_20d_model_shows_its_most_informative_dimensions(qtbot, window):
    v = _show(qtbot, window, "fashion-vae-20d")
    kl = window.session.kl_per_dim
    shown = [d for d, _ in v.hist_plots]
    assert len(shown) == 12 and shown[0] == int(kl.argmax())
    assert v.result.hole_mass < 0.1  # a VAE's posterior fills the prior
    # it opened on the principal plane; on two dimensions too
    axis = window.posterior.plot.getPlotItem().getAxis("bottom")
    assert axis.labelText.startswith("PC1")
    window.plane_mode.setCurrentIndex(0)
    assert v.dirty and v.refresh(force=True)
    assert axis.labelText.startswith("z0")
