"""Bookmarks: a view saved to a small JSON file and reopened exactly (File ▸ Save view…,
File ▸ Open view…, ``latent-explorer VIEW.json``).

A view file names the model (a checkpoint's path, a bundled example's name, or a user's
own model: ``FILE.py:FUNCTION`` with its weights and output kind, or an ONNX pair's folder),
the data its images come from, the current z, class, map dimensions and plane, the selected
test images (``Session.selection``) and the state of every registered owner: an owner of
state worth keeping (the map's method, the directions, …) is registered under a key
(:meth:`Bookmarks.register`) and gives ``bookmark() -> dict`` (JSON-safe values) and
``restore(d)`` (raising ``ValueError``, one line naming the field, where ``d`` does not fit).

Reading checks every field (:func:`trainer.files.read_json`, :class:`~trainer.files.JSONFields`:
bounded, typed); each mistake is one line (:class:`ViewError`) naming the file and the
field, and a model file that is missing is named.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from trainer.files import (
    JSONFields,
    JSONFileError,
    RefusedOutput,
    atomic_write,
    output_target,
    printable,
    read_json,
)

FORMAT = "latent-explorer-view"
VERSION = 1
SUFFIX = ".json"
MAX_VIEW_BYTES = 16 << 20
MAX_LATENT = 4096
MAX_ROWS = 10_000_000
OUTPUTS = ("logits", "probs", "mean")


class ViewError(ValueError):
    """A view that cannot be written, read or shown: one line saying why."""


@dataclass
class View:
    """What a view file holds, every field checked (see :func:`read_view`)."""

    model: dict  # {"checkpoint": PATH} | {"example": NAME} | {"own": SPEC, "weights", "output"}
    data: dict | None  # the DataSpec's fields
    z: list[float]
    cls: int = 0
    dims: tuple[int, int] = (0, 1)
    pca: bool = False
    selection: list[int] = field(default_factory=list)
    owners: dict[str, dict] = field(default_factory=dict)
    path: Path | None = None

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "data": self.data,
            "z": self.z,
            "class": self.cls,
            "dims": list(self.dims),
            "plane": "pca" if self.pca else "axes",
            "selection": self.selection,
            "owners": self.owners,
        }

    def describe_model(self) -> str:
        m = self.model
        if "example" in m:
            return f"the example {m['example']}"
        return printable(m.get("checkpoint") or m.get("own") or "?")


# -- the model a view names ------------------------------------------------------------------
def model_entry(session, kept: str | None = None) -> dict:
    """How a view names the session's model, so that it can be opened again; ViewError where
    it cannot be: a model given from Python (no file holds its code), one in no file yet,
    one trained since it was saved. ``kept``: the weights file a user's model that trained
    here was kept with (its run's), if it has all of its training."""
    from trainer.examples import is_example

    if session.model is None:
        raise ViewError("there is no model on screen to bookmark")
    config = session.model_config
    if getattr(config, "arch", "") == "foreign":
        spec = getattr(config, "spec", "")
        if not spec:
            raise ViewError(
                "your model was given from Python, so no file holds its code: a view of it "
                "cannot be reopened (open it with latent-explorer --model FILE.py:FUNCTION to "
                "bookmark it)"
            )
        weights = config.weights
        if session.step > 0:
            if not kept:
                raise ViewError(
                    "your model has trained here since it was opened: keep it as a run first "
                    "(File ▸ Save), or the view would reopen it as its file has it"
                )
            weights = kept
        entry = {"own": spec, "output": config.output}
        if weights:
            entry["weights"] = weights
        return entry
    source = session.source
    if source is None or session.unsaved:
        raise ViewError(
            "the model on screen is in no file as it is now: save it first "
            "(File ▸ Save checkpoint…), then save the view"
        )
    if is_example(source):
        return {"example": Path(source).parent.name}
    return {"checkpoint": str(Path(source).absolute())}


def _model_file(f: JSONFields) -> dict:
    """The ``model`` object, checked; the file or folder it names must exist."""
    from trainer.examples import names

    m = f.object("model")
    kinds = [k for k in ("checkpoint", "example", "own") if k in m.value]
    if len(kinds) != 1:
        raise m.error("", "must name one of checkpoint, example or own (a model of your own)")
    kind = kinds[0]
    if kind == "example":
        name = m.text("example")
        if name not in names():
            raise m.error("example", f"{printable(name)!r} is no bundled example")
        return {"example": name}
    if kind == "checkpoint":
        path = m.text("checkpoint", path=True)
        if not os.path.isfile(path):
            raise m.error("checkpoint", f"names {printable(path)}, which does not exist")
        return {"checkpoint": path}
    spec = m.text("own", path=True)
    weights = m.text("weights", None, path=True)
    output = m.text("output", "logits")
    if output not in OUTPUTS:
        raise m.error("output", f"must be one of {', '.join(OUTPUTS)}, not {printable(output)!r}")
    file = spec if os.path.isdir(spec) else spec.rpartition(":")[0]
    if not file or not os.path.exists(file):
        raise m.error("own", f"names {printable(file or spec)}, which does not exist")
    if weights is not None and not os.path.isfile(weights):
        raise m.error("weights", f"names {printable(weights)}, which does not exist")
    return {"own": spec, "weights": weights, "output": output}


def read_view(path: str | os.PathLike) -> View:
    """The view ``path`` holds, every field checked (:class:`ViewError`, one line)."""
    try:
        f = JSONFields(path, read_json(path, MAX_VIEW_BYTES))
        fmt = f.text("format")
        if fmt != FORMAT:
            why = f"must be {FORMAT!r} (a saved view), not {printable(fmt)[:60]!r}"
            raise f.error("format", why)
        version = f.whole("version", 1)
        if version > VERSION:
            raise f.error("version", f"is {version}: written by a newer version")
        model = _model_file(f)
        data = f.object("data", None)
        z = f.items("z")
        if not 1 <= len(z) <= MAX_LATENT:
            raise f.error("z", f"must hold 1 to {MAX_LATENT} numbers, not {len(z)}")
        for i, v in enumerate(z):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise f.error(f"z[{i}]", "must be a finite number")
        cls = f.whole("class", 0, 100_000, default=0)
        dims = f.items("dims", [0, 1])
        if len(dims) != 2 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < len(z) for d in dims
        ):
            raise f.error("dims", f"must be two dimensions of the latent, 0 to {len(z) - 1}")
        plane = f.text("plane", "axes")
        if plane not in ("axes", "pca"):
            raise f.error("plane", f"must be axes or pca, not {printable(plane)[:40]!r}")
        rows = f.items("selection", [])
        if len(rows) > MAX_ROWS or not all(
            isinstance(r, int) and not isinstance(r, bool) and 0 <= r < MAX_ROWS for r in rows
        ):
            raise f.error("selection", "must be a list of test image rows (whole numbers from 0)")
        owners = f.object("owners", None)
        kept = {}
        for key in owners.value if owners is not None else {}:
            kept[key] = owners.object(key).value
    except JSONFileError as e:
        raise ViewError(str(e)) from None
    spec = None
    if data is not None:
        from trainer.data.spec import DataError, DataSpec

        try:
            spec = DataSpec.from_dict(data.value).to_dict()
        except (DataError, ValueError, TypeError) as e:
            raise ViewError(f"{printable(str(path))}: 'data' {printable(str(e))[:160]}") from None
    if "own" in model and spec is None:
        raise ViewError(f"{printable(str(path))}: 'data' is missing (your model's images)")
    return View(
        model=model,
        data=spec,
        z=[float(v) for v in z],
        cls=cls,
        dims=(dims[0], dims[1]),
        pca=plane == "pca",
        selection=sorted(set(rows)),
        owners=kept,
        path=Path(path),
    )


