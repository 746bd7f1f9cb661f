"""Latency of the explorer window, idle and while a model trains in the background.

Not a test: prints a table. Run with

    QT_QPA_PLATFORM=offscreen uv run python bench/bench_explorer.py [--dataset shapes]
    QT_QPA_PLATFORM=offscreen uv run python bench/bench_explorer.py --smoke

``--smoke`` measures each row a few times only (one launch of each kind, in this process, and
a second of training): to check that the script still runs; its numbers mean nothing.

Measures
  * launch to window shown (a fresh interpreter, as a user would start it)
  * a first launch: main window built to the bundled example explorable (map, manifold drawn)
  * slider move -> preview image repainted (p50 / p95), idle and while training
  * 20x20 manifold grid re-decoded and repainted, idle and while training
  * the mouse over a point of a 70,000-point map: picked, thumbnail, z, repainted (p50 / p95)
  * event-loop lag (a 10 ms timer's lateness) p50 / p99 / max while training at full speed
  * the session's first Train: click to "preparing…" on the progress bar, and to the first
    training snapshot (model built, first steps taken)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fresh import python  # noqa: E402
from machine import cpu_name  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from explorer import theme  # noqa: E402
from explorer.window import MainWindow  # noqa: E402
from trainer.data import debian_fashion_available  # noqa: E402
from trainer.loop.threads import training_threads  # noqa: E402

COUNTS = {  # how many times each row is measured (seconds for the lag rows)
    "launches": 3,
    "grid": 30,
    "tab": 30,
    "posterior": 10,
    "drawing": 100,
    "film": 50,
    "pca": 20,
    "hover": 200,
    "lag idle": 3.0,
    "lag training": 6.0,
}
SMOKE = {
    "launches": 1,
    "trials": 5,
    "grid": 3,
    "tab": 3,
    "posterior": 2,
    "drawing": 3,
    "film": 3,
    "pca": 2,
    "hover": 5,
    "lag idle": 0.3,
    "lag training": 1.0,
}
TARGETS = {
    "slider idle p95": 10.0,
    "slider training p95": 50.0,
    "grid idle": 40.0,
    "grid training": 40.0,
    "lag p99": 50.0,
    "launch": 4000.0,
    "first example": 1000.0,
    "hover p95": 50.0,
}
HOVER_POINTS = 70_000  # all of MNIST


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def launch_time(settings: str, here: bool = False) -> tuple[float, float, float]:
    """In a fresh process, as ``latent-explorer`` starts: ms from process start to the
    splash shown, to the main window shown, and the wall time of the whole process
    (``here``: in this process, for ``--smoke``)."""
    code = f"""
import time; t0 = time.perf_counter()
import os; os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import sys; sys.path.insert(0, {str(ROOT)!r})
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QSettings
from explorer import theme
from explorer.app import make_splash
app = QApplication.instance() or QApplication([]); theme.apply(app)
splash = make_splash(); splash.show()
while not (splash.windowHandle() and splash.windowHandle().isExposed()):
    app.processEvents()
t_splash = time.perf_counter()
from explorer.window import MainWindow
w = MainWindow(QSettings({settings!r}, QSettings.IniFormat))
w.show(); splash.finish(w)
while not (w.windowHandle() and w.windowHandle().isExposed()):
    app.processEvents()
app.processEvents()
print((t_splash - t0) * 1e3, (time.perf_counter() - t0) * 1e3)
w.close()
"""
    t = time.perf_counter()
    out = python(code, here=here)
    wall = (time.perf_counter() - t) * 1e3
    splash, shown = (float(v) for v in out.split()[-2:])
    return splash, shown, wall


def first_launch_time(folder: str, here: bool = False) -> tuple[float, float]:
    """In a fresh process with nothing remembered (a first launch, which opens the bundled
    MNIST example), torch already imported: ms from building the main window to its being
    shown, and to the example explorable (its model in, all of the map's test digits
    encoded and the manifold decoded)."""
    code = f"""
