"""Work-arounds for bugs in the libraries under the explorer.

PySide6 6.12.0 on CPython 3.11 and older drops references to ``None`` and ``True`` on many
ordinary operations (a QLabel repaint loses about two references to None, a pyqtgraph
repaint dozens): after some thousands of repaints a count reaches zero and the
interpreter aborts with "none_dealloc: deallocating None" or "bool_dealloc". From CPython
3.12 on, these singletons are immortal and the bug is harmless. Until PySide6 is fixed,
:func:`guard_singletons` lifts their reference counts far out of reach (2**60 lost
references would be needed to reach zero) on the interpreters that need it.
"""

from __future__ import annotations

import ctypes
import sys

_LIFT = 1 << 60
# The singletons a C extension may hand out without a new reference.
_SINGLETONS = (None, True, False, NotImplemented, Ellipsis, (), 0, 1, -1)


def guard_singletons() -> int:
    """Make shared singletons effectively immortal on CPython < 3.12.

    Returns how many reference counts were lifted now (0 when not needed or done before).
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return 0
    lifted = 0
    for obj in _SINGLETONS:
        cell = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt: PyObject's first field
        if cell.value < _LIFT:
            cell.value += _LIFT
            lifted += 1
    return lifted
