"""The ``latent-explorer`` command (also ``python -m explorer``).

PyTorch takes seconds to import, so the command shows a splash window first (Qt alone
is quick) and builds the main window, which needs torch, behind it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QSplashScreen

from explorer import platform_check, theme
from explorer.constants import (  # (the window's own limits, refused here before torch loads)
    APP_NAME,
    EPOCHS_MAX,
    GRID_MAX,
    GRID_MIN,
    ORG,
    QUIT_AFTER_MAX,
    TABS,
)
from explorer.constants import VERSION as __version__
from trainer.cli._options import OneLineParser, data_option_problem, given_data_options, int_in
from trainer.data.spec import SOURCES
from trainer.loop.threads import tame_environment
from trainer.text import shorten


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


class _Parser(OneLineParser):
    """Mistakes on the command line: one line on stderr and exit code 2, before any window
    (see :mod:`trainer.cli._options`)."""


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer from ``lo`` to ``hi`` (inclusive; no upper limit if None)."""
    return int_in(lo, hi, terse=True)


MIN_WINDOW, MAX_WINDOW = 320, 16384


MODEL_KINDS = ("vae", "cvae", "ae")
OUTPUTS = ("logits", "probs", "mean")


def _model_arg(text: str) -> str:
    """A model type, or a user's model: FILE.py:FUNCTION or a folder (its ONNX pair)."""
    if text in MODEL_KINDS or ":" in text or os.path.isdir(text):
        return text
    raise argparse.ArgumentTypeError(
        f"{shorten(text)!r} is not vae, cvae or ae, FILE.py:FUNCTION, nor a folder holding an "
        "ONNX pair"
    )


def own_model(args) -> str | None:
    """The user's model named by --model (FILE.py:FUNCTION or a folder), else None."""
    return args.model if args.model and args.model not in MODEL_KINDS else None


def read_own_model(args) -> str | None:
    """Read the user's model named by --model into ``args.own``, before any window: what
    does not work is returned as one line (the file, its function, its weights, the pair)."""
    args.own = args.view = None
    if is_view(args.checkpoint):  # a saved view: its fields checked, its model named
        from explorer.bookmarks import ViewError, read_view

        try:
            args.view = read_view(args.checkpoint)
        except ViewError as e:
            return str(e)
        m = args.view.model
        if "own" not in m:
            return None
        spec, weights = m["own"], m["weights"]
    elif own_model(args) is None:
        return None
    else:
        spec, weights = own_model(args), args.weights
    from trainer.onnx_pair import OnnxPairError
    from trainer.user_code import UserCodeError, open_model

    try:
        args.own = open_model(spec, weights)
    except (UserCodeError, OnnxPairError) as e:
        return str(e)
    return None


def is_view(path: str | None) -> bool:
    """``path`` names a saved view (VIEW.json), not a checkpoint."""
    return bool(path) and str(path).lower().endswith(".json")


def _window_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 1480x920, not {text!r}") from None
    if not (MIN_WINDOW <= w <= MAX_WINDOW and MIN_WINDOW <= h <= MAX_WINDOW):
        raise argparse.ArgumentTypeError(
            f"width and height must be {MIN_WINDOW} to {MAX_WINDOW} pixels, not {text}"
        )
    return w, h


