"""Saving what the window shows: grids as PNG, animations as GIF, the film, the loss history,
the latent map's codes.

Functions that take the window. A ``*_dialog`` says why an export cannot happen before any
file dialog opens, asks for a path where exports were last saved, and calls the window's
``export_*`` method (which writes and says in one line how it went), so a script or a test
can export without a dialog.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

PNG_TIP = "Save this grid as a PNG (Ctrl+E)"


def export(win, what: str, write, path: str | os.PathLike) -> bool:
    """``write(path)``, then one line on how it went; False (and the reason) if it failed."""
    from trainer.export import ExportError  # torchvision is slow to import: not at start

    try:
        write(path)
    except (ExportError, ValueError, OSError) as e:
        win.show_message(str(e), "error")
        return False
    win.show_message(f"Saved the {what} to {path}", "info", 6000)
    return True


def export_view(win, name: str, path: str | os.PathLike) -> bool:
    return export(win, name, win.views[name].export_png, path)


def export_gif(win, path: str | os.PathLike) -> bool:
    return export(win, "interpolation", win.interp.export_gif, path)


def export_traversal_gif(win, path: str | os.PathLike) -> bool:
    return export(win, "traversals", win.traversals.export_gif, path)


def export_runs(win, path: str | os.PathLike) -> bool:
    return export(win, "compared runs", win.runs_view.export_png, path)


def export_neighbours(win, path: str | os.PathLike) -> bool:
    return export(win, "nearest images", win.neighbours.export_png, path)


def export_sweep(win, path: str | os.PathLike) -> bool:
    return export(win, "direction sweep", win.directions_panel.export_sweep, path)


def export_csv(win, path: str | os.PathLike) -> bool:
    from trainer.export import write_history_csv

    return export(win, "loss history", lambda p: write_history_csv(win.session.history, p), path)


def export_map_codes(win, path: str | os.PathLike) -> bool:
    """The map on screen's codes, labels and places as .npz or .csv (by the extension)."""
    from trainer.codes import write_codes

    return export(win, "map's codes", lambda p: write_codes(p, win.map_state.map_codes()), path)


def export_map_projector(win, folder: str | os.PathLike) -> bool:
    """The map on screen's codes, labels, places and images as a TensorBoard projector
    folder (``tensorboard --logdir FOLDER``)."""
    from trainer.codes import write_projector

    return export(
        win,
        "map for TensorBoard's projector",
        lambda p: write_projector(p, win.map_state.map_codes(images=True)),
        folder,
    )


def export_film(win, path: str | os.PathLike) -> bool:
    """Write the film in the background; the message bar says when it is done."""
    return win.film.export(path, fps=win.film_view.fps.value())


def film_exported(win, path: str, error: str) -> None:
    if error:
        win.show_message(f"The film was not saved: {error}", "error", topic="film")
    else:
        win.show_message(f"Saved the training film to {path}", "info", 6000, topic="film")


def update_exports(win) -> None:
    """An export that has nothing to save is disabled, and says why, before any dialog."""
    for name, view in win.views.items():
        problem = view.export_problem()
        tip = problem or PNG_TIP
        for w in (win.export_buttons.get(name), getattr(win, "export_actions", {}).get(name)):
            if w is not None:
                w.setEnabled(problem is None)
                w.setToolTip(tip)


# -- the dialogs -------------------------------------------------------------------------------
def ask_path(win, title: str, name: str, filt: str) -> str:
    path, _ = QFileDialog.getSaveFileName(win, title, win.places.suggest("exports", name), filt)
    if path:
        win.places.remember("exports", path)
    return path


def ask_export(win, problem: str | None, title: str, name: str, filt: str) -> str:
    """The file an export goes to; "" when cancelled, or when there is nothing to export
    (``problem`` said now, not after a file name was chosen)."""
    if problem is not None:
        win.show_message(problem, "warning")
        return ""
    return ask_path(win, title, name, filt)


def export_view_dialog(win, name: str) -> None:
    problem = win.views[name].export_problem()
    path = ask_export(
        win, problem, f"Export {name}", f"{name.replace(' ', '-')}.png", "PNG (*.png)"
    )
    if path:
        win.export_view(name, path)


def export_current_dialog(win) -> None:
    name = win.current_view_name()
    if name is None:
        win.show_message("This tab has no grid to export: pick a view's tab.", "warning")
        return
    win.export_view_dialog(name)


def export_gif_dialog(win) -> None:
    problem = win.interp.export_problem()
    path = ask_export(win, problem, "Export interpolation", "interpolation.gif", "GIF (*.gif)")
    if path:
        win.export_gif(path)


def export_traversal_gif_dialog(win) -> None:
    problem = win.traversals.export_problem()
    path = ask_export(win, problem, "Export traversals", "traversals.gif", "GIF (*.gif)")
    if path:
        win.export_traversal_gif(path)


def export_film_dialog(win) -> None:
    problem = win.film.export_problem()
    path = ask_export(win, problem, "Export the training film", "film.gif", win.film.formats())
    if path and not Path(path).suffix:  # a name typed without one: the GIF it was offered
        path += ".gif"
    if path:
        win.export_film(path)


def export_neighbours_dialog(win) -> None:
    problem = win.neighbours.export_problem()
    path = ask_export(win, problem, "Export nearest images", "neighbours.png", "PNG (*.png)")
    if path:
        export_neighbours(win, path)


def export_sweep_dialog(win) -> None:
    problem = win.directions_panel.export_problem()
    path = ask_export(win, problem, "Export the sweep", "sweep.png", "PNG (*.png);;GIF (*.gif)")
    if path:
        export_sweep(win, path)


def export_csv_dialog(win) -> None:
    if not win.session.history.steps:
        win.show_message("There is no loss history to export yet: train a model.", "warning")
        return
    path = ask_path(win, "Export loss history", "history.csv", "CSV (*.csv)")
    if path:
        win.export_csv(path)


def export_map_dialog(win, kind: str) -> None:
    """The latent map's Export menu: ``kind`` "codes" (.npz / .csv) or "projector"."""
    problem = win.map_state.export_problem()
    if kind == "codes":
        path = ask_export(
            win, problem, "Export the map's codes", "codes.npz", "NumPy (*.npz);;CSV (*.csv)"
        )
        if path and not Path(path).suffix:  # a name typed without one: the .npz it was offered
            path += ".npz"
        if path:
            export_map_codes(win, path)
        return
    if problem is not None:
        win.show_message(problem, "warning")
        return
    folder = QFileDialog.getExistingDirectory(
        win, "Export for TensorBoard's projector: choose a folder", win.places.start("exports")
    )
    if folder:
        win.places.remember("exports", str(Path(folder) / "projector_config.pbtxt"))
        export_map_projector(win, folder)
