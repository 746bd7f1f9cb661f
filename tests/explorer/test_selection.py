"""The session's one selection of test images (explorer.selection.Selection)."""

from __future__ import annotations

import numpy as np
import torch

from explorer.state import Session
from trainer.data import ImageData


def _data(n: int) -> ImageData:
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    y = torch.arange(n) % 2
    return ImageData("toy", x, x.clone(), y, y.clone(), ["even", "odd"])


def test_rows_are_sorted_unique_and_signal_only_on_change(qtbot):
    s = Session()
    heard = []
    s.selection.changed.connect(lambda: heard.append(list(s.selection.rows)))
    s.selection.set([5, 2, 5])
    s.selection.set([2, 5])  # the same rows: nothing to say
    s.selection.add([1])
    s.selection.toggle(5)
    s.selection.toggle(7)
    assert heard == [[2, 5], [1, 2, 5], [1, 2], [1, 2, 7]]
    assert len(s.selection) == 3 and s.selection.rows.dtype == np.int64


def test_new_data_clears_the_selection(qtbot):
    s = Session()
    s.set_data(_data(8))
    s.selection.set([1, 3])
    s.set_data(_data(6))
    assert len(s.selection) == 0
