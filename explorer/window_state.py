"""What the window remembers between sessions: its layout, the views' choices, the film's.

Functions that take the window; the INI file itself is :mod:`explorer.settings`'s, and the
panel on the left keeps its own keys (``TrainPanel.save_settings``). A hand-edited file may
hold anything: a value that cannot be used leaves the default in place.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray

from explorer.constants import GRID_DEFAULT
from trainer.config import FILM_MEMORY_MB, TRAVERSAL_COLUMNS

SPLITTERS = ("main_split", "centre_split", "right_split", "explore_split")


def save_settings(win) -> None:
    st = win.settings
    st.setValue("window/geometry", win.saveGeometry())
    st.setValue("window/state", win.saveState())
    for name in SPLITTERS:
        st.setValue(f"window/{name}", getattr(win, name).saveState())
    st.setValue("window/tab", win.tabs.currentIndex())
    st.setValue("view/grid_n", win.grid_n.value())
    st.setValue("view/traversal_columns", win.trav_columns.value())
    st.setValue("view/log", win.plots.log_box.isChecked())
    st.setValue("view/smooth", win.plots.smooth_box.isChecked())
    st.setValue("view/order_by_kl", win.sliders.order_box.isChecked())
    st.setValue("film/record", win.film.enabled)
    st.setValue("film/memory", win.film.budget_mb)
    win.panel.save_settings(st)
    st.sync()


def load_settings(win) -> None:
    st = win.settings
    geo = st.value("window/geometry")
    if isinstance(geo, QByteArray) and not geo.isEmpty():
        win.restoreGeometry(geo)
    state = st.value("window/state")
    if isinstance(state, QByteArray):
        win.restoreState(state)
    for name in SPLITTERS:
        v = st.value(f"window/{name}")
        if isinstance(v, QByteArray):
            getattr(win, name).restoreState(v)
    win.tabs.setCurrentIndex(_int(st.value("window/tab"), 0))
    win.grid_n.setValue(_int(st.value("view/grid_n"), GRID_DEFAULT))
    lo, hi = TRAVERSAL_COLUMNS
    win.trav_columns.setValue(max(lo, min(hi, _int(st.value("view/traversal_columns"), 11))))
    win.plots.log_box.setChecked(_bool(st.value("view/log"), False))
    win.plots.smooth_box.setChecked(_bool(st.value("view/smooth"), True))
    win.sliders.order_box.setChecked(_bool(st.value("view/order_by_kl"), False))
    win.film_view.record.setChecked(_bool(st.value("film/record"), True))
    win.film_view.memory.setValue(_int(st.value("film/memory"), int(FILM_MEMORY_MB)))
    win.panel.load_settings(st)


def _int(v, default: int) -> int:
    """A setting as an int Qt can take (a hand-edited file may hold anything)."""
    try:
        return max(-(2**31), min(2**31 - 1, int(v)))
    except (TypeError, ValueError, OverflowError):
        return default


def _bool(v, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)
