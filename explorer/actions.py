"""The window's menus, shortcuts and the messages they show: functions that take the window.

Every menu item calls a method of the window (or of what it holds); the keys are said once
more in :func:`show_shortcuts` (F1), so a key added here is added there too.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog

from explorer import bookmarks, own_model
from explorer.constants import APP_NAME
from explorer.constants import VERSION as __version__
from explorer.widgets.examples import ExamplesDialog
from trainer.checkpoint import SUFFIX


def build_menus(win) -> None:
    """File, Train, View and Help, and the keys that have no menu item (Space, Esc, Ctrl+V)."""
    mb = win.menuBar()
    f = mb.addMenu("&File")
    add_action(win, f, "&Open checkpoint…", QKeySequence.Open, win.open_checkpoint_dialog)
    win.act_save = add_action(
        win, f, own_model.SAVE_TEXT, QKeySequence.Save, win.save_checkpoint_dialog
    )
    own_model.follow_save_action(win.session, win.act_save)
    add_action(win, f, "E&xamples…", "Ctrl+Shift+O", win.show_examples)
    add_action(win, f, "Save &view…", "Ctrl+B", lambda: bookmarks.save_view_dialog(win))
    add_action(win, f, "Open v&iew…", "Ctrl+Shift+B", lambda: bookmarks.open_view_dialog(win))
    f.addSeparator()
    ex = f.addMenu("&Export")
    add_action(win, ex, "Current grid as PNG…", "Ctrl+E", win.export_current_dialog)
    win.export_actions = {}
    for name in win.views:
        win.export_actions[name] = add_action(
            win,
            ex,
            f"{name.capitalize()} as PNG…",
            None,
            lambda _checked=False, n=name: win.export_view_dialog(n),
        )
    add_action(win, ex, "Interpolation as GIF…", "Ctrl+G", win.export_gif_dialog)
    add_action(win, ex, "Traversals as GIF…", None, win.export_traversal_gif_dialog)
    add_action(win, ex, "Training film as GIF or MP4…", "Ctrl+Shift+G", win.export_film_dialog)
    add_action(win, ex, "Loss history as CSV…", "Ctrl+Shift+E", win.export_csv_dialog)
    f.addSeparator()
    add_action(win, f, "&Quit", QKeySequence.Quit, win.close)
    t = mb.addMenu("&Train")
    win.act_start = add_action(win, t, "Start / pause", "Ctrl+T", win.start_or_pause)
    win.act_continue = add_action(
        win, t, "Continue training", "Ctrl+Shift+T", lambda: win.start_training(resume=True)
    )
    win.act_stop = add_action(win, t, "Stop", "Ctrl+.", win.run.stop)
    t.addSeparator()
    add_action(win, t, "Evaluate log-likelihood", "Ctrl+Shift+L", win.evaluate)
    v = mb.addMenu("&View")
    for i in range(win.tabs.count()):  # Ctrl+1 to Ctrl+9, then Ctrl+0, Ctrl+Shift+F
        add_action(
            win,
            v,
            win.tabs.tabText(i),
            tab_shortcut(i),
            lambda _checked=False, i=i: win.tabs.setCurrentIndex(i),
        )
    v.addSeparator()
    add_action(win, v, "Reset z to zero", "Ctrl+R", win.sliders.reset)
    add_action(win, v, "Sample z from the prior", "Ctrl+P", win.sliders.sample)
    add_action(win, v, "Log-scale loss plots", "Ctrl+L", win.plots.log_box.toggle)
    h = mb.addMenu("&Help")
    add_action(win, h, "Keyboard shortcuts", "F1", lambda: show_shortcuts(win))
    add_action(
        win,
        h,
        "About",
        None,
        lambda: win.show_message(
            f"{APP_NAME} {__version__}: train a VAE and explore its latent space while it "
            "learns. PyTorch + PySide6 + pyqtgraph.",
            "info",
        ),
    )
    space = QShortcut(QKeySequence(Qt.Key_Space), win)
    space.activated.connect(win.start_or_pause)
    esc = QShortcut(QKeySequence(Qt.Key_Escape), win)
    esc.activated.connect(lambda: win.map.escape() or win.banner.hide())
    paste = QShortcut(QKeySequence.Paste, win)
    paste.activated.connect(win.paste_picture)
    win.setAcceptDrops(True)  # a picture dropped on the window is encoded


def add_action(win, menu, text, shortcut, slot) -> QAction:
    a = QAction(text, win)
    if shortcut is not None:
        a.setShortcut(QKeySequence(shortcut))
    a.triggered.connect(slot)
    menu.addAction(a)
    return a


def show_shortcuts(win) -> None:
    win.show_message(
        "Space / Ctrl+T start or pause · Ctrl+. stop · Ctrl+Shift+T continue · "
        "Ctrl+Shift+L evaluate · Ctrl+O open · Ctrl+Shift+O examples · Ctrl+S save · "
        "Ctrl+B save view · Ctrl+Shift+B open view · "
        "Ctrl+E export grid · Ctrl+G export GIF · Ctrl+Shift+E export CSV · "
        "Ctrl+1…9, 0 tabs · Ctrl+Shift+F film (K play, ← → step) · "
        "Ctrl+Shift+G export film · Ctrl+R zero z · Ctrl+P sample z · Ctrl+L log scale · "
        "arrows move the map cursor (Shift: faster)",
        "info",
    )


def tab_shortcut(i: int) -> str:
    """Tab ``i``'s key: Ctrl+1 to Ctrl+9, Ctrl+0, then the Film's Ctrl+Shift+F."""
    return f"Ctrl+{(i + 1) % 10}" if i < 10 else "Ctrl+Shift+F"


# -- File ▸ Open, Save and Examples -------------------------------------------------------------
def show_examples(win) -> ExamplesDialog | None:
    """File ▸ Examples: the bundled models, each with a thumbnail; one click opens it."""
    if win.run.running:  # say so before one is chosen, not after
        win.show_message("Stop training before opening a checkpoint.", "warning", topic="open")
        return None
    dlg = ExamplesDialog(win.open_checkpoint, win)
    dlg.setAttribute(Qt.WA_DeleteOnClose)
    win.examples_dialog = dlg
    dlg.open()  # window-modal, without a nested event loop
    return dlg


def save_checkpoint_dialog(win) -> Path | None:
    if win.session.model is None:
        win.show_message("There is no model to save yet.", "warning")
        return None
    if own_model.is_own(win.session):  # File ▸ Keep in project: no file holds its code
        rec = own_model.save_as_run(win)  # a run of the project: weights, training, code
        return Path(rec.checkpoint) if rec is not None else None
    path, _ = QFileDialog.getSaveFileName(
        win,
        "Save checkpoint",
        win.places.suggest("checkpoints", f"model{SUFFIX}"),
        f"Checkpoints (*{SUFFIX})",
    )
    return win.save_checkpoint(path) if path else None


def open_checkpoint_dialog(win) -> None:
    if win.run.running:  # say so before a file is chosen, not after
        win.show_message("Stop training before opening a checkpoint.", "warning", topic="open")
        return
    path, _ = QFileDialog.getOpenFileName(
        win,
        "Open checkpoint",
        win.places.start("checkpoints"),
        f"Checkpoints (*{SUFFIX});;All files (*)",
    )
    if path:
        win.open_checkpoint(path)