import time, os; os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import sys; sys.path.insert(0, {str(ROOT)!r})
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QSettings
from explorer import theme
from explorer.window import MainWindow
app = QApplication.instance() or QApplication([]); theme.apply(app)
import tempfile  # a new settings file each time: closing the window writes one
ini = tempfile.mktemp(suffix=".ini", dir={folder!r})
t0 = time.perf_counter()
w = MainWindow(QSettings(ini, QSettings.IniFormat))
w.show()
while not (w.windowHandle() and w.windowHandle().isExposed()):
    app.processEvents()
t_shown = time.perf_counter()
s = w.session
while not (s.example and s.data is not None and s.test_latents is not None
           and len(s.test_latents) == len(s.test_index) and w.manifold.images is not None):
    app.processEvents()
    if time.perf_counter() - t0 > 30:
        raise SystemExit("the example did not open within 30 s")
print((t_shown - t0) * 1e3, (time.perf_counter() - t0) * 1e3)
w.ask_on_close = False
w.close()
"""
    shown, ready = (float(v) for v in python(code, here=here).split()[-2:])
    return shown, ready


def wait_paint(app, item, before: int, timeout: float = 2.0) -> None:
    end = time.perf_counter() + timeout
    while item.paints <= before and time.perf_counter() < end:
        app.processEvents()


def pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def slider_latency(app, win, n: int) -> list[float]:
    item = win.preview.pane.item
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        v = float(rng.uniform(-3, 3))
        before = item.paints
        t0 = time.perf_counter()
        win.sliders.set_value(0, v)
        wait_paint(app, item, before)
        out.append((time.perf_counter() - t0) * 1e3)
        pump(app, 0.01)
    return out


def grid_latency(app, win, n: int) -> list[float]:
    m = win.manifold
    win.grid_n.setValue(20)
    out = []
    for _ in range(n):
        before = m.item.paints
        t0 = time.perf_counter()
        m.refresh(force=True)
        wait_paint(app, m.item, before)
        out.append((time.perf_counter() - t0) * 1e3)
        pump(app, 0.05)
    return out


def tab_latency(app, win, tab: int, item, act, n: int, prepare=None) -> list[float]:
    """ms from ``act(k)`` to ``item`` repainted, n times, with tab ``tab`` shown
    (``prepare(k)``, untimed, runs before each)."""
    win.tabs.setCurrentIndex(tab)
    pump(app, 0.2)
    out = []
    for k in range(n):
        if prepare is not None:
            prepare(k)
            pump(app, 0.02)
        before = item.paints
        t0 = time.perf_counter()
        act(k)
        wait_paint(app, item, before)
        out.append((time.perf_counter() - t0) * 1e3)
        pump(app, 0.05)
    win.tabs.setCurrentIndex(0)
    pump(app, 0.2)
    return out


def traversal_latency(app, win, n: int) -> list[float]:
    """The Traversals tab re-decoded and repainted (as after a move of z)."""
    v = win.traversals
    return tab_latency(app, win, 5, v.item, lambda k: v.refresh(force=True), n)


def posterior_latency(app, win, n: int) -> list[float]:
    """The Posterior vs prior tab recomputed (2,000 test images, 10 samples of q each) and
    repainted, as after new weights."""
    v = win.posterior
    return tab_latency(app, win, 6, v.item, lambda k: v.refresh(force=True), n)


def pca_grid_latency(app, win, n: int) -> list[float]:
    """The 20x20 manifold on the principal plane (a 20-D example), decoded and repainted."""
    from trainer import examples as ex

    win.run.confirm_discard = lambda action: True  # a benchmark: nothing to keep
    assert win.open_checkpoint(ex.example_path("mnist-vae-20d"))
    while win.busy:
        app.processEvents()
    win.session.refresh_test_latents(force=True)
    win.session.set_pca(True)
    out = grid_latency(app, win, n)
    win.session.set_pca(False)
    return out


def map_hover_latency(app, n: int, points: int = HOVER_POINTS) -> list[float]:
    """The mouse over another point of a non-linear map of ``points`` test images: picked,
    its thumbnail shown, z moved to its code, the map and the decoded preview repainted.

    The map's positions are a synthetic mixture of ten clusters (the shape of a UMAP map
    of MNIST) given by a stand-in mapping function: the hover's cost depends on how many
    points there are and how they lie, not on how they were computed."""
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    from explorer.map_state import MapState
    from explorer.state import Session
    from explorer.widgets.latent_map import LatentMap
    from explorer.widgets.views import PreviewPane
    from trainer.config import ModelConfig
    from trainer.data import ImageData
    from trainer.maps import Projection

    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.integers(0, 10, points))
    x = torch.from_numpy(rng.integers(0, 256, (points, 1, 28, 28), dtype=np.uint8))
    centres = rng.normal(size=(10, 2)) * 8
    xy = (centres[y.numpy()] + rng.normal(size=(points, 2))).astype(np.float32)
    s = Session()
    s.set_data(ImageData("synthetic", x[:10], x, y[:10], y, [str(k) for k in range(10)]))
    s.adopt(ModelConfig(latent_dim=20))
    state = MapState(s)
    state.project = lambda codes, method, **kw: Projection(method, xy, ("1", "2"), None)
    box = QWidget()
    lay = QHBoxLayout(box)
    view, preview = LatentMap(s, state), PreviewPane(s)
    lay.addWidget(view, 2)
    lay.addWidget(preview, 1)
    box.resize(900, 600)
    box.show()
    state.set_method("umap")
    while state.busy or state.points is None:
        app.processEvents()
    pump(app, 0.3)
    assert view.point_count() == points
    out = []
    for i in rng.integers(0, points, n):
        scene = view.vb.mapViewToScene(pg_point(*xy[i]))
        t0 = time.perf_counter()
        view._mouse_moved(scene)  # what the scene's sigMouseMoved calls
        app.processEvents()  # the repaints it asked for: map, thumbnail, preview
        out.append((time.perf_counter() - t0) * 1e3)
        assert view.hovered >= 0
    state.shutdown(1000)
    box.close()
    return out


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(float(x), float(y))


def drawing_latency(app, win, n: int) -> list[float]:
    """A stroke on the Draw tab to the drawing encoded, z moved and the preview repainted
    (the canvas is cleared, untimed, before each, so that every stroke changes it)."""
    c = win.drawing.canvas
    return tab_latency(
        app,
        win,
        8,
        win.preview.pane.item,
        lambda k: c.stroke(6, 4 + k % 20, 22, 23 - k % 20),
        n,
        prepare=lambda k: c.clear(),
    )


def film_latency(app, win, n: int) -> list[float]:
    """The Film tab's scrubber moved to another frame -> that frame drawn and repainted."""
    v = win.film_view

    def act(k):
        frames = len(v.frames)
        v.slider.setValue((v.slider.value() + 1 + k % 3) % frames)

    return tab_latency(app, win, 10, v.pane.item, act, n)


