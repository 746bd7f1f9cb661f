"""Exploring: the cursor, sliders, class picker, manifold, samples and interpolation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from explorer_helpers import train

from explorer.widgets.views import PAD
from trainer.data.imaging import tile


@pytest.fixture
def trained(qtbot, window):
    train(qtbot, window, epochs=1)
    return window


def test_dragging_the_cursor_changes_the_image(qtbot, trained):
    win = trained
    before = win.preview.array.copy()
    win.map.move_cursor(1.5, -1.0)
    dx, dy = win.session.dims
    assert win.session.z[dx].item() == pytest.approx(1.5)
    assert win.session.z[dy].item() == pytest.approx(-1.0)
    assert not np.allclose(before, win.preview.array, atol=1e-4)
    # the sliders follow the cursor
    assert win.sliders.rows[dx][2].value() == pytest.approx(1.5)


def test_moving_a_slider_changes_the_image(qtbot, trained):
    win = trained
    before = win.preview.array.copy()
    win.sliders.set_value(0, 2.0)
    assert win.session.z[0].item() == pytest.approx(2.0)
    assert not np.allclose(before, win.preview.array, atol=1e-4)
    assert win.map.cursor.pos().x() == pytest.approx(2.0)
    win.sliders.reset()
    assert torch.count_nonzero(win.session.z) == 0
    win.sliders.sample()
    assert torch.count_nonzero(win.session.z) > 0


def test_the_map_follows_a_cursor_moved_off_it(qtbot, trained):
    """z at 4 (a slider's end) put the cursor off the map, and the map stayed where it was."""
    win = trained
    vb = win.map.plot.getPlotItem().getViewBox()
    (x0, x1), _ = vb.viewRange()
    far = x1 + 1.0
    win.sliders.set_value(0, min(far, 4.0))
    win.session.set_z(torch.tensor([far, -far]))
    (x0, x1), (y0, y1) = vb.viewRange()
    assert win.map.cursor.pos().x() == pytest.approx(far)
    assert x0 < far < x1 and y0 < -far < y1


def test_encode_test_image_and_click_point(qtbot, trained):
    win = trained
    s = win.session
    win.sliders.encode_index.setValue(3)
    win.sliders.encode()
    np.testing.assert_allclose(s.z.numpy(), s.encode_test(3), atol=1e-6)
    win.map.jump_to_point(5)
    np.testing.assert_allclose(s.z.numpy(), s.test_latents[5], atol=1e-6)


def test_class_picker_conditions_every_view(qtbot, window):
    win = window
    train(qtbot, win, epochs=1, model="cvae")
    s = win.session
    assert s.conditional and win.preview.classes.isEnabled()
    assert win.preview.classes.isVisible() and win.preview.class_label.isVisible()
    assert win.preview.classes.count() == len(s.class_names) == 5
    before = win.preview.array.copy()
    win.preview.classes.setCurrentIndex(3)
    assert s.cls == 3
    assert not np.allclose(before, win.preview.array, atol=1e-4)
    # the class row draws the same z once per class
    win.tabs.setCurrentIndex(4)
    win.class_row.refresh(force=True)
    assert win.class_row.images.shape[0] == 5
    assert not np.allclose(win.class_row.images[0], win.class_row.images[1], atol=1e-4)
    # the manifold re-decodes for the new class
    win.manifold.refresh(force=True)
    grid3 = win.manifold.images.copy()
    win.preview.classes.setCurrentIndex(1)
    assert win.manifold.dirty
    win.manifold.refresh(force=True)
    assert not np.allclose(grid3, win.manifold.images, atol=1e-4)


def test_class_picker_hidden_for_unconditional_model(window):
    """QA: a disabled "Class: 0: circle" picker read as if the VAE drew circles."""
    assert not window.session.conditional
    assert window.preview.classes.isHidden() and window.preview.class_label.isHidden()
    assert not window.preview.classes.isVisible()
    window.class_row.refresh(force=True)
    assert window.class_row.images is None
    assert "conditional" in window.class_row.names.text()


@pytest.mark.parametrize("n", [5, 12])
def test_manifold_has_n_by_n_cells_of_the_right_size(qtbot, trained, n):
    win = trained
    win.grid_n.setValue(n)
    assert win.manifold.refresh(force=True)
    images = win.manifold.images
    c, h, w = win.session.data.image_shape
    assert images.shape == (n * n, c, h, w)
    assert win.manifold.cell_size() == (h, w)
    arr = win.manifold.item.image
    assert arr.shape[:2] == (n * (h + PAD) + PAD, n * (w + PAD) + PAD)
    # one ImageItem for the whole grid
    import pyqtgraph as pg

    items = [i for i in win.manifold.plot.getPlotItem().items if isinstance(i, pg.ImageItem)]
    assert len(items) == 1
    # the cells differ: the grid really sweeps the latent plane
    assert not np.allclose(images[0], images[-1], atol=1e-3)
    # axis labels are real z values, symmetric around 0
    ticks = win.manifold.values
    assert ticks[0] == pytest.approx(-ticks[-1]) and ticks[0] < 0


def test_manifold_is_throttled_while_training(window):
    m = window.manifold
    m.training = True
    assert m.refresh(force=True)
    m.dirty = True
    assert not m.refresh()  # too soon after the last redraw
    m.training = False
    assert m.refresh()


def test_samples_and_reconstructions(qtbot, trained):
    win = trained
    win.tabs.setCurrentIndex(1)
    win.samples.refresh(force=True)
    first = win.samples.images.copy()
    assert first.shape[0] == 64
    win.samples.resample()
    assert not np.allclose(first, win.samples.images)
    win.tabs.setCurrentIndex(2)
    win.recon.refresh(force=True)
    assert win.recon.inputs.array.shape == win.recon.pane.array.shape
    assert win.recon.images.shape[0] == 2 * 36  # input and reconstruction pairs


def test_interpolation_linear_and_spherical(qtbot, trained):
    win = trained
    v = win.interp
    v.steps.setValue(6)
    v.set_end(0, ("test", 0))
    v.set_end(1, ("test", 7))
    v.refresh(force=True)
    assert v.images.shape[0] == 6
    z = v.latents()
    s = win.session
    np.testing.assert_allclose(z[0].numpy(), s.encode_test(0), atol=1e-5)
    np.testing.assert_allclose(z[-1].numpy(), s.encode_test(7), atol=1e-5)
    lin = v.images.copy()
    v.mode.setCurrentIndex(v.mode.findData("slerp"))
    v.refresh(force=True)
    assert v.images.shape[0] == 6
    assert not np.allclose(lin[2:4], v.images[2:4], atol=1e-6)
    # between two chosen points
    s.set_z(torch.tensor([1.0, 1.0]))
    v.a_here.click()
    s.set_z(torch.tensor([-1.0, 0.5]))
    v.b_here.click()
    v.refresh(force=True)
    np.testing.assert_allclose(v.latents()[0].numpy(), [1.0, 1.0])


def test_dims_pickers_need_two_different_dims(qtbot, window):
    win = window
    win.panel.latent.setValue(4)
    train(qtbot, win, epochs=1)
    assert win.dim_x.count() == 4
    win.dim_x.setCurrentIndex(2)
    assert win.session.dims == (2, 1)
    win.dim_y.setCurrentIndex(2)  # same as x: the axes swap instead
    assert win.session.dims[1] == 2 and win.session.dims[0] != 2
    assert len(win.sliders.rows) == 4


def test_sliders_order_by_kl_and_scale_to_256(qtbot, window):
    win = window
    s = win.session
    cfg = replace(s.model_config, latent_dim=256)
    s.set_model(cfg)
    assert len(win.sliders.rows) == 256
    kl = np.zeros(256)
    kl[200], kl[7] = 5.0, 2.0
    s.set_kl(kl)
    win.sliders.order_box.setChecked(True)
    assert win.sliders.order()[:2] == [200, 7]
    grid = win.sliders.grid
    assert grid.itemAtPosition(0, 0).widget() is win.sliders.rows[200][0]


def test_tile_lays_out_row_major():
    x = np.stack([np.full((1, 2, 3), k / 10, dtype=np.float32) for k in range(5)])
    out = tile(x, ncol=3, padding=1, pad_value=-1)
    assert out.shape == (2 * 3 + 1, 3 * 4 + 1)
    assert out[1, 1] == pytest.approx(0.0) and out[1, 5] == pytest.approx(0.1)
    assert out[4, 1] == pytest.approx(0.3)  # second row starts with image 3
    assert out[4, 9] == -1  # the missing sixth cell stays padding


def test_manifold_axes_label_both_outermost_cells(qtbot, trained):
    """QA: the x axis showed no label at its leftmost tick (y had both ends)."""
    trained.grid_n.setValue(30)
    trained.manifold.refresh(force=True)
    for name in ("bottom", "left"):
        axis = trained.manifold.plot.getPlotItem().getAxis(name)
        assert axis.style["hideOverlappingLabels"] is False
        ticks = axis._tickLevels[0]
        assert ticks[0][1] == f"{-float(ticks[-1][1]):.2f}"  # both ends are labelled


def _drawn(pane) -> float:
    """Spread of the grey levels the pane really paints (0 for an empty picture)."""
    img = pane.grab().toImage()
    w, h = img.width(), img.height()
    return float(
        np.std([img.pixelColor(x, y).lightness() for x in range(0, w, 3) for y in range(0, h, 3)])
    )


def test_class_row_shows_images_after_switching_from_vae_to_cvae(qtbot, window):
    """QA: trained a VAE, looked at the Class row (the hint), switched Type to Conditional
    VAE and trained: the labels appeared but no images, during and after training."""
    win = window
    train(qtbot, win, epochs=1)
    win.tabs.setCurrentIndex(4)
    win.tick()
    assert "needs a conditional VAE" in win.class_row.names.text()
    assert _drawn(win.class_row.pane) < 1.0  # the hint, no picture
    win.panel.model.setCurrentIndex(win.panel.model.findData("cvae"))
    train(qtbot, win, epochs=1)
    win.class_row.refresh(force=True)
    assert [c.toPlainText() for c in win.class_row.captions][:2] == ["circle", "square"]
    assert _drawn(win.class_row.pane) > 5
    assert win.class_row.pane.item.paints > 0


def test_clearing_an_image_pane_keeps_its_view(qtbot):
    from explorer.widgets.common import ImagePane

    pane = ImagePane()
    qtbot.addWidget(pane)
    pane.show()
    pane.clear_image()
    assert pane.view.scene() is pane.scene()
    pane.set_array(np.random.default_rng(0).random((32, 152)))
    assert _drawn(pane) > 5
