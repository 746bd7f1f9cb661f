"""Words for messages, shared by both command lines and the window: a value cut short and a
duration as a clock reads it. A leaf: it imports nothing of the project."""

from __future__ import annotations

import math


def shorten(text: str, most: int = 30) -> str:
    """``text`` stripped and, past ``most`` characters, cut to ``most`` ending in "...": a
    value someone typed, quoted in a one-line message without taking it over."""
    text = text.strip()
    return text if len(text) <= most else text[: most - 3] + "..."


def clock(seconds: float, fixed: bool = False) -> str:
    """``seconds`` as a clock shows them, to the nearest second: "1:02:03" from an hour on,
    else "2:03". ``fixed``: minutes in two digits ("02:03") and "--:--" for an unknown
    time, for a line redrawn in place whose width should not jump; otherwise an unknown time
    is "–"."""
    if not math.isfinite(seconds):
        return "--:--" if fixed else "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}:{m:02d}:{sec:02d}"
    return f"{m:02d}:{sec:02d}" if fixed else f"{m}:{sec:02d}"
