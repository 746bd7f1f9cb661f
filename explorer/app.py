"""The ``latent-explorer`` command (also ``python -m explorer``).

PyTorch takes seconds to import, so the command shows a splash window first (Qt alone
is quick) and builds the main window, which needs torch, behind it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QSplashScreen

from explorer import __version__, theme

APP_NAME = "Latent Explorer"
ORG = "latent-explorer"


def make_splash() -> QSplashScreen:
    """A small drawn splash (no image file needed) shown while torch imports."""
    pm = QPixmap(460, 200)
    pm.fill(QColor(theme.PANEL))
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    colours = theme.CLASS_COLOURS
    for k in range(24):  # a little latent-space scatter as the logo
        x = 60 + 26 * ((k * 37) % 11) / 11 * 2.2
        y = 60 + 26 * ((k * 53) % 7) / 7 * 3.0
        p.setBrush(QColor(colours[k % len(colours)]))
        p.setPen(Qt.NoPen)
        p.drawEllipse(int(x), int(y), 9, 9)
    p.setPen(QColor(theme.TEXT))
    f = QFont(QApplication.font())
    f.setPointSizeF(20)
    f.setBold(True)
    p.setFont(f)
    p.drawText(150, 95, APP_NAME)
    f.setPointSizeF(10)
    f.setBold(False)
    p.setFont(f)
    p.setPen(QColor(theme.MUTED))
    p.drawText(152, 122, f"version {__version__} · train a VAE, explore its latent space")
    p.end()
    splash = QSplashScreen(pm)
    splash.showMessage("Loading PyTorch…", Qt.AlignBottom | Qt.AlignHCenter, QColor(theme.MUTED))
    return splash


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="latent-explorer",
        description="Train a VAE and explore its latent space while it learns.",
    )
    p.add_argument("checkpoint", nargs="?", help="open this checkpoint (.safetensors) at start")
    p.add_argument("--screenshot", metavar="FILE", help="render the window to FILE (PNG) and exit")
    p.add_argument("--quit-after", metavar="MS", type=int, help="exit after MS milliseconds")
    p.add_argument(
        "--train", action="store_true",
        help="start training at once (with --screenshot: shoot when it ends)",
    )  # fmt: skip
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist", "kmnist", "idx", "folder",
                                         "shapes"], help="data to start with")  # fmt: skip
    p.add_argument("--images", help="IDX images file (with --dataset idx)")
    p.add_argument("--labels", help="IDX labels file (with --dataset idx)")
    p.add_argument("--root", help="image folder (with --dataset folder)")
    p.add_argument("--model", choices=["vae", "cvae", "ae"], help="model type")
    p.add_argument("--latent", type=int, help="latent size")
    p.add_argument("--epochs", type=int, help="epochs to train")
    p.add_argument("--tab", type=int, help="open on this tab (1-5)")
    p.add_argument("--grid", type=int, help="manifold grid size N (5-30)")
    p.add_argument("--size", metavar="WxH", help="window size, e.g. 1480x920")
    p.add_argument(
        "--settings", metavar="FILE",
        help="read and write settings in this INI file instead of the user's",
    )  # fmt: skip
    p.add_argument("--no-restore", action="store_true", help="ignore remembered settings")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _apply_cli(win, args) -> None:
    p = win.panel
    if args.dataset:
        p.source.blockSignals(True)
        p.source.setCurrentIndex(p.source.findData(args.dataset))
        p.source.blockSignals(False)
        p._source_changed()
    if args.images:
        p.images.setText(args.images)
    if args.labels:
        p.labels.setText(args.labels)
    if args.root:
        p.root.setText(args.root)
    if args.model:
        p.model.setCurrentIndex(p.model.findData(args.model))
    if args.latent:
        p.latent.setValue(args.latent)
    if args.epochs:
        p.epochs.setValue(args.epochs)
    if args.tab:
        win.tabs.setCurrentIndex(args.tab - 1)
    if args.grid:
        win.grid_n.setValue(args.grid)
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            win.resize(w, h)
        except ValueError:
            raise SystemExit(
                f"latent-explorer: --size must look like 1480x920, not {args.size}"
            ) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    t_start = time.perf_counter()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG)
    theme.apply(app)
    splash = None
    if not args.screenshot:
        splash = make_splash()
        splash.show()
        app.processEvents()

    from explorer.window import MainWindow  # imports torch: the slow part of starting

    settings = QSettings(args.settings, QSettings.IniFormat) if args.settings else None
    chosen = bool(args.dataset or args.images or args.root)
    win = MainWindow(settings=settings, restore=not args.no_restore, load=not chosen)
    _apply_cli(win, args)
    if chosen:
        win.load_data()
    if args.checkpoint:
        QTimer.singleShot(0, lambda: win.open_checkpoint(args.checkpoint))
    win.show()
    if splash is not None:
        splash.finish(win)
    QTimer.singleShot(0, lambda: win.status.showMessage(
        f"Ready in {time.perf_counter() - t_start:.1f} s", 5000))  # fmt: skip
    if args.train:
        QTimer.singleShot(0, win.start_training)
    if args.quit_after is not None:
        QTimer.singleShot(max(0, args.quit_after), win.close)
    if args.screenshot:
        _schedule_screenshot(win, args.screenshot, args.train)
    return app.exec()


def _schedule_screenshot(win, path: str, after_training: bool) -> None:
    """Shoot once data is in, the model is built and (with --train) the run has ended."""
    state = {"seen_run": not after_training, "t0": time.perf_counter()}

    def poll() -> None:
        if win.trainer_runner.running:
            state["seen_run"] = True
        ready = (
            state["seen_run"] and not win.busy and win.state == "idle"
            and win.session.model is not None and win.session.data is not None
        )  # fmt: skip
        if not ready and time.perf_counter() - state["t0"] < 600:
            QTimer.singleShot(100, poll)
            return
        win.session.refresh_test_latents(force=True)
        for v in win.views.values():
            v.training = False
        win.tick()
        for v in win._tab_views[win.tabs.currentIndex()]:
            v.refresh(force=True)
        QApplication.processEvents()
        QTimer.singleShot(150, shoot)

    def shoot() -> None:
        QApplication.processEvents()
        ok = win.grab().save(path)
        print(f"screenshot {'written to' if ok else 'FAILED:'} {path}", flush=True)
        win.close()
        QApplication.instance().exit(0 if ok else 1)

    QTimer.singleShot(200, poll)


if __name__ == "__main__":
    sys.exit(main())
