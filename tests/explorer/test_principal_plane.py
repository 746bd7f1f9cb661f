"""The principal plane in the window: offered for a latent larger than 2; the map shows the
encoded test set on it, the manifold decodes the Figure 4 grid laid on it, and the cursor,
a click on a cell and z agree."""

from __future__ import annotations

import numpy as np
import torch

from trainer import examples as ex
from trainer.latent import principal_plane


def _open(qtbot, win, name):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)
    win.session.refresh_test_latents(force=True)


def test_offered_only_for_a_latent_larger_than_2(qtbot, window):
    _open(qtbot, window, "mnist-vae-2d")
    assert not window.plane_mode.model().item(1).isEnabled()
    window.session.set_pca(True)
    assert not window.session.pca
    _open(qtbot, window, "mnist-vae-20d")
    assert window.plane_mode.model().item(1).isEnabled()


def test_map_manifold_and_cursor_on_the_principal_plane(qtbot, window):
    _open(qtbot, window, "mnist-vae-20d")
    s = window.session
    window.plane_mode.setCurrentIndex(1)
    assert s.pca and not window.dim_x.isEnabled()
    plane = s.plane()
    want = principal_plane(s.test_latents)
    assert torch.allclose(plane.axes, want.axes) and plane.names == want.names
    # the map: every test point at its principal coordinates (unit spread by construction)
    xs = np.concatenate([sc.data["x"] for sc in window.map.scatters])
    ys = np.concatenate([sc.data["y"] for sc in window.map.scatters])
    assert len(xs) == 2000 and abs(xs.std() - 1) < 0.01 and abs(ys.std() - 1) < 0.01
    assert window.map.plot.getPlotItem().getAxis("bottom").labelText.startswith("PC1")
    # the manifold: the plane's grid, decoded
    assert window.manifold.refresh(force=True)
    n = window.manifold.n
    grid = s.decode(plane.grid(n))
    assert np.allclose(window.manifold.images, grid, atol=1e-6)
    # dragging the cursor puts z on the plane at those coordinates
    window.map.move_cursor(1.0, -0.5)
    assert np.allclose(s.plane_xy(), (1.0, -0.5), atol=1e-5)
    assert torch.allclose(s.z, plane.lift(torch.tensor([[1.0, -0.5]]))[0], atol=1e-5)
    # a click on a manifold cell moves z to that cell's point of the plane
    v = window.manifold.values
    window.manifold.refresh(force=True)
    s.move_on_plane(float(v[3]), float(v[n - 1 - 5]))
    assert np.allclose(s.plane_xy(), (v[3], v[n - 6]), atol=1e-5)
    # the grid depends on the plane alone, not on z
    window.manifold.refresh(force=True)
    s.set_z(torch.randn(20))
    assert not window.manifold.dirty
    # back to two dimensions: the dims grid again
    window.plane_mode.setCurrentIndex(0)
    assert not s.pca and window.dim_x.isEnabled() and window.manifold.dirty


def test_a_larger_latent_opens_on_its_principal_plane_and_names_its_axes(qtbot, window):
    """The 20-D example opened on z0 / z1: a shapeless blob."""
    _open(qtbot, window, "mnist-vae-20d")
    s, picker = window.session, window.plane_picker
    assert s.pca and window.plane_mode.currentIndex() == 1
    # the axes say what they are, in place of pickers that would say z0 and z1
    assert not window.dim_x.isVisible() and picker.axes.isVisible()
    assert picker.axes.text().startswith("x PC1 (σ = ") and "y PC2 (σ = " in picker.axes.text()
    _open(qtbot, window, "mnist-vae-2d")
    assert not s.pca and window.dim_x.isVisible() and not picker.axes.isVisible()
    assert window.dim_x.currentText() == "z0" and window.dim_y.currentText() == "z1"
