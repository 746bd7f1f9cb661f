"""The directions the window keeps: each the difference of two groups' mean codes
(:mod:`trainer.directions`), and how far the current z has been moved along each.

One owner (:class:`Directions`) for the list, the amounts and the two groups kept from the
map's selection; the Directions panel (``explorer.widgets.directions``) takes it and
subscribes. Groups are test images (rows of ``session.data.test_x``) encoded with the
session's model as they are now: two classes or a CelebA attribute among the map's test
images, two selections kept from ``session.selection``, or the Arithmetic view's b and a.

An amount moves z: setting direction k's amount from t0 to t1 adds (t1 - t0) times its
vector to the current z. When z moves some other way (the map, a slider, Sample), every
amount goes back to 0: the amounts always say how far z is from where it was put last.
"""

from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QMetaMethod, QObject, Signal

from explorer.state import Session
from trainer.directions import (
    Direction,
    DirectionError,
    apart,
    attribute_rows,
    check_group,
    class_members,
    direction,
    sweep,
)

ENCODE_BATCH = 2000
GROUPS = ("A", "B")


class Directions(QObject):
    changed = Signal()  # the list of directions changed (added, removed, dropped)
    amountsChanged = Signal()  # an amount moved, or all went back to 0
    groupsChanged = Signal()  # a group kept from the selection changed
    # (u, v, names): two directions (D,) float32 the map is asked to use as its axes, and
    # the names its axes carry (the second's: the part of it orthogonal to the first)
    axes_requested = Signal(object, object, object)
    said = Signal(str, str)  # (text, "info" | "warning"): what the panel says

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.items: list[Direction] = []
        self.amounts: list[float] = []
        self.starts: list[np.ndarray | None] = []  # each one's source group's mean, if known
        self.kept: dict[str, tuple[np.ndarray, str] | None] = {g: None for g in GROUPS}
        self._moving = False
        session.zChanged.connect(self._z_moved)
        session.structureChanged.connect(self._structure_changed)
        session.dataChanged.connect(self._data_changed)

    def __len__(self) -> int:
        return len(self.items)

    # -- what happens elsewhere ---------------------------------------------------------------
    def _z_moved(self) -> None:
        if not self._moving and any(self.amounts):
            self.amounts = [0.0] * len(self.items)
            self.amountsChanged.emit()

    def _structure_changed(self) -> None:
        """Another latent size: directions of the old size mean nothing in it."""
        d = self.session.latent_dim
        keep = [i for i, it in enumerate(self.items) if it.dim == d]
        if len(keep) < len(self.items):
            gone = len(self.items) - len(keep)
            self._keep_only(keep)
            self.said.emit(
                f"{gone} direction{'s' if gone != 1 else ''} of another latent size "
                f"{'were' if gone != 1 else 'was'} dropped: this model's latent has {d}",
                "warning",
            )

    def _data_changed(self) -> None:
        if any(self.kept.values()):
            self.kept = {g: None for g in GROUPS}  # rows of the old test set
            self.groupsChanged.emit()

    def _keep_only(self, keep: list[int]) -> None:
        self.items = [self.items[i] for i in keep]
        self.amounts = [self.amounts[i] for i in keep]
        self.starts = [self.starts[i] for i in keep]
        self.changed.emit()
        self.amountsChanged.emit()

    # -- codes ----------------------------------------------------------------------------------
    def _ready(self) -> str | None:
        s = self.session
        if s.model is None or s.data is None or len(s.data.test_x) == 0:
            return "There is no model and test set to make a direction from yet."
        if s.data.image_shape != tuple(s.model.config.image_shape):
            return "The test images do not fit the model: no direction can be made from them."
        return None

    def codes_of(self, rows) -> np.ndarray:
        """The posterior means of test images ``rows`` with the model as it is now: (N, D)."""
        s = self.session
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        parts = []
        for k in range(0, len(rows), ENCODE_BATCH):
            idx = torch.from_numpy(rows[k : k + ENCODE_BATCH])
            y = s.data.test_y[idx] if s.conditional and s.data.test_y is not None else None
            parts.append(s.encode(s.data.test_x[idx], y))
        return np.concatenate(parts) if parts else np.zeros((0, s.latent_dim), np.float32)

    def from_rows(self, source_rows, target_rows, source: str, target: str) -> Direction | None:
        """Add the direction from one set of test images to another (their mean codes);
        None, and the reason said, when it cannot be made."""
        problem = self._ready()
        if problem is None:
            n = len(self.session.data.test_x)
            try:
                groups = [
                    check_group(r, w) for r, w in ((source_rows, source), (target_rows, target))
                ]
                for rows, what in zip(groups, (source, target), strict=True):
                    bad = rows[(rows < 0) | (rows >= n)]
                    if len(bad):
                        raise DirectionError(f"{what}: image {int(bad[0])} is not in the test set")
            except DirectionError as e:
                problem = str(e)
        if problem is not None:
            self.said.emit(problem, "warning")
            return None
        src, tgt = self.codes_of(groups[0]), self.codes_of(groups[1])
        d = direction(src, tgt, source, target)
        if d.length < 1e-9:
            self.said.emit(
                f"{source} and {target} have the same mean code: no direction", "warning"
            )
            return None
        return self.add(d, src.astype(np.float64).mean(0).astype(np.float32))

    def _map_rows(self) -> np.ndarray:
        """The map's test images (rows of data.test_x): the groups of classes and
        attributes are taken among them, as the map shows them."""
        return np.asarray(self.session.test_index, dtype=np.int64)

    def from_classes(self, a, b) -> Direction | None:
        """The direction from class ``a`` to class ``b`` (numbers), over the map's images."""
        s = self.session
        problem = self._ready()
        if problem is None and s.data.test_y is None:
            problem = "These test images have no labels: keep two selections as groups instead."
        if problem is None and int(a) == int(b):
            problem = "The two classes are the same: that direction is nothing."
        if problem is not None:
            self.said.emit(problem, "warning")
            return None
        rows = self._map_rows()
        labels = s.data.test_y[torch.from_numpy(rows)].numpy()
        names = [self._class_name(int(k)) for k in (a, b)]
        return self.from_rows(
            rows[class_members(labels, int(a))], rows[class_members(labels, int(b))], *names
        )

    def _class_name(self, k: int) -> str:
        names = self.session.class_names
        return f"class {names[k] if k < len(names) else k}"

    def from_attributes(self, name: str, other: str | None = None) -> Direction | None:
        """CelebA: from the map's faces without attribute ``name`` to those with it; with
        ``other``, from the faces with ``other`` to those with ``name``."""
        s = self.session
        problem = self._ready()
        att = None if s.data is None else s.data.attributes
        if problem is None and att is None:
            problem = "These images have no attributes (CelebA's faces have 40)."
        if problem is None and other == name:
            problem = "The two attributes are the same: that direction is nothing."
        if problem is not None:
            self.said.emit(problem, "warning")
            return None
        rows = self._map_rows()
        table = (att.names, att.test[torch.from_numpy(rows)].numpy())
        try:
            on, off = attribute_rows(table, name)
            if other is None:
                return self.from_rows(rows[off], rows[on], f"not {name}", name)
            other_on, _ = attribute_rows(table, other)
        except DirectionError as e:
            self.said.emit(str(e), "warning")
            return None
        return self.from_rows(rows[other_on], rows[on], other, name)

    # -- groups kept from the selection ---------------------------------------------------------
    def keep_selection(self, group: str) -> bool:
        """Keep the map's selection as group "A" or "B" (the direction goes from A to B)."""
        if group not in GROUPS:
            raise ValueError(f"group must be A or B, not {group!r}")
        rows = np.array(self.session.selection.rows, dtype=np.int64)
        if len(rows) == 0:
            self.said.emit(
                f"Nothing is selected: select test images on the map (shift-click or lasso), "
                f"then keep them as group {group}.",
                "warning",
            )
            return False
        self.kept[group] = (rows, f"selection {group}")
        self.groupsChanged.emit()
        return True

    def from_kept(self) -> Direction | None:
        """The direction from the group kept as A to the one kept as B."""
        missing = [g for g in GROUPS if self.kept[g] is None]
        if missing:
            self.said.emit(
                f"Keep a selection as group {' and '.join(missing)} first: a direction goes "
                "from group A to group B.",
                "warning",
            )
            return None
        (ra, na), (rb, nb) = self.kept["A"], self.kept["B"]
        try:
            a, b, shared = apart(ra, rb)
        except DirectionError as e:
            text = str(e)
            self.said.emit(
                f"{text[:1].upper()}{text[1:]}; keep another selection as A or B.", "warning"
            )
            return None
        d = self.from_rows(a, b, na, nb)
        if d is not None and shared:
            where = (
                "left out of B"
                if len(a) == len(np.unique(ra))
                else "left out of A"
                if len(b) == len(np.unique(rb))
                else "left out of both"
            )
            self.said.emit(
                f"Added {d.describe()}. A and B share {shared:,} image"
                f"{'s' * (shared != 1)}: {where}.",
                "warning",
            )
        return d

    # -- the list -------------------------------------------------------------------------------
    def add(self, d: Direction, start: np.ndarray | None = None) -> Direction | None:
        if d.dim != self.session.latent_dim:
            self.said.emit(
                f"{d.name}: has {d.dim} values; this model's latent has {self.session.latent_dim}",
                "warning",
            )
            return None
        self.items.append(d)
        self.amounts.append(0.0)
        self.starts.append(None if start is None else np.asarray(start, dtype=np.float32))
        self.changed.emit()
        self.said.emit(f"Added {d.describe()}", "info")
        return d

    def remove(self, rows) -> None:
        drop = {int(r) for r in rows}
        self._keep_only([i for i in range(len(self.items)) if i not in drop])

    def clear(self) -> None:
        self._keep_only([])

    def set_amount(self, k: int, amount: float) -> None:
        """Move z along direction ``k`` to ``amount`` times it from where z was put."""
        amount = float(amount)
        if not np.isfinite(amount):
            raise ValueError(f"an amount must be a finite number, not {amount!r}")
        delta = amount - self.amounts[k]
        if delta == 0:
            return
        z = self.session.z + delta * torch.from_numpy(self.items[k].vector)
        self.amounts[k] = amount
        self._moving = True
        try:
            self.session.set_z(z)
        finally:
            self._moving = False
        self.amountsChanged.emit()

    # -- sweeps and axes ------------------------------------------------------------------------
    def sweep_codes(self, k: int, steps: int = 9, span=(0.0, 1.0), from_group: bool = True):
        """The codes of a sweep along direction ``k``: from its source group's mean (where
        known and ``from_group``), else from the current z: (steps, D)."""
        start = self.starts[k] if from_group and self.starts[k] is not None else self.session.z
        return sweep(start, self.items[k], steps, span)

    def sweep_images(self, k: int, steps: int = 9, span=(0.0, 1.0), from_group: bool = True):
        """The sweep decoded in one batch (under the current class): (steps, C, H, W)."""
        return self.session.decode(self.sweep_codes(k, steps, span, from_group))

    def axes_connected(self) -> bool:
        """Whether anything (the map) listens to :attr:`axes_requested`."""
        return self.isSignalConnected(QMetaMethod.fromSignal(self.axes_requested))

    def use_as_axes(self, rows) -> bool:
        """Ask the map to take two directions as its axes (the projector's custom
        projection); one line says why not when it cannot."""
        rows = [int(r) for r in rows]
        if len(rows) != 2:
            self.said.emit(
                f"Select two directions to use as the map's axes ({len(rows)} selected).",
                "warning",
            )
            return False
        u, v = (self.items[r].vector for r in rows)
        cos = float(u @ v) / max(1e-12, float(np.linalg.norm(u) * np.linalg.norm(v)))
        if abs(cos) > 1 - 1e-6:
            self.said.emit("The two directions are parallel: they span no plane.", "warning")
            return False
        if not self.axes_connected():
            self.said.emit("The map cannot take directions as its axes in this window.", "warning")
            return False
        a, b = (self.items[r].name for r in rows)
        self.axes_requested.emit(u.copy(), v.copy(), (a, f"{b} (orthogonal part)"))
        self.said.emit(
            f"The map's axes: {a} across, {b} (its part orthogonal to the first) up; "
            "see the Explore tab.",
            "info",
        )
        return True

    # -- bookmarks -------------------------------------------------------------------------------
    def bookmark(self) -> dict:
        """The directions, their amounts, where each one's sweep starts and the groups kept
        as A and B (JSON values)."""
        return {
            "kept": {
                g: None
                if self.kept[g] is None
                else {"rows": [int(r) for r in self.kept[g][0]], "name": self.kept[g][1]}
                for g in GROUPS
            },
            "directions": [
                {
                    "name": d.name,
                    "vector": [float(v) for v in d.vector],
                    "source": d.source,
                    "target": d.target,
                    "source_size": d.source_size,
                    "target_size": d.target_size,
                    "start": None if s is None else [float(v) for v in s],
                    "amount": a,
                }
                for d, s, a in zip(self.items, self.starts, self.amounts, strict=True)
            ],
        }

    def restore(self, d: dict) -> None:
        """Take the directions of :meth:`bookmark` back; ValueError naming the field that does
        not fit (and nothing changed)."""
        if not isinstance(d, dict) or not isinstance(d.get("directions"), list):
            raise ValueError("directions: expected a list of directions")
        dim = self.session.latent_dim
        items, starts, amounts = [], [], []
        for i, e in enumerate(d["directions"]):
            where = f"directions[{i}]"
            if not isinstance(e, dict):
                raise ValueError(f"{where}: expected an object")
            for key in ("name", "source", "target"):
                if not isinstance(e.get(key), str):
                    raise ValueError(f"{where}.{key}: expected text")
            for key in ("source_size", "target_size"):
                v = e.get(key)
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ValueError(f"{where}.{key}: expected a whole number of at least 1")
            vector = _numbers(e.get("vector"), dim, f"{where}.vector")
            start = None if e.get("start") is None else _numbers(e["start"], dim, f"{where}.start")
            amount = e.get("amount", 0.0)
            if (
                isinstance(amount, bool)
                or not isinstance(amount, int | float)
                or not np.isfinite(amount)
            ):
                raise ValueError(f"{where}.amount: expected a finite number")
            items.append(
                Direction(
                    e["name"], vector, e["source"], e["target"], e["source_size"], e["target_size"]
                )
            )
            starts.append(start)
            amounts.append(float(amount))
        kept = self._kept_of(d.get("kept"))
        self.items, self.starts, self.amounts = items, starts, amounts
        self.changed.emit()
        self.amountsChanged.emit()
        self.kept = kept
        self.groupsChanged.emit()

    def _kept_of(self, value) -> dict:
        """The groups A and B of a bookmark (none kept where it has none), checked."""
        kept = {g: None for g in GROUPS}
        if value is None:
            return kept
        if not isinstance(value, dict) or set(value) - set(GROUPS):
            raise ValueError("directions.kept: expected an object with groups A and B")
        n = len(self.session.data.test_x) if self.session.data is not None else 0
        for g in GROUPS:
            e = value.get(g)
            if e is None:
                continue
            where = f"directions.kept.{g}"
            if not isinstance(e, dict) or not isinstance(e.get("name"), str):
                raise ValueError(f"{where}: expected an object with rows and a name")
            rows = e.get("rows")
            if (
                not isinstance(rows, list)
                or not rows
                or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows)
            ):
                raise ValueError(f"{where}.rows: expected a list of test image numbers")
            bad = [r for r in rows if not 0 <= r < n]
            if bad:
                raise ValueError(f"{where}.rows: image {bad[0]} is not among the {n:,} test images")
            kept[g] = (np.asarray(rows, dtype=np.int64), e["name"])
        return kept


def _numbers(value, dim: int, where: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"{where}: expected a list of numbers")
    if len(value) != dim:
        raise ValueError(f"{where}: has {len(value)} values; this model's latent has {dim}")
    a = np.asarray(value, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: holds a number that is not finite")
    return a
