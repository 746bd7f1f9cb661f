"""Directions in latent space: the difference of two groups' mean codes.

Two classes ("3" to "8"), a CelebA attribute (faces without it to faces with it), or any two
sets of codes (two selections on the map) each give a direction; latent arithmetic
(z_a - z_b + z_c, :func:`trainer.latent.arithmetic`) is the same step with groups of one
image each. A :func:`sweep` walks a code along a direction, to decode as a row of images.

Nothing here decodes: the functions take and give codes (posterior means, (N, D)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class DirectionError(ValueError):
    """A direction cannot be made from what was asked (an empty group, an unknown class or
    attribute); the message says why in one line."""


def mean_difference(codes_a, codes_b) -> torch.Tensor:
    """mean(codes_a) - mean(codes_b): (D,), float32, summed in float64.

    ``codes_a`` and ``codes_b`` are (N, D) and (M, D) codes (tensors or arrays, one code of
    (D,) is a group of one). A group of one image gives that image's code itself, so
    ``mean_difference(z_a, z_b)`` is z_a - z_b.
    """
    a, b = (np.atleast_2d(np.asarray(c, dtype=np.float64)) for c in (codes_a, codes_b))
    if len(a) == 0 or len(b) == 0 or a.shape[1] == 0:
        raise DirectionError("a direction needs at least one code in each group")
    if a.shape[1] != b.shape[1]:
        raise DirectionError(f"the groups' codes differ in size: {a.shape[1]} and {b.shape[1]}")
    return torch.from_numpy(a.mean(0) - b.mean(0)).float()


@dataclass(frozen=True)
class Direction:
    """The way from one group's mean code to another's: ``vector`` = mean(target) -
    mean(source), with the groups' names and sizes (how many codes each mean is of)."""

    name: str
    vector: np.ndarray  # (D,) float32
    source: str  # the group it leads away from
    target: str  # the group it leads to
    source_size: int
    target_size: int

    @property
    def length(self) -> float:
        """Its Euclidean length in latent units."""
        return float(np.linalg.norm(self.vector))

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    def describe(self) -> str:
        """ "3 (1,032 codes) → 8 (974 codes), length 2.41"."""
        return (
            f"{self.source} ({self.source_size:,} code{'s' if self.source_size != 1 else ''}) "
            f"→ {self.target} ({self.target_size:,} code{'s' if self.target_size != 1 else ''}), "
            f"length {self.length:.3g}"
        )


def direction(source_codes, target_codes, source: str, target: str, name: str = "") -> Direction:
    """The direction from the mean of ``source_codes`` to the mean of ``target_codes``."""
    vector = mean_difference(target_codes, source_codes).numpy()
    return Direction(
        name or f"{source} → {target}",
        vector,
        source,
        target,
        len(np.asarray(source_codes).reshape(-1, len(vector))),
        len(np.asarray(target_codes).reshape(-1, len(vector))),
    )


def add_direction(z, vector, amount: float = 1.0) -> torch.Tensor:
    """z + amount * vector: (D,) (or (N, D) codes, each moved), float32."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    v = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1)
    if z.shape[-1] != v.numel():
        raise DirectionError(f"z has {z.shape[-1]} values; the direction has {v.numel()}")
    return z + float(amount) * v


def span_of(span) -> tuple[float, float]:
    """A sweep's amounts from and to: one number s is (0, s); two are themselves."""
    values = [float(s) for s in np.atleast_1d(np.asarray(span, dtype=np.float64))]
    if len(values) == 1:
        values = [0.0, values[0]]
    if len(values) != 2 or not all(np.isfinite(values)):
        raise DirectionError(f"a span is one number or two finite ones, not {span!r}")
    if values[0] == values[1]:
        raise DirectionError("a span must go somewhere: its two ends are the same")
    return values[0], values[1]


