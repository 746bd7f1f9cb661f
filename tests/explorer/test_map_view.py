"""The latent map's methods, background computing, picking and selection (explorer.map_state,
explorer.widgets.latent_map), on a small model and synthetic test images.

The non-linear maps are stood in for by a mapping function of the same shape as
``trainer.maps.project`` (a fixed non-linear warp of the codes, optionally slow), so these
tests drive the threading, the cache and the view without UMAP's or t-SNE's libraries.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from explorer.map_state import MapState
from explorer.state import Session
from explorer.widgets import latent_map
from explorer.widgets.latent_map import PICK_PX, SPRITE_MAX, LatentMap
from trainer import maps
from trainer.config import ModelConfig
from trainer.data import ImageData
from trainer.latent import MAP_POINTS
from trainer.maps import Projection


class FakeMaps:
    """``project`` for every method: the real one for planes; for "umap" / "tsne" a warp of
    the codes' first two values (not a plane: ``plane`` is None). ``delay``: seconds spent
    in small steps, reporting progress and honouring ``cancelled`` like a real map."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[str, int]] = []
        self.started = threading.Event()

    def __call__(self, codes, method, *, progress=None, cancelled=None, **kw):
        if method not in maps.NONLINEAR:
            return maps.project(codes, method, progress=progress, cancelled=cancelled, **kw)
        self.calls.append((method, len(codes)))
        self.started.set()
        steps = 50
        for k in range(steps):
            if cancelled is not None and cancelled():
                raise maps.Cancelled
            if progress is not None:
                progress(k / steps, f"step {k}")
            time.sleep(self.delay / steps)
        c = np.asarray(codes, dtype=np.float64)
        xy = np.stack([np.tanh(c[:, 0]) * 5 + c[:, 1] ** 2, np.sin(c[:, 1]) * 5], 1)
        return Projection(method, xy.astype(np.float32), ("UMAP 1", "UMAP 2"), None)