def build_parser() -> argparse.ArgumentParser:
    from trainer.config import MAX_LATENT  # no torch: cheap

    p = _Parser(
        prog="latent-explorer",
        description="Train a VAE and explore its latent space while it learns.",
    )
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="open this checkpoint (.safetensors) at start, or a saved view (VIEW.json: "
        "its model, data, z, selection and the views' state, as File ▸ Save view… wrote it)",
    )
    p.add_argument("--screenshot", metavar="FILE", help="render the window to FILE (PNG) and exit")
    p.add_argument(
        "--quit-after",
        metavar="MS",
        type=_int_in(0, QUIT_AFTER_MAX),
        help="exit after MS milliseconds (without asking to save the model)",
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="start training at once (with --screenshot: shoot when it ends)",
    )
    p.add_argument(
        "--dataset",
        choices=SOURCES,
        help="data to start with",
    )
    p.add_argument(
        "--images",
        help="IDX images file (with --dataset idx), or NumPy file (with --dataset npz: .npz "
        "or .npy); the labels are then --labels or none",
    )
    p.add_argument(
        "--labels", help="IDX or .npy labels file (with --dataset idx or npz and --images)"
    )
    p.add_argument("--root", help="image folder (with --dataset folder), or CelebA's (celeba)")
    p.add_argument(
        "--model",
        metavar="MODEL",
        type=_model_arg,
        help="model type (vae, cvae or ae); or your own model, explored on the data options' "
        "images: FILE.py:FUNCTION (this runs that file's code; FUNCTION returns your model, "
        "with encode and decode methods) or a folder holding an ONNX pair (runs no code)",
    )
    p.add_argument(
        "--weights",
        metavar="W",
        help="your model's weights (with --model FILE.py:FUNCTION): safetensors, or a state "
        "dict torch.load reads with weights_only=True",
    )
    p.add_argument(
        "--output",
        choices=OUTPUTS,
        help="what your model's decode returns (with --model FILE.py:FUNCTION): logits "
        "(Bernoulli, the default), probs, or mean",
    )
    p.add_argument(
        "--latent", metavar="D", type=_int_in(1, MAX_LATENT), help=f"latent size (1-{MAX_LATENT})"
    )
    p.add_argument(
        "--epochs", metavar="N", type=_int_in(1, EPOCHS_MAX), help="epochs to train (at least 1)"
    )
    p.add_argument("--tab", metavar="K", type=_int_in(1, TABS), help=f"open on this tab (1-{TABS})")
    p.add_argument(
        "--grid",
        metavar="N",
        type=_int_in(GRID_MIN, GRID_MAX),
        help=f"manifold grid size N ({GRID_MIN}-{GRID_MAX})",
    )
    p.add_argument("--size", metavar="WxH", type=_window_size, help="window size, e.g. 1480x920")
    p.add_argument(
        "--settings",
        metavar="FILE",
        help="read and write settings in this INI file instead of the user's",
    )
    p.add_argument("--no-restore", action="store_true", help="ignore remembered settings")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def check_args(parser: argparse.ArgumentParser, args) -> None:
    """What parsing alone cannot refuse, refused as one line and exit code 2 before any
    window: a data option the chosen source does not read (without --dataset the window
    would load its remembered data and ignore it), and IDX labels without their images."""
    if args.dataset:
        named = f"--dataset {args.dataset}"
    else:
        whose = "the checkpoint's" if args.checkpoint else "the remembered"
        named = f"{whose} data (no --dataset)"
    problem = data_option_problem(args.dataset, given_data_options(args), named)
    if problem:
        parser.error(problem)
    own = own_model(args)
    if own is None and (args.weights is not None or args.output is not None):
        flag = "--weights" if args.weights is not None else "--output"
        parser.error(f"{flag} goes with --model FILE.py:FUNCTION (your own model)")
    if is_view(args.checkpoint) and (own or args.dataset or args.images or args.root or args.train):
        parser.error(
            f"{args.checkpoint} is a saved view: it names its model and data itself "
            "(no --model, --train or data options with it)"
        )
    if own is not None and args.checkpoint:
        parser.error(f"{args.checkpoint} and --model {own} are two models: open one of them")
    if own is not None and args.train:
        parser.error("--train trains a new model of the panel's settings; not with --model FILE")
    if args.labels is not None and args.images is None:
        parser.error(
            "--labels without --images: they would label the images the window remembers; name both"
        )


def _apply_cli(win, args) -> None:
    p = win.panel
    if args.dataset:
        p.source.blockSignals(True)
        p.source.setCurrentIndex(p.source.findData(args.dataset))
        p.source.blockSignals(False)
        p._source_changed()
    if args.images is not None:  # its labels are the ones named with it, or none
        p.images.setText(args.images)
        p.labels.setText(args.labels or "")
    if args.root is not None:
        p.root.setText(args.root)
    if args.model in MODEL_KINDS:
        p.model.setCurrentIndex(p.model.findData(args.model))
    if args.latent is not None:
        p.latent.setValue(args.latent)
    if args.epochs is not None:
        p.epochs.setValue(args.epochs)
    if args.tab is not None:
        win.tabs.setCurrentIndex(args.tab - 1)
    if args.grid is not None:
        win.grid_n.setValue(args.grid)
    if args.size is not None:
        win.resize(*args.size)