def write_view(view: View, path: str | os.PathLike) -> Path:
    """``view`` written to ``path`` (atomically; a device, a folder or a broken link is
    refused)."""
    try:
        output_target(path)
    except RefusedOutput as e:
        raise ViewError(f"{printable(str(path))}: {e.strerror}; nothing was written") from None
    blob = (json.dumps(view.to_json(), indent=1) + "\n").encode()
    try:
        return atomic_write(path, lambda f: f.write(blob))
    except OSError as e:
        raise ViewError(f"{printable(str(path))}: cannot be written ({e.strerror or e})") from None


# -- the window's owner of bookmarks ---------------------------------------------------------
class Bookmarks(QObject):
    """Collects a view from the session and the registered owners, and puts one back.

    ``restored`` is emitted with the view once it is on screen; ``problem`` with the line
    saying what could not be restored (the rest of the view is)."""

    restored = Signal(object)
    problem = Signal(str)

    def __init__(self, session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.owners: dict[str, object] = {}
        # the weights file a user's model that trained here is kept with, if any (the
        # window's: its run's model.safetensors while that run has all of its steps)
        self.kept_weights: Callable[[], str | None] = lambda: None

    def register(self, key: str, owner) -> None:
        """Keep ``owner``'s state in every view under ``key`` (it gives ``bookmark()`` and
        ``restore(d)``)."""
        gives = [callable(getattr(owner, n, None)) for n in ("bookmark", "restore")]
        if not all(gives):
            raise TypeError(f"{key}: an owner gives bookmark() and restore(d)")
        if key in self.owners:
            raise ValueError(f"{key}: is registered already")
        self.owners[key] = owner

    def collect(self) -> View:
        """The view on screen (ViewError where its model cannot be named)."""
        s = self.session
        model = model_entry(s, self.kept_weights())
        owners = {}
        for key, owner in self.owners.items():
            d = owner.bookmark()
            try:
                json.dumps(d, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise ViewError(f"the {key} state cannot be saved in a view ({e})") from None
            owners[key] = d
        return View(
            model=model,
            data=s.data_spec.to_dict() if s.data_spec is not None else None,
            z=[float(v) for v in s.z.tolist()],
            cls=int(s.cls),
            dims=(int(s.dims[0]), int(s.dims[1])),
            pca=bool(s.pca),
            selection=[int(r) for r in s.selection.rows.tolist()],
            owners=owners,
        )

    def save(self, path: str | os.PathLike) -> Path:
        return write_view(self.collect(), path)

    def apply(self, view: View) -> list[str]:
        """Put ``view``'s state on screen (the model and its data already are): z, class,
        dimensions, plane, selection, then each owner's. Returns the lines of what could not
        be restored (each also emitted as ``problem``)."""
        s = self.session
        where = printable(str(view.path)) if view.path else "the view"
        problems: list[str] = []
        if s.model is None:
            problems.append(f"{where}: its model could not be opened, so nothing is restored")
        else:
            d = s.latent_dim
            if len(view.z) != d:
                problems.append(
                    f"{where}: 'z' has {len(view.z)} values; the model's latent has {d}"
                )
            else:
                s.set_z(view.z)
                if max(view.dims) < d:
                    s.set_dims(*view.dims)
                s.set_pca(view.pca)
            if s.conditional:
                if view.cls < s.model_config.num_classes:
                    s.set_class(view.cls)
                else:
                    problems.append(
                        f"{where}: 'class' {view.cls} is not one of the model's classes"
                    )
            n = len(s.data.test_x) if s.data is not None else 0
            bad = [r for r in view.selection if r >= n]
            if bad:
                problems.append(
                    f"{where}: 'selection' names row {bad[0]}, and the test set has {n} images"
                )
            else:
                s.selection.set(view.selection)
        for key, d in view.owners.items():
            owner = self.owners.get(key)
            if owner is None:
                problems.append(f"{where}: '{printable(key)}' is not restored (no such view here)")
                continue
            try:
                owner.restore(d)
            except ValueError as e:
                problems.append(f"{where}: '{printable(key)}' {e}")
        for line in problems:
            self.problem.emit(line)
        self.restored.emit(view)
        return problems


# -- opening a view in the window ------------------------------------------------------------
def open_view(win, view: View, own=None) -> bool:
    """Open ``view`` in ``win``: its model (``own``: a user's model already read from the
    view's ``own`` entry; else it is read here), its data, then its state. What fails is said
    in the window's message bar. False if the model could not even be opened."""
    from explorer.own_model import open_own
    from trainer.data.spec import DataSpec
    from trainer.examples import example_path

    m = view.model
    spec = DataSpec.from_dict(view.data) if view.data is not None else None
    apply = lambda: win.bookmarks.apply(view)  # noqa: E731
    if "own" in m:
        if own is None:
            from trainer.onnx_pair import OnnxPairError
            from trainer.user_code import UserCodeError, open_model

            try:
                own = open_model(m["own"], m["weights"])
            except (UserCodeError, OnnxPairError) as e:
                win.show_message(f"{view.path}: its model cannot be opened: {e}", "error")
                return False

        def opened():
            if open_own(win, own, m["output"]):
                apply()

        win.panel.show_data_spec(spec)  # the data chosen on the left is the view's
        win.run.load_data(spec, then=opened)
        return True
    path = example_path(m["example"]) if "example" in m else Path(m["checkpoint"])
    if not win.open_checkpoint(path):
        return False

    def loaded():
        s = win.session
        if spec is not None and s.data_spec != spec:  # the view was on other images
            win.panel.show_data_spec(spec)
            win.run.load_data(spec, then=apply)
        else:
            apply()

    win.run.when_loaded(loaded)
    return True


def save_view_dialog(win) -> Path | None:
    """File ▸ Save view…: ask where, then write the view on screen; why not, in one line."""
    from PySide6.QtWidgets import QFileDialog

    try:
        view = win.bookmarks.collect()  # before asking: a model it cannot name is said now
    except ViewError as e:
        win.show_message(f"{str(e)[0].upper()}{str(e)[1:]}.", "warning", topic="view")
        return None
    path, _ = QFileDialog.getSaveFileName(
        win, "Save view", win.places.suggest("views", "view.json"), "Views (*.json)"
    )
    if not path:
        return None
    return save_view(win, view, path)


def save_view(win, view: View, path: str | os.PathLike) -> Path | None:
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        path = path.with_suffix(SUFFIX)
    try:
        out = write_view(view, path)
    except ViewError as e:
        win.show_message(str(e), "error", topic="view")
        return None
    win.places.remember("views", out)
    win.show_message(f"Saved the view to {out} (latent-explorer {out} reopens it)", "info")
    return out


def open_view_dialog(win) -> None:
    """File ▸ Open view…: ask which, then open it; a file that does not fit, in one line."""
    from PySide6.QtWidgets import QFileDialog

    if win.run.running:
        win.show_message("Stop training before opening a view.", "warning", topic="open")
        return
    path, _ = QFileDialog.getOpenFileName(
        win, "Open view", win.places.start("views"), "Views (*.json);;All files (*)"
    )
    if path:
        open_view_file(win, path)


def open_view_file(win, path: str | os.PathLike) -> bool:
    try:
        view = read_view(path)
    except ViewError as e:
        win.show_message(str(e), "error", topic="view")
        return False
    ok = open_view(win, view)
    if ok:
        win.places.remember("views", path)
    return ok