def _data(n: int, classes: int = 3, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % classes
    return ImageData("toy", x[:50], x, y[:50], y, [f"c{k}" for k in range(classes)])


_STATES: list[MapState] = []


@pytest.fixture(autouse=True)
def _stop_maps():
    """Every map's thread ends with its test (a QThread destroyed running aborts)."""
    yield
    while _STATES:
        assert _STATES.pop().shutdown(10000)


def _map(qtbot, n: int = 2500, d: int = 5, delay: float = 0.0):
    torch.manual_seed(0)
    s = Session()
    s.set_data(_data(n))
    s.adopt(ModelConfig(latent_dim=d, hidden=16))
    s.refresh_test_latents()
    state = MapState(s)
    _STATES.append(state)
    fake = FakeMaps(delay)
    state.project = fake
    view = LatentMap(s, state)
    qtbot.addWidget(view)
    view.resize(520, 520)
    view.show()
    qtbot.waitExposed(view)
    state.update()
    return s, state, view, fake


def _wait_done(qtbot, state, timeout=20000):
    qtbot.waitUntil(lambda: not state.busy, timeout=timeout)


def _pixel(view, x, y):
    """Where map position (x, y) is on the plot's viewport (for qtbot's mouse)."""
    scene = view.vb.mapViewToScene(QPointF(x, y))
    return view.plot.mapFromScene(scene)


def test_method_switch_follows_the_session_plane_and_maps_all_test_images(qtbot):
    s, state, view, fake = _map(qtbot)
    assert state.method == "pca" and s.pca  # a 5-D latent opens on its principal plane
    assert view.method.currentData() == "pca"
    assert view.point_count() == MAP_POINTS  # a linear map of the subset, live
    view.method.setCurrentIndex(view.method.findData("axes"))
    assert not s.pca and state.method == "axes"
    assert np.allclose(view.scatter.data["x"], s.test_latents[:, 0])
    s.set_pca(True)  # the plane picker beside the map: the map follows
    assert state.method == "pca" and view.method.currentData() == "pca"
    # UMAP: every test image, computed in the background, then shown
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    assert fake.calls == [("umap", 2500)]
    assert view.point_count() == 2500 and not state.points.projection.invertible
    assert view.whole.isChecked() and not view.whole.isEnabled()
    assert s.pca  # the manifold keeps an invertible plane, and the map says which
    assert "manifold shows the principal plane" in view.note.text()
    assert view.plot.getPlotItem().getAxis("bottom").labelText == "UMAP 1"
    # the codes mapped are every test image's posterior mean, in row order
    want = s.encode(s.data.test_x[:100])
    assert np.allclose(state.points.codes[:100], want, atol=1e-5)
    assert np.array_equal(state.points.rows, np.arange(2500))
    # a linear map of the whole test set, on request
    view.method.setCurrentIndex(view.method.findData("pca"))
    assert view.point_count() == MAP_POINTS
    view.whole.setChecked(True)
    _wait_done(qtbot, state)
    assert view.point_count() == 2500 and state.points.projection.invertible


def test_a_method_that_cannot_run_says_why(qtbot, monkeypatch):
    s, state, view, fake = _map(qtbot)
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # as if it were not installed
    state.project = maps.project
    view.method.setCurrentIndex(view.method.findData("tsne"))
    _wait_done(qtbot, state)
    assert "t-SNE" in view.notice.text() and view.notice_row.isVisible()
    assert "openTSNE, which is not installed" in view.notice.text()
    view.method.setCurrentIndex(view.method.findData("custom"))
    assert "two directions" in view.notice.text()


def test_progress_and_cancel_go_back_to_the_map_on_screen(qtbot):
    s, state, view, fake = _map(qtbot, delay=30.0)
    before = view.scatter.data["x"].copy()
    seen = []
    state.progressed.connect(lambda f, t: seen.append(f))
    view.method.setCurrentIndex(view.method.findData("umap"))
    assert state.busy and view.busy_row.isVisible()
    qtbot.waitUntil(lambda: any(f > 0.3 for f in seen), timeout=20000)
    assert view.progress.value() > 300 and "UMAP" in view.progress.text()
    t0 = time.perf_counter()
    qtbot.mouseClick(view.cancel, Qt.LeftButton)
    _wait_done(qtbot, state, timeout=5000)
    assert time.perf_counter() - t0 < 3  # cooperative: the map stops within its next step
    assert not view.busy_row.isVisible()
    assert state.method == "pca" and view.method.currentData() == "pca"
    assert np.array_equal(view.scatter.data["x"], before)


def test_while_training_a_nonlinear_map_goes_stale_and_recomputes_on_request(qtbot):
    s, state, view, fake = _map(qtbot)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    xy = state.points.xy.copy()
    assert not view.notice_row.isVisible()
    # a snapshot's new weights (as training hands them over)
    w = {k: v + 0.05 * torch.randn_like(v) for k, v in s.model.state_dict().items()}
    s.load_weights(w)
    s.refresh_test_latents()
    assert state.stale and not state.busy and len(fake.calls) == 1
    assert view.notice_row.isVisible() and view.recompute.isVisible()
    assert "trained since" in view.notice.text()
    assert np.array_equal(state.points.xy, xy)
    s.load_weights({k: v + 0.05 for k, v in w.items()})  # and another: still not recomputed
    assert state.stale and not state.busy and len(fake.calls) == 1
    qtbot.mouseClick(view.recompute, Qt.LeftButton)
    _wait_done(qtbot, state)
    assert len(fake.calls) == 2 and not state.stale and not view.notice_row.isVisible()
    assert not np.allclose(state.points.xy, xy)
    # a linear map follows the weights live
    view.method.setCurrentIndex(view.method.findData("pca"))
    pca = view.scatter.data["x"].copy()
    s.load_weights({k: v - 0.1 for k, v in w.items()})
    s.refresh_test_latents()
    assert not state.stale and not np.allclose(view.scatter.data["x"], pca)
    # back to UMAP with the same weights as the last one: from memory, not computed again
    s.load_weights(w)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    view.method.setCurrentIndex(view.method.findData("pca"))
    view.method.setCurrentIndex(view.method.findData("umap"))
    assert not state.busy and len(fake.calls) == 3


def test_click_hover_and_a_cursor_between_points_on_a_nonlinear_map(qtbot):
    s, state, view, fake = _map(qtbot)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    pts = state.points
    # a real mouse click on a point moves z to its code
    i = int(np.argmin(np.abs(pts.xy - np.median(pts.xy, 0)).sum(1)))
    qtbot.mouseClick(view.plot.viewport(), Qt.LeftButton, pos=_pixel(view, *pts.xy[i]))
    k = view.pick(*pts.xy[i])
    assert k >= 0 and np.allclose(s.z.numpy(), pts.codes[k])
    # hovering another point: its image beside the mouse, z at its code
    j = (k + 1) % len(pts)
    view.hover(j, _pixel(view, *pts.xy[j]))
    assert view.thumb.isVisible() and view.thumb.pixmap().width() > 0
    assert np.allclose(s.z.numpy(), pts.codes[j]) and not view.approximate
    assert np.allclose((view.cursor.pos().x(), view.cursor.pos().y()), pts.xy[j], atol=1e-5)
    view.hover(-1)
    assert not view.thumb.isVisible()
    # the cursor dragged into empty space: z from the nearest codes, said to be approximate
    far = pts.xy.max(0) + 0.5
    view.move_cursor(*far)
    d = np.sqrt(((pts.xy - far) ** 2).sum(1))
    near = np.argsort(d)[:8]
    want = (pts.codes[near] / d[near, None] ** 2).sum(0) / (1 / d[near] ** 2).sum()
    assert np.allclose(s.z.numpy(), want, atol=1e-5)
    assert view.approximate and "approximate" in view.note.text()
    assert np.allclose((view.cursor.pos().x(), view.cursor.pos().y()), far)  # it stays
    # z set elsewhere (a slider): the cursor goes to the point with the nearest code
    s.set_z(pts.codes[7] + 1e-3)
    assert not view.approximate
    assert np.allclose((view.cursor.pos().x(), view.cursor.pos().y()), pts.xy[7], atol=1e-5)


def test_a_plane_map_lifts_the_cursor_exactly_and_custom_axes(qtbot):
    s, state, view, fake = _map(qtbot)
    view.move_cursor(0.5, -1.0)
    assert np.allclose(s.plane_xy(), (0.5, -1.0), atol=1e-5) and not view.approximate
    u, v = np.eye(5, dtype=np.float32)[2], np.eye(5, dtype=np.float32)[4] * 2
    state.set_custom_axes(u, v)
    assert state.method == "custom" and view.method.currentData() == "custom"
    lat = s.test_latents
    want = maps.project(lat, "custom", axes=(u, v)).xy
    assert np.allclose(view.scatter.data["x"], want[:, 0], atol=1e-5)
    assert "manifold shows the principal plane" in view.note.text()
    view.move_cursor(1.0, 0.5)
    plane = state.points.projection.plane
    assert np.allclose(plane.project(s.z.reshape(1, -1))[0].numpy(), (1.0, 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="two directions of 5"):
        state.set_custom_axes(u[:3], v)


def test_shift_click_lasso_and_escape_select_test_images(qtbot):
    s, state, view, fake = _map(qtbot)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    pts = state.points
    i = int(np.argmin(((pts.xy - np.median(pts.xy, 0)) ** 2).sum(1)))
    at = _pixel(view, *pts.xy[i])
    z = s.z.clone()
    qtbot.mouseClick(view.plot.viewport(), Qt.LeftButton, Qt.ShiftModifier, at)
    k = view.pick(*pts.xy[i])
    assert list(s.selection.rows) == [int(pts.rows[k])]
    assert torch.equal(s.z, z)  # a shift-click selects; it does not move z
    assert view.count.text().startswith("1 selected") and len(view.chosen.data) == 1
    qtbot.mouseClick(view.plot.viewport(), Qt.LeftButton, Qt.ShiftModifier, at)
    assert len(s.selection) == 0 and not view.count.text()
    # a lasso around the middle of the map: exactly the points inside it
    (x0, y0), (x1, y1) = np.percentile(pts.xy, 30, 0), np.percentile(pts.xy, 70, 0)
    poly = np.array([[x0, y0], [x1, y0], [(x0 + x1) / 2, y1]])
    view.lasso_begin(*poly[0])
    for p in poly[1:]:
        view.lasso_extend(*p)
    view.lasso_end()
    # the same by the signs of three cross products (a triangle), not the even-odd rule
    a, b, c = poly
    p = pts.xy.astype(np.float64)

    def side(u, v):
        return (v[0] - u[0]) * (p[:, 1] - u[1]) - (v[1] - u[1]) * (p[:, 0] - u[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    want = np.sort(pts.rows[((s1 > 0) & (s2 > 0) & (s3 > 0)) | ((s1 < 0) & (s2 < 0) & (s3 < 0))])
    assert len(want) > 20 and np.array_equal(s.selection.rows, want)
    assert len(view.chosen.data) == len(want) and view.count.text().startswith(f"{len(want)} ")
    assert "Ctrl-drag" in view.count.toolTip()
    # a real Ctrl-drag draws one (starting away from the cursor, which a drag would move)
    s.selection.clear()
    view.move_cursor(*(pts.xy.max(0) + 1))
    corners = [_pixel(view, x0, y0), _pixel(view, x1, y0), _pixel(view, x1, y1)]
    vp = view.plot.viewport()
    qtbot.mousePress(vp, Qt.LeftButton, Qt.ControlModifier, corners[0])
    for c in corners[1:] + corners[:1]:
        qtbot.wait(40)  # pyqtgraph drops mouse moves that come faster than it repaints
        ev_move(vp, c)
    qtbot.mouseRelease(vp, Qt.LeftButton, Qt.ControlModifier, corners[0])
    assert len(s.selection) > 0
    # Esc clears it
    qtbot.keyClick(view, Qt.Key_Escape)
    assert len(s.selection) == 0


def ev_move(widget, pos):
    """A mouse move with the left button and Ctrl held (qtbot.mouseMove sends no buttons)."""
    from PySide6.QtCore import QPointF as P
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = P(pos)
    ev = QMouseEvent(
        QMouseEvent.MouseMove,
        local,
        P(widget.mapToGlobal(pos)),
        Qt.LeftButton,
        Qt.LeftButton,
        Qt.ControlModifier,
    )
    QApplication.sendEvent(widget, ev)


def test_70000_points_are_drawn_and_picked_exactly(qtbot):
    s, state, view, fake = _map(qtbot, n=70000, d=4)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state, timeout=60000)
    pts = state.points
    assert view.point_count() == 70000 and len(view.scatters) == 1
    rng = np.random.default_rng(1)
    pw, ph = view.vb.viewPixelSize()
    r = PICK_PX * max(pw, ph)
    picks = hits = 0
    for q in np.concatenate([pts.xy[rng.integers(0, 70000, 150)], rng.normal(size=(150, 2)) * 4]):
        got = view.pick(*q)
        d2 = ((pts.xy.astype(np.float64) - q) ** 2).sum(1)
        j = int(d2.argmin())
        if d2[j] <= r * r:
            hits += 1
            assert got >= 0 and np.isclose(d2[got], d2[j])
        else:
            assert got == -1
        picks += 1
    assert hits > 150
    # images when zoomed in: only those in view, never more than SPRITE_MAX
    view.sprites_box.setChecked(True)
    assert view.sprite_count() == 0 and "zoom in" in view.count.text()
    c = pts.xy[0]
    w = 0.004  # the untrained model's codes lie close together
    view.vb.setRange(xRange=(c[0] - w, c[0] + w), yRange=(c[1] - w, c[1] + w))
    view.update_sprites()
    (x0, x1), (y0, y1) = view.vb.viewRange()
    inside = (
        (pts.xy[:, 0] >= x0) & (pts.xy[:, 0] <= x1) & (pts.xy[:, 1] >= y0) & (pts.xy[:, 1] <= y1)
    ).sum()
    assert 0 < view.sprite_count() == inside <= SPRITE_MAX


def test_bookmark_and_restore(qtbot):
    s, state, view, fake = _map(qtbot)
    u, v = np.eye(5, dtype=np.float32)[1], np.eye(5, dtype=np.float32)[3]
    state.set_custom_axes(u, v)
    view.vb.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
    view._user_zoomed()
    view._range_changed()
    b = state.bookmark()
    import json

    b = json.loads(json.dumps(b))  # JSON-safe
    assert b["method"] == "custom" and b["custom_axes"][0] == [0, 1, 0, 0, 0]
    view.method.setCurrentIndex(view.method.findData("axes"))
    s.set_dims(2, 3)
    state.restore(b)
    assert state.method == "custom" and s.dims == (0, 1)
    assert np.allclose(state.custom_axes[1], v)
    (x0, x1), _ = view.vb.viewRange()
    assert abs(x0 + 1) < 0.3 and abs(x1 - 1) < 0.3
    # a plane's bookmark (the session's plane changes on the way) keeps its view too
    view.vb.setRange(xRange=(0.5, 2.5), yRange=(-1, 1), padding=0)
    view._user_zoomed()
    view._range_changed()
    b2 = json.loads(json.dumps(state.bookmark()))
    state.set_method("pca")
    state.set_method("axes")
    state.restore({**b2, "method": "pca"})
    assert state.method == "pca" and s.pca
    (x0, x1), _ = view.vb.viewRange()
    assert abs(x0 - 0.5) < 0.3 and abs(x1 - 2.5) < 0.3
    for bad, field in [
        ({"method": "umapp"}, "map.method"),
        ({"dims": [0, 9]}, "map.dims"),
        ({"whole": "yes"}, "map.whole"),
        ({"custom_axes": [[1, 2], [3, 4]]}, "map.custom_axes"),
        ({"method": "custom", "custom_axes": None}, "map.custom_axes"),
        ({"view_range": [[1, 0], [0, 1]]}, "map.view_range"),
    ]:
        with pytest.raises(ValueError, match=field):
            state.restore({**b, **bad})
    assert state.method == "pca"  # a refused bookmark changes nothing


def test_the_window_owns_the_map_and_stops_it_on_close(qtbot, window):
    st = window.map_state
    assert window.map.state is st and window.map.method.count() == 5
    st.project = FakeMaps(delay=60.0)
    window.map.method.setCurrentIndex(window.map.method.findData("umap"))
    assert st.busy
    t0 = time.perf_counter()
    assert window.shutdown(3000)
    assert time.perf_counter() - t0 < 3


def test_snapshots_during_a_computation_do_not_restart_it(qtbot):
    """Training goes on while a map is computed: it is shown when done, marked stale."""
    s, state, view, fake = _map(qtbot, delay=1.5)
    view.method.setCurrentIndex(view.method.findData("umap"))
    assert fake.started.wait(10)
    w = s.model.state_dict()
    for k in range(5):
        s.load_weights({n: v + 0.01 * (k + 1) for n, v in w.items()})
    _wait_done(qtbot, state)
    assert len(fake.calls) == 1
    assert state.points is not None and not state.points.projection.invertible
    assert state.stale and view.recompute.isVisible()


def test_the_whole_test_sets_principal_plane_lifts_the_cursor_exactly(qtbot):
    s, state, view, fake = _map(qtbot)
    view.whole.setChecked(True)
    _wait_done(qtbot, state)
    pts = state.points
    assert len(pts) == 2500 and pts.projection.invertible
    view.move_cursor(0.7, 0.2)
    got = pts.projection.plane.project(s.z.reshape(1, -1))[0].numpy()
    assert np.allclose(got, (0.7, 0.2), atol=1e-4)
    assert np.allclose((view.cursor.pos().x(), view.cursor.pos().y()), (0.7, 0.2), atol=1e-4)


def test_training_marks_a_nonlinear_map_stale_in_the_window(qtbot, window):
    from explorer_helpers import train

    st, view = window.map_state, window.map
    fake = FakeMaps()
    st.project = fake
    view.method.setCurrentIndex(view.method.findData("tsne"))
    _wait_done(qtbot, st)
    assert len(fake.calls) == 1 and not st.stale
    snaps = []
    window.session.stepped.connect(lambda: snaps.append(1))
    train(qtbot, window, epochs=1)  # a new model: its map once, at its start; never again
    assert len(snaps) > 2
    assert st.stale and len(fake.calls) == 2
    assert "trained since" in view.notice.text() and view.recompute.isVisible()
    qtbot.mouseClick(view.recompute, Qt.LeftButton)
    _wait_done(qtbot, st)
    assert len(fake.calls) == 3 and not st.stale


def test_colour_images_show_as_thumbnails_and_images(qtbot):
    s = Session()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 3, 28, 28), generator=g, dtype=torch.uint8)
    x[5] = 0
    x[5, 0] = 255  # pure red
    s.set_data(ImageData("colour", x[:10], x, None, None, []))
    s.adopt(ModelConfig(latent_dim=3, hidden=16, image_shape=(3, 28, 28)))
    s.refresh_test_latents()
    state = MapState(s)
    _STATES.append(state)
    view = LatentMap(s, state)
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    state.update()
    assert view.point_count() == 300 and not view.legend.isVisible()
    assert view.whole.text() == "all 300 test images"
    i = int(np.flatnonzero(state.points.rows == 5)[0])
    view.hover(i, _pixel(view, *state.points.xy[i]))
    img = view.thumb.pixmap().toImage()
    c = img.pixelColor(img.width() // 2, img.height() // 2)
    assert img.width() > 40 and (c.red(), c.green(), c.blue()) == (255, 0, 0)


def test_choosing_a_plane_while_a_map_computes_stops_it(qtbot):
    s, state, view, fake = _map(qtbot, delay=30.0)
    view.method.setCurrentIndex(view.method.findData("umap"))
    assert fake.started.wait(10)
    view.method.setCurrentIndex(view.method.findData("axes"))
    _wait_done(qtbot, state, timeout=5000)
    assert state.method == "axes" and state.points.projection.method == "axes"
    assert not view.busy_row.isVisible() and view.point_count() == MAP_POINTS


def test_a_real_tsne_map_in_the_window(qtbot, window):
    pytest.importorskip("openTSNE")
    st, view = window.map_state, window.map
    view.method.setCurrentIndex(view.method.findData("tsne"))
    _wait_done(qtbot, st, timeout=120000)
    assert st.problem == "" and st.points is not None
    n = len(window.session.data.test_x)
    assert view.point_count() == n and st.points.projection.method == "tsne"
    assert not st.points.projection.invertible and np.isfinite(st.points.xy).all()
    assert view.plot.getPlotItem().getAxis("bottom").labelText == "t-SNE 1"


def test_export_the_map_as_npz_csv_and_a_projector_folder(qtbot, window, tmp_path, monkeypatch):
    from explorer import exports

    st, view = window.map_state, window.map
    pts = st.points
    assert pts is not None and view.export.isEnabled()
    # through the map's Export menu and the save dialog
    monkeypatch.setattr(
        exports.QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "codes"), "")
    )
    view.export.menu().actions()[0].trigger()
    with np.load(tmp_path / "codes.npz") as z:
        assert np.allclose(z["codes"], pts.codes) and np.allclose(z["xy"], pts.xy)
        assert np.array_equal(z["labels"], pts.labels)
    assert exports.export_map_codes(window, tmp_path / "codes.csv")
    lines = (tmp_path / "codes.csv").read_text().splitlines()
    assert lines[0].startswith("x,y,label,class,z0") and len(lines) == len(pts) + 1
    monkeypatch.setattr(
        exports.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "tb")
    )
    view.export.menu().actions()[1].trigger()
    sub = tmp_path / "tb" / "00000" / "default"
    assert (tmp_path / "tb" / "projector_config.pbtxt").is_file()
    assert len((sub / "tensors.tsv").read_text().splitlines()) == len(pts)
    assert (sub / "sprite.png").is_file()
    # a wrong extension: one line, no file
    assert not exports.export_map_codes(window, tmp_path / "codes.txt")
    assert not (tmp_path / "codes.txt").exists()
    assert "written as .npz or .csv" in window.banner.history[-1][1]
    # no map: said before any dialog
    st.set_custom_axes(np.zeros(window.session.latent_dim), np.ones(window.session.latent_dim))
    assert st.points is None and not view.export.isEnabled()
    asked = []
    monkeypatch.setattr(exports.QFileDialog, "getSaveFileName", lambda *a, **k: asked.append(1))
    exports.export_map_dialog(window, "codes")
    assert not asked and "no map to export" in view.export.toolTip()
    assert "no map to export" in window.banner.history[-1][1]