def main(argv: list[str] | None = None) -> int:
    notes = tame_environment()  # before torch is imported
    for note in notes:
        print(f"latent-explorer: note: {note}", file=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    args.notes = notes
    problem = read_own_model(args)
    if problem:
        print(f"latent-explorer: {problem}", file=sys.stderr)
        return 2
    if args.screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    problem = platform_check.window_problem()
    if problem:  # Qt would abort with a misleading message: say what is wrong instead
        print(f"latent-explorer: {problem}", file=sys.stderr)
        return 2
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

    start(args, splash, t_start)
    code = app.exec()
    from explorer.worker import end_process

    # The window has closed and written what it keeps. End here: the interpreter's teardown
    # would take a second (torch's), and abort on a worker stuck in one long call.
    end_process(code)
    return code  # not reached


def start(args, splash=None, t_start: float | None = None):
    """Build and show the window for parsed ``args`` and schedule what they ask for."""
    from explorer.window import MainWindow  # imports torch: the slow part of starting

    t_start = time.perf_counter() if t_start is None else t_start
    from explorer.settings import open_settings  # (a named pipe is never opened)

    settings = open_settings(args.settings) if args.settings else None
    chosen = bool(args.dataset or args.images or args.root)
    # a checkpoint names its own data, and your own model is opened on the data once loaded:
    # do not load the remembered data first (nor open the first launch's example)
    own = getattr(args, "own", None)
    view = getattr(args, "view", None)
    load = not chosen and not args.checkpoint and own is None
    win = MainWindow(settings=settings, restore=not args.no_restore, load=load)
    win.ask_on_close = not (args.quit_after is not None or args.screenshot)
    _apply_cli(win, args)
    if chosen:
        win.run.load_data()
    if view is not None:  # its model (read already, if it is the user's), data and state
        from explorer.bookmarks import open_view

        QTimer.singleShot(0, lambda: open_view(win, view, own))
    elif args.checkpoint:
        QTimer.singleShot(0, lambda: _open_at_start(win, args.checkpoint, chosen))
    elif own is not None:
        from explorer.own_model import open_own

        output = args.output or "logits"
        QTimer.singleShot(0, lambda: win.run.load_data(then=lambda: open_own(win, own, output)))
    win.show()
    if splash is not None:
        splash.finish(win)
    QTimer.singleShot(
        0, lambda: win.status.showMessage(f"Started in {time.perf_counter() - t_start:.1f} s", 5000)
    )
    for note in getattr(args, "notes", ()):  # a thread count lowered or ignored
        text = note[:1].upper() + note[1:]
        QTimer.singleShot(0, lambda t=text: win.show_message(t, timeout_ms=15000))
    if args.train:
        QTimer.singleShot(0, win.start_training)
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, win.close)
    if args.screenshot:
        _schedule_screenshot(win, args.screenshot, args.train)
    return win


def _open_at_start(win, path: str, chosen: bool) -> None:
    """Open the checkpoint (at once, or after the data chosen on the command line)."""
    shown = len(win.banner.history)
    ok = win.open_checkpoint(path)
    if not chosen and win.session.data is None and not win.run.loading:
        # it could not be opened, or it names no data: start with the usual data
        win._first_launch_data()
        if not ok and len(win.banner.history) > shown + 1:
            win.show_message(*reversed(win.banner.history[shown]))


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _schedule_screenshot(win, path: str, after_training: bool) -> None:
    """Shoot once data is in, the model is built and (with --train) the run has ended.

    If no data could be loaded, shoot what the window shows (the error), print the reason
    as one line on stderr and exit with code 2.
    """
    state = {"seen_run": not after_training, "t0": time.perf_counter(), "error": None}

    def poll() -> None:
        if win.run.running:
            state["seen_run"] = True
        settled = not win.busy
        if settled and win.session.data is None:
            errors = [t for lvl, t in win.banner.history if lvl in ("error", "warning")]
            state["error"] = errors[-1] if errors else "no data was loaded"
            QTimer.singleShot(50, shoot)
            return
        ready = settled and state["seen_run"] and win.session.model is not None
        if not ready and time.perf_counter() - state["t0"] < 600:
            QTimer.singleShot(100, poll)
            return
        win.session.refresh_test_latents(force=True)
        for v in win.views.values():
            v.training = False
        win.tick()
        for v in win.tab_table[win.tabs.currentIndex()].views:
            v.refresh(force=True)
        QApplication.processEvents()
        QTimer.singleShot(150, shoot)

    def shoot() -> None:
        QApplication.processEvents()
        ok = _save_pixmap(win.grab(), path)
        shown = win.session.describe_model()  # what it shows, for whoever reads the log
        shown += ", a bundled example" if win.session.example else ""
        print(f"screenshot {'written to' if ok else 'FAILED:'} {path} ({shown})", flush=True)
        code = 0 if ok else 1
        if state["error"]:
            print(
                f"latent-explorer: could not load the data: {one_line(state['error'])}",
                file=sys.stderr,
                flush=True,
            )
            code = 2
        win.close()
        QApplication.instance().exit(code)

    QTimer.singleShot(200, poll)


def _save_pixmap(pixmap: QPixmap, path: str) -> bool:
    """``pixmap`` in the format ``path``'s suffix names, written as every export is."""
    from PySide6.QtCore import QBuffer, QIODevice

    from trainer.export import ExportError, write_file

    buf = QBuffer()
    buf.open(QIODevice.WriteOnly)
    fmt = os.path.splitext(path)[1][1:].upper() or "PNG"
    if not pixmap.save(buf, fmt):
        return False
    try:
        write_file(path, bytes(buf.data()))
    except ExportError as e:
        print(e, file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