def sweep(z, direction: Direction | np.ndarray, steps: int = 9, span=1.0) -> torch.Tensor:
    """Codes along a direction: z + t * vector for ``steps`` amounts t evenly from the
    span's start to its end (``span`` s: 0 to s; (s0, s1): s0 to s1), ends included:
    (steps, D). From the source group's mean with span 1, the last code is the target
    group's mean."""
    if not isinstance(steps, int) or steps < 2:
        raise DirectionError(f"a sweep needs 2 or more steps, not {steps!r}")
    vector = direction.vector if isinstance(direction, Direction) else direction
    lo, hi = span_of(span)
    t = torch.linspace(lo, hi, steps, dtype=torch.float64).unsqueeze(1)
    z = torch.as_tensor(np.asarray(z, dtype=np.float64)).reshape(1, -1)
    v = torch.as_tensor(np.asarray(vector, dtype=np.float64)).reshape(1, -1)
    if z.shape[1] != v.shape[1]:
        raise DirectionError(f"z has {z.shape[1]} values; the direction has {v.shape[1]}")
    return (z + t * v).float()


# -- groups -----------------------------------------------------------------------------------
def class_number(name: str | int, class_names: list[str], num_classes: int) -> int:
    """A class given by its name or number, checked against the data's classes."""
    if num_classes <= 0:
        raise DirectionError("these images have no classes (no labels) to make groups of")
    names = list(class_names)
    if isinstance(name, str) and name in names:
        return names.index(name)
    try:
        k = int(name)
    except (TypeError, ValueError):
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise DirectionError(f"unknown class {name!r}; the classes are: {shown}") from None
    if not 0 <= k < num_classes:
        raise DirectionError(f"class {k} is out of range 0..{num_classes - 1}")
    return k


def class_members(labels, k: int) -> np.ndarray:
    """The rows of ``labels`` (N,) that are class ``k``."""
    return np.flatnonzero(np.asarray(labels).reshape(-1) == k)


def attribute_rows(attributes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows with attribute ``name`` on and those with it off: ``attributes`` is a
    :class:`~trainer.data.arrays.Attributes`'s names and one split's table (N, K) bool, as
    ``(names, table)``."""
    names, table = attributes
    names = list(names)
    if name not in names:
        close = [n for n in names if n.lower() == str(name).lower()]
        hint = f"; did you mean {close[0]}?" if close else f"; they are: {', '.join(names)}"
        raise DirectionError(f"unknown attribute {name!r}{hint}")
    col = np.asarray(table)[:, names.index(name)].astype(bool)
    return np.flatnonzero(col), np.flatnonzero(~col)


def check_group(rows, what: str) -> np.ndarray:
    """``rows`` as an index array, refused when empty (its mean would be nothing)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) == 0:
        raise DirectionError(f"{what} has no images: a direction needs at least one in each group")
    return rows


def rows_direction(codes, source_rows, target_rows, source: str, target: str) -> Direction:
    """The direction between two sets of rows of ``codes`` (N, D)."""
    codes = np.asarray(codes)
    n = len(codes)
    for rows, what in ((source_rows, source), (target_rows, target)):
        rows = check_group(rows, what)
        bad = rows[(rows < 0) | (rows >= n)]
        if len(bad):
            raise DirectionError(f"{what}: row {int(bad[0])} is not among the {n:,} codes")
    return direction(codes[np.asarray(source_rows)], codes[np.asarray(target_rows)], source, target)


def apart(rows_a, rows_b, a: str = "A", b: str = "B") -> tuple[np.ndarray, np.ndarray, int]:
    """Two groups of rows made apart: ``(rows_a, rows_b, shared)``.

    The same rows in both are refused (a direction from a group to itself is nothing). Rows
    in both groups are left out of both; where one group lies wholly inside the other, they
    are left out of the larger one only (B = A and more gives the way from A to the rows only
    B has). ``shared`` says how many rows the two groups had in common.
    """
    ra = np.unique(np.asarray(rows_a, dtype=np.int64).reshape(-1))
    rb = np.unique(np.asarray(rows_b, dtype=np.int64).reshape(-1))
    both = np.intersect1d(ra, rb)
    if len(ra) and len(ra) == len(rb) == len(both):
        raise DirectionError(
            f"groups {a} and {b} are the same {len(ra):,} images: that direction is nothing"
        )
    if len(both) == 0:
        return ra, rb, 0
    only_a, only_b = np.setdiff1d(ra, both), np.setdiff1d(rb, both)
    if len(only_a) == 0:  # A inside B
        return ra, only_b, len(both)
    if len(only_b) == 0:  # B inside A
        return only_a, rb, len(both)
    return only_a, only_b, len(both)