def loop_lag(app, seconds: float) -> list[float]:
    """Lateness of a 10 ms precise timer, in ms."""
    lags: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def fire():
        now = clock.nsecsElapsed()
        lags.append(max(0.0, (now - last[0]) / 1e6 - 10.0))
        last[0] = now

    t = QTimer()
    t.setTimerType(Qt.PreciseTimer)
    t.setInterval(10)
    t.timeout.connect(fire)
    t.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.0005)
    t.stop()
    return lags[1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--dataset", default="fashion-mnist" if debian_fashion_available() else "shapes"
    )
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="each row a few times only: checks that the script runs; measures nothing",
    )
    args = ap.parse_args()
    n = dict(COUNTS, trials=args.trials)
    if args.smoke:
        n.update(SMOKE)

    tmp = tempfile.mkdtemp(prefix="bench-explorer-")
    settings = str(Path(tmp) / "settings.ini")
    s = QSettings(settings, QSettings.IniFormat)
    s.setValue("train/source", args.dataset)
    s.setValue("train/epochs", 1000)
    s.setValue("train/latent", 2)
    s.sync()

    launches = [launch_time(settings, args.smoke) for _ in range(n["launches"])]
    splash_ms = statistics.median(r[0] for r in launches)
    shown_ms = statistics.median(r[1] for r in launches)
    wall = statistics.median(r[2] for r in launches)
    firsts = [first_launch_time(tmp, args.smoke) for _ in range(n["launches"])]
    first_ms = statistics.median(r[1] for r in firsts)

    app = QApplication.instance() or QApplication([])
    theme.apply(app)
    win = MainWindow(QSettings(settings, QSettings.IniFormat))
    win.resize(1480, 920)
    win.show()
    while win.busy or win.session.model is None:
        app.processEvents()
    pump(app, 0.5)

    res = {}
    res["slider idle"] = slider_latency(app, win, n["trials"])
    res["grid idle"] = grid_latency(app, win, n["grid"])
    res["traversals idle"] = traversal_latency(app, win, n["tab"])
    res["posterior idle"] = posterior_latency(app, win, n["posterior"])
    res["drawing idle"] = drawing_latency(app, win, n["drawing"])
    res["lag idle"] = loop_lag(app, n["lag idle"])

    t_click = time.perf_counter()
    assert win.start_training()
    preparing_ms = (time.perf_counter() - t_click) * 1e3
    assert win.panel.progress.format() == "preparing…"
    while win.run.latest is None:
        app.processEvents()
    first_snapshot_ms = (time.perf_counter() - t_click) * 1e3
    pump(app, 1.0)
    step0, t0 = win.run.latest.step, time.perf_counter()
    res["lag training"] = loop_lag(app, n["lag training"])
    res["slider training"] = slider_latency(app, win, n["trials"])
    res["grid training"] = grid_latency(app, win, n["grid"])
    res["traversals training"] = traversal_latency(app, win, n["tab"])
    res["posterior training"] = posterior_latency(app, win, n["posterior"])
    res["drawing training"] = drawing_latency(app, win, n["drawing"])
    res["film training"] = film_latency(app, win, n["film"])
    steps = win.run.latest.step - step0
    secs = time.perf_counter() - t0
    ips = win.run.latest.images_per_second
    gui_threads = torch.get_num_threads()
    data = win.session.data
    win.run.stop()
    while win.busy:
        app.processEvents()
    res["film idle"] = film_latency(app, win, n["film"])
    film = win.film.film
    film_ms = 1e3 * film.seconds / max(1, film.taken)
    film_share = film.seconds / max(1e-9, win.run.outcomes[-1].fit.seconds + film.seconds)
    film_line = (
        f"{film.taken} frames taken, {len(film)} kept ({film.describe()}); "
        f"taking them cost {film.seconds:.2f} s, {100 * film_share:.1f}% of the run"
    )
    res["pca grid idle"] = pca_grid_latency(app, win, n["pca"])
    res["map hover"] = map_hover_latency(app, n["hover"])
    win.ask_on_close = False  # a benchmark: nothing to keep
    win.close()

    cpu = cpu_name()
    print()
    print("Latent Explorer — GUI latency benchmark")
    print(f"machine : {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"Qt platform {QApplication.platformName()}"
    )
    print(
        f"data    : {data.name} ({len(data.train_x):,} train), model: 2-D VAE, MLP 400, "
        f"batch 128; training thread uses {training_threads()} torch thread(s), "
        f"GUI thread sees {gui_threads}"
    )
    print(
        f"training: {ips:,.0f} img/s at the last snapshot, {steps / secs:,.0f} steps/s "
        "while being measured"
    )
    print()
    rows = [
        ("launch to first window (splash) shown", "median", splash_ms, None,
         TARGETS["launch"], f"fresh process, {len(launches)} runs"),
        ("launch to main window shown", "median", shown_ms, None, TARGETS["launch"],
         f"torch import included; process spawn-to-exit {wall:,.0f} ms"),
        ("first launch: window built -> example's map and manifold drawn", "median", first_ms,
         None, TARGETS["first example"],
         "runs: " + " / ".join(f"{v:,.0f}" for _, v in firsts) + "; window shown at "
         + " / ".join(f"{v:,.0f}" for v, _ in firsts)),
        ("slider move -> image repainted, idle", "p50/p95",
         pct(res["slider idle"], 50), pct(res["slider idle"], 95), TARGETS["slider idle p95"], ""),
        ("slider move -> image repainted, training", "p50/p95",
         pct(res["slider training"], 50), pct(res["slider training"], 95),
         TARGETS["slider training p95"], ""),
        ("20x20 manifold decode + repaint, idle", "p50/p95",
         pct(res["grid idle"], 50), pct(res["grid idle"], 95), TARGETS["grid idle"], ""),
        ("20x20 manifold decode + repaint, training", "p50/p95",
         pct(res["grid training"], 50), pct(res["grid training"], 95),
         TARGETS["grid training"], ""),
        ("traversals (a row per dimension, 11 values) decode + repaint, idle", "p50/p95",
         pct(res["traversals idle"], 50), pct(res["traversals idle"], 95), TARGETS["grid idle"],
         ""),
        ("traversals decode + repaint, training", "p50/p95", pct(res["traversals training"], 50),
         pct(res["traversals training"], 95), TARGETS["grid training"], ""),
        ("posterior vs prior (2,000 images x 10 samples) + repaint, idle", "p50/p95",
         pct(res["posterior idle"], 50), pct(res["posterior idle"], 95), None,
         "redrawn at most once a second while training"),
        ("posterior vs prior + repaint, training", "p50/p95", pct(res["posterior training"], 50),
         pct(res["posterior training"], 95), None, ""),
        ("a stroke on the Draw tab -> encoded, preview repainted, idle", "p50/p95",
         pct(res["drawing idle"], 50), pct(res["drawing idle"], 95), TARGETS["slider idle p95"],
         ""),
        ("a stroke on the Draw tab -> encoded, preview repainted, training", "p50/p95",
         pct(res["drawing training"], 50), pct(res["drawing training"], 95),
         TARGETS["slider training p95"], ""),
        ("film: scrubbed to another frame -> drawn + repainted, idle", "p50/p95",
         pct(res["film idle"], 50), pct(res["film idle"], 95), TARGETS["grid idle"], ""),
        ("film: scrubbed -> drawn + repainted, training", "p50/p95",
         pct(res["film training"], 50), pct(res["film training"], 95), TARGETS["grid training"],
         ""),
        ("film: a frame taken on the training thread (mean)", "mean", film_ms, None, None,
         film_line),
        ("20x20 manifold on the principal plane (20-D example), idle", "p50/p95",
         pct(res["pca grid idle"], 50), pct(res["pca grid idle"], 95), TARGETS["grid idle"],
         ""),
        (f"map hover, {HOVER_POINTS:,} points", "p50/p95", pct(res["map hover"], 50),
         pct(res["map hover"], 95), TARGETS["hover p95"],
         "picked, thumbnail, z moved, map and preview repainted (non-linear map)"),
        ("event-loop lag, idle", "p50/p99",
         pct(res["lag idle"], 50), pct(res["lag idle"], 99), TARGETS["lag p99"], ""),
        ("event-loop lag, training at full speed", "p50/p99",
         pct(res["lag training"], 50), pct(res["lag training"], 99), TARGETS["lag p99"],
         f"max {max(res['lag training']):.1f} ms over {len(res['lag training'])} ticks"),
        ("first Train: click -> 'preparing…' shown", "once", preparing_ms, None, None,
         "the progress bar says so before the click returns"),
        ("first Train: click -> first training snapshot", "once", first_snapshot_ms, None,
         None, "model built, optimiser made, first steps taken"),
    ]  # fmt: skip
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'stat':<8} {'ms':>15}  {'target':>8}  ok  note")
    print("-" * (w + 48))
    for name, stat, a, b, target, note in rows:
        val = f"{a:.1f}" if b is None else f"{a:.1f} / {b:.1f}"
        worst = a if b is None else b
        ok = "-" if target is None else ("yes" if worst <= target else "NO")
        goal = "-" if target is None else "<= " + format(target, "g")
        print(f"{name:<{w}}  {stat:<8} {val:>15}  {goal:>8}  {ok:<3} {note}")
    print()


if __name__ == "__main__":
    main()