def test_a_computed_map_comes_back_from_the_disk_cache(qtbot, monkeypatch):
    """Another session (a new MapState) maps the same codes the same way: from the cache."""
    s, state, view, fake = _map(qtbot, n=300)
    computed = []

    def counting(codes, method, **kw):
        computed.append(method)
        return fake(codes, method, **kw)

    monkeypatch.setattr(maps, "project", counting)
    state.project = maps.MapCache().project
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    first = state.points.xy.copy()
    again = MapState(s)
    _STATES.append(again)
    assert again.project.__self__.folder == state.project.__self__.folder
    again.set_method("umap")
    _wait_done(qtbot, again)
    assert computed == ["umap"] and np.array_equal(again.points.xy, first)


def test_escape_in_the_window_clears_the_map_selection_else_hides_the_message(qtbot, window):
    """Esc is a window-wide shortcut: with the map's plot focused it clears the selection;
    elsewhere it hides the message bar (as before)."""
    from PySide6.QtGui import QShortcut

    (esc,) = [sc for sc in window.findChildren(QShortcut) if sc.key().toString() == "Esc"]
    fired = []
    esc.activated.connect(lambda: fired.append(1))
    window.activateWindow()
    s, plot = window.session, window.map.plot
    s.selection.add(np.array([0, 1, 2]))
    window.show_message("a message", "info")
    plot.setFocus()
    qtbot.waitUntil(plot.hasFocus)
    qtbot.keyClick(plot, Qt.Key_Escape)
    assert fired == [1]  # through the window's shortcut, not the map's keyPressEvent
    assert len(s.selection) == 0
    assert window.banner.isVisible()  # the message stays: Esc was the map's
    window.tabs.setFocus()
    qtbot.waitUntil(window.tabs.hasFocus)
    s.selection.add(np.array([3]))
    qtbot.keyClick(window.tabs, Qt.Key_Escape)
    assert fired == [1, 1] and len(s.selection) == 1 and not window.banner.isVisible()


