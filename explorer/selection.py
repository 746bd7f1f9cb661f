"""The points selected on the latent map: rows of the session's test set (``data.test_x``).

One owner for the selection, ``Session.selection``: the map adds to it (shift-click,
lasso), the directions panel reads it, a bookmark saves it. ``changed`` is emitted
whenever the rows change.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal


class Selection(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows = np.zeros(0, dtype=np.int64)  # sorted, unique rows of data.test_x

    def __len__(self) -> int:
        return len(self.rows)

    def set(self, rows) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        if not np.array_equal(rows, self.rows):
            self.rows = rows
            self.changed.emit()

    def add(self, rows) -> None:
        self.set(np.concatenate([self.rows, np.asarray(rows, dtype=np.int64).reshape(-1)]))

    def toggle(self, row: int) -> None:
        row = int(row)
        if row in self.rows:
            self.set(self.rows[self.rows != row])
        else:
            self.add([row])

    def clear(self) -> None:
        self.set([])