def test_the_maps_header_never_widens_the_map_or_the_window(qtbot, window, monkeypatch):
    """The selection's count and the images' "zoom in" note appear without moving anything."""
    win, view = window, window.map
    win.resize(win.minimumSizeHint().width(), win.height())  # as narrow as it goes
    qtbot.wait(50)
    widths = win.width(), view.width(), view.plot.width()
    win.session.selection.add(np.arange(150))
    qtbot.wait(50)
    assert "150 selected" in view.count.text()
    assert (win.width(), view.width(), view.plot.width()) == widths
    view.auto_fit = True
    view.fit_view()
    monkeypatch.setattr(latent_map, "SPRITE_MAX", 50)  # the window's data has 200 points
    view.sprites_box.setChecked(True)  # too many points in view: "zoom in: N in view"
    qtbot.wait(50)
    assert "zoom in" in view.count.text() and view.sprite_count() == 0
    assert (win.width(), view.width(), view.plot.width()) == widths


def test_hovering_a_nonlinear_map_previews_z_and_a_click_commits_it(qtbot):
    """Crossing the map on the way elsewhere leaves z (and the directions' amounts) as they
    were; a click on a point keeps its code."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from explorer.directions import Direction, Directions

    s, state, view, fake = _map(qtbot)
    dirs = Directions(s)
    view.keep_during_preview(dirs)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    pts = state.points
    vec = np.zeros(s.latent_dim, dtype=np.float32)
    vec[0] = 1.0
    dirs.add(Direction("d", vec, "A", "B", 1, 1))
    dirs.set_amount(0, 0.5)
    z0 = s.z.clone()
    i = int(np.argmin(np.abs(pts.xy - np.median(pts.xy, 0)).sum(1)))
    for k in (i, i + 1):  # the mouse over two points: z follows each (a preview)
        view.hover(k, _pixel(view, *pts.xy[k]))
        assert np.allclose(s.z.numpy(), pts.codes[k])
    view.hover(-1)  # between points, still over the map: z stays at the last one
    assert np.allclose(s.z.numpy(), pts.codes[i + 1])
    QApplication.sendEvent(view, QEvent(QEvent.Leave))  # the mouse left without a click
    assert torch.equal(s.z, z0) and dirs.amounts == [0.5]
    assert np.allclose(
        (view.cursor.pos().x(), view.cursor.pos().y()), pts.xy[state.nearest_point(z0.numpy())]
    )
    # a click commits: leaving keeps the clicked point's code
    view.hover(i, _pixel(view, *pts.xy[i]))
    qtbot.mouseClick(view.plot.viewport(), Qt.LeftButton, pos=_pixel(view, *pts.xy[i]))
    k = view.pick(*pts.xy[i])
    QApplication.sendEvent(view, QEvent(QEvent.Leave))
    assert np.allclose(s.z.numpy(), pts.codes[k])


def test_progress_names_the_method_once_elides_in_the_middle_and_counts_seconds(qtbot):
    """A stage that reports nothing for a while still shows the seconds going by."""
    import re

    s, state, view, fake = _map(qtbot)
    release = threading.Event()

    def slow(codes, method, *, progress=None, cancelled=None, **kw):
        if method not in maps.NONLINEAR:
            return maps.project(codes, method, progress=progress, cancelled=cancelled, **kw)
        progress(0.5, "UMAP: laying out")
        while not release.wait(0.05):
            if cancelled():
                raise maps.Cancelled
        raise maps.Cancelled

    state.project = slow
    view.method.setCurrentIndex(view.method.findData("umap"))
    qtbot.waitUntil(lambda: "laying out" in view.progress.text(), timeout=10000)
    text = view.progress.text()
    assert text.count("UMAP") == 1 and text.startswith("UMAP: laying out"), text
    qtbot.waitUntil(lambda: bool(re.search(r" [2-9] s$", view.progress.text())), timeout=5000)
    assert view.progress.text().startswith("UMAP: laying out")  # no progress came: it lives
    view.progress.setMaximumWidth(110)  # too narrow for the whole line: cut in the middle
    qtbot.waitUntil(lambda: "…" in view.progress.text(), timeout=3000)
    t = view.progress.text()
    assert t.startswith("UM") and t.endswith(" s"), t
    release.set()
    _wait_done(qtbot, state)


def test_reopening_an_example_shows_its_map_without_computing_it_again(
    qtbot, window, tmp_path, monkeypatch
):
    from trainer import examples as ex

    computed = []

    def counting(codes, method, **kw):
        computed.append(method)
        return FakeMaps()(codes, method, **kw)

    monkeypatch.setattr(maps, "project", counting)
    st = window.map_state
    st.project = maps.MapCache(tmp_path / "maps").project
    path = ex.example_path(ex.FIRST)  # the MNIST example on its bundled test images
    assert window.open_checkpoint(path)
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    window.map.method.setCurrentIndex(window.map.method.findData("umap"))
    _wait_done(qtbot, st)
    first = st.points.xy.copy()
    assert computed == ["umap"]
    assert window.open_checkpoint(path)  # the same example again, in the same session
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    _wait_done(qtbot, st)
    assert computed == ["umap"] and np.array_equal(st.points.xy, first)
    # the window's own codes of the test images may differ in their last bits from one
    # encoding to the next (other batches, other threads): the map's codes do not
    st.set_method("axes")
    qtbot.waitUntil(lambda: not window.busy, timeout=20000)
    s = window.session
    lat = np.asarray(s.test_latents, dtype=np.float32)
    s.test_latents = np.nextafter(lat, np.full_like(lat, np.inf))
    s._latents_version = s.weights_version  # and they are current
    st._cache.clear()  # not the maps kept in memory: the disk's, by the codes' bytes
    st.set_method("umap")
    _wait_done(qtbot, st)
    assert computed == ["umap"] and np.array_equal(st.points.xy, first)


def test_the_whole_test_set_box_and_the_saved_view_agree(qtbot):
    """Ticked is saved as whole: true; a restored view ticks or clears the box."""
    s, state, view, fake = _map(qtbot)
    qtbot.mouseClick(view.whole, Qt.LeftButton)
    _wait_done(qtbot, state)
    assert view.whole.isChecked() and state.bookmark()["whole"] is True
    saved_whole = state.bookmark()
    qtbot.mouseClick(view.whole, Qt.LeftButton)
    _wait_done(qtbot, state)
    assert not view.whole.isChecked() and state.bookmark()["whole"] is False
    saved_sample = state.bookmark()
    state.restore(saved_whole)  # the same method: the box follows all the same
    _wait_done(qtbot, state)
    assert view.whole.isChecked() and view.point_count() == 2500
    state.restore(saved_sample)
    assert not view.whole.isChecked() and state.bookmark()["whole"] is False
    qtbot.mouseClick(view.whole, Qt.LeftButton)  # what the box shows is what is saved
    assert state.bookmark()["whole"] is True
    _wait_done(qtbot, state)


def test_a_restored_nonlinear_map_shows_its_progress_on_the_empty_map(qtbot):
    torch.manual_seed(0)
    s = Session()
    s.set_data(_data(600))
    s.adopt(ModelConfig(latent_dim=5, hidden=16))
    s.refresh_test_latents()
    state = MapState(s)
    _STATES.append(state)
    fake = FakeMaps(delay=1.5)
    state.project = fake
    view = LatentMap(s, state)
    qtbot.addWidget(view)
    view.resize(520, 520)
    view.show()
    qtbot.waitExposed(view)
    state.restore({"method": "umap", "dims": [0, 1], "whole": False})  # a saved view, opened
    assert state.busy and view.point_count() == 0
    qtbot.waitUntil(lambda: view.waiting.isVisible(), timeout=3000)
    assert "Computing the UMAP map" in view.waiting.text() and "%" in view.waiting.text()
    _wait_done(qtbot, state)
    assert view.point_count() == 600 and not view.waiting.isVisible()


def test_no_tooltip_covers_the_hover_thumbnail(qtbot):
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip

    s, state, view, fake = _map(qtbot)
    view.method.setCurrentIndex(view.method.findData("umap"))
    _wait_done(qtbot, state)
    pts = state.points
    tip = view.cursor.toolTip()
    assert "Drag to move z" in tip
    view.hover(3, _pixel(view, *pts.xy[3]))  # z and the cursor move to the hovered point
    assert view.thumb.isVisible() and view.cursor.toolTip() == ""
    at = view.thumb.geometry().center()
    QToolTip.showText(view.mapToGlobal(at), "stale", view)
    ev = QHelpEvent(QEvent.ToolTip, at, view.mapToGlobal(at))
    assert QApplication.sendEvent(view, ev)  # taken: no tooltip of the map's shows
    qtbot.waitUntil(lambda: not QToolTip.isVisible(), timeout=2000)
    view.hover(-1)
    assert view.cursor.toolTip() == tip
