"""Runs side by side: a project folder that keeps every run of the user's sessions.

A project is a folder (default: ``~/.local/share/latent-explorer/projects/default``, or
``$LATENT_EXPLORER_PROJECT``) with one sub-folder per run, ``runs/<id>/``, holding
``run.json``: the run's name, where it came from (trained in the window, a checkpoint
opened, a ``latent-train train --out`` folder), its settings, its test curve (test -ELBO per
epoch), its final metrics (and what Evaluate measured), and the checkpoint that holds its
model: ``model.safetensors`` beside it for a run trained in the window, the user's own file
otherwise. So a beta sweep done on Monday can be compared on Tuesday.

A run trained in the window is one model: stopping it and continuing it (once or many
times) goes on with the same run, whose checkpoint, epochs, curve and numbers are brought
up to date (:meth:`Project.update_trained`). Its training film, if it was filmed, is kept
beside the model as ``film.bin`` (:func:`trainer.film.write_film`: the frames within the
film's memory bound, compressed and checksummed), named by the run and the step, epochs
and last test -ELBO of the model it shows, so that it is never shown with another one.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from .files import atomic_write

RUN_FILE, MODEL_FILE, FILM_FILE = "run.json", "model.safetensors", "film.bin"
MAX_RUN_BYTES = 4 << 20
# the settings compared between runs, as (label, where in run.json)
SETTINGS = (
    ("data", ("data",)), ("model", ("model", "model")), ("body", ("model", "arch")),
    ("latent", ("model", "latent_dim")), ("hidden", ("model", "hidden")),
    ("decoder", ("model", "likelihood")), ("beta", ("train", "beta")),
    ("lr", ("train", "lr")), ("batch", ("train", "batch_size")),
    ("warm-up", ("train", "warmup_epochs")), ("seed", ("train", "seed")),
    ("epochs", ("epochs",)),
)  # fmt: skip


# what every run.json holds (the other fields have defaults: older versions wrote no film)
REQUIRED = ("id", "name", "source", "checkpoint", "created", "data", "model", "train", "epochs",
            "steps")  # fmt: skip


class RunsError(Exception):
    pass


def default_project() -> Path:
    env = os.environ.get("LATENT_EXPLORER_PROJECT")
    if env:
        return Path(env)
    if os.environ.get("XDG_DATA_HOME"):
        base = Path(os.environ["XDG_DATA_HOME"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path.home() / ".local" / "share"
    return base / "latent-explorer" / "projects" / "default"


@dataclass
class RunRecord:
    id: str
    name: str
    source: str  # "trained", "opened" or "folder"
    checkpoint: str  # the file that holds the model
    created: str
    data: str
    model: dict
    train: dict
    epochs: int
    steps: int
    curve: list = field(default_factory=list)  # [[epoch, test -ELBO], ...]
    metrics: dict = field(default_factory=dict)  # test_nelbo, test_nll_iw, active_units, …
    film: int = 0  # frames of the training film kept beside it (film.bin)

    def setting(self, where: tuple[str, ...]):
        v = asdict(self)
        for key in where:
            v = v.get(key) if isinstance(v, dict) else None
        return v

    @property
    def test_nelbo(self) -> float | None:
        v = self.metrics.get("test_nelbo")
        if v is None and self.curve:
            v = self.curve[-1][1]
        return v if isinstance(v, int | float) else None


def differing(records: list[RunRecord]) -> dict[str, list]:
    """The settings whose values differ among ``records``: {label: [value per record]}."""
    out = {}
    for label, where in SETTINGS:
        values = [r.setting(where) for r in records]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            out[label] = values
    return out


def data_title(spec) -> str:
    """The runs table's data: a bundled example's names what it was trained on (its file
    holds only the bundled test images to explore it with)."""
    from .data import EXAMPLE

    if spec is None:
        return "(none recorded)"
    if spec.source == EXAMPLE:
        from .examples import trained_on

        return trained_on(spec.bundle)
    return spec.describe()


def _record_from_checkpoint(ck, rid: str, name: str, source: str, path: Path) -> RunRecord:
    mc, tc = ck.model_config, ck.train_config
    curve = [[int(e["epoch"]), float(e["test_nelbo"])] for e in ck.history.epochs]
    return RunRecord(
        id=rid, name=name, source=source, checkpoint=str(path),
        created=datetime.now().isoformat(sep=" ", timespec="microseconds"),  # orders runs
        data=data_title(ck.data_spec),
        model=mc.to_dict(), train=tc.to_dict(), epochs=ck.epochs_done, steps=ck.step,
        curve=curve, metrics={"test_nelbo": curve[-1][1]} if curve else {},
    )  # fmt: skip


def film_owner(rec: RunRecord) -> dict:
    """What a run's kept film is the film of: the run, and its model's step, epochs and
    last test -ELBO (a film is shown only with the model these describe)."""
    return {"run": rec.id, "step": rec.steps, "epochs": rec.epochs,
            "test_nelbo": rec.curve[-1][1] if rec.curve else None}  # fmt: skip


class Project:
    """The runs kept in ``folder``. Reading never fails on a damaged run: it is skipped
    (``problems`` says which and why)."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_project()
        self.problems: list[str] = []

    @property
    def runs_dir(self) -> Path:
        return self.folder / "runs"

    def runs(self) -> list[RunRecord]:
        """Every readable run, oldest first."""
        self.problems = []
        out = []
        if not self.runs_dir.is_dir():
            return out
        for d in sorted(self.runs_dir.iterdir()):
            f = d / RUN_FILE
            if not f.is_file():
                continue
            try:
                if f.stat().st_size > MAX_RUN_BYTES:
                    raise ValueError("too large")
                raw = json.loads(f.read_text())
                fields = RunRecord.__dataclass_fields__
                out.append(RunRecord(**{k: raw[k] for k in fields if k in raw or k in REQUIRED}))
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.problems.append(f"{f}: skipped ({e})")
        out.sort(key=lambda r: (r.created, r.id))
        return out

    def get(self, rid: str) -> RunRecord | None:
        return next((r for r in self.runs() if r.id == rid), None)

    def _write(self, rec: RunRecord) -> RunRecord:
        folder = self.runs_dir / rec.id
        folder.mkdir(parents=True, exist_ok=True)
        blob = (json.dumps(asdict(rec), indent=1) + "\n").encode()
        atomic_write(folder / RUN_FILE, lambda f: f.write(blob))
        return rec

    def _new_id(self) -> str:
        return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    def add_trained(self, save, name: str | None = None) -> RunRecord:
        """A run trained in the window: ``save(path)`` writes its checkpoint into the run's
        folder (``trainer.checkpoint.save_checkpoint`` with everything to continue it)."""
        from .checkpoint import load_checkpoint

        rid = self._new_id()
        folder = self.runs_dir / rid
        folder.mkdir(parents=True, exist_ok=True)
        path = save(folder / MODEL_FILE)
        ck = load_checkpoint(path)
        n = len(self.runs()) + 1
        name = name or f"run {n}: {ck.model_config.latent_dim}-D {ck.model_config.model}"
        return self._write(_record_from_checkpoint(ck, rid, name, "trained", path))

    def owns(self, rec: RunRecord) -> bool:
        """Whether ``rec`` is a run trained in the window whose model this project holds
        (the runs a continue of their model goes on with)."""
        mine = self.runs_dir / rec.id / MODEL_FILE
        try:
            return rec.source == "trained" and Path(rec.checkpoint).resolve() == mine.resolve()
        except (OSError, RuntimeError):
            return False

    def update_trained(self, rid: str, save) -> RunRecord:
        """The same run trained further (stopped and continued): ``save(path)`` writes the
        model over the run's checkpoint, and its epochs, curve (the whole history) and
        numbers follow. Its name and place among the runs stay; what Evaluate measured
        was of the model before, so it goes. A film kept for the model before goes too
        (:meth:`keep_film` keeps the new one)."""
        from .checkpoint import load_checkpoint

        rec = self.get(rid)
        if rec is None or not self.owns(rec):
            raise RunsError(f"{rid}: is no run trained in the window in {self.folder}")
        path = save(self.runs_dir / rid / MODEL_FILE)
        ck = load_checkpoint(path)
        new = _record_from_checkpoint(ck, rid, rec.name, "trained", path)
        new.created = rec.created
        (self.runs_dir / rid / FILM_FILE).unlink(missing_ok=True)
        return self._write(new)

    def keep_film(self, rid: str, film) -> RunRecord | None:
        """Keep ``film`` (:class:`trainer.film.Film`) with run ``rid``, as the film of its
        model as it is now. Raises :class:`trainer.film.FilmError` if it cannot be written
        (the run is kept all the same)."""
        from .film import write_film

        rec = self.get(rid)
        if rec is None or not len(film):
            return rec
        write_film(film, self.runs_dir / rid / FILM_FILE, film_owner(rec))
        rec.film = len(film)
        return self._write(rec)

    def film(self, rec: RunRecord):
        """The film kept with ``rec``, or None if it has none. Raises
        :class:`trainer.film.FilmError` for a damaged or foreign file, or one whose model is
        not the run's as it is now."""
        from .film import FilmError, read_film

        path = self.runs_dir / rec.id / FILM_FILE
        if not path.is_file():
            return None
        film = read_film(path)
        if film.owner != film_owner(rec):
            raise FilmError(f"{path}: is the film of another model than run “{rec.name}” "
                            "(not shown)")  # fmt: skip
        return film

    def add_file(self, path: str | os.PathLike, source: str = "opened") -> RunRecord:
        """A checkpoint the user opened (kept where it is); the same file is one run."""
        from .checkpoint import load_checkpoint

        path = Path(path).resolve()
        for r in self.runs():  # the same file (a run trained here too): the same run
            if Path(r.checkpoint).resolve() == path:
                return r
        ck = load_checkpoint(path)
        name = path.parent.name if path.name in (MODEL_FILE, "checkpoint.safetensors") else (
            path.stem)  # fmt: skip
        rec = _record_from_checkpoint(ck, self._new_id(), name, source, path)
        info = path.parent / "example.json"  # a bundled example's measured numbers
        try:
            m = json.loads(info.read_text())["metrics"] if info.is_file() else {}
        except (OSError, ValueError, KeyError, TypeError):
            m = {}
        if isinstance(m, dict):
            keep = ("test_nelbo", "test_nll_iw", "active_units", "iw_samples")
            rec.metrics.update({k: m[k] for k in keep if isinstance(m.get(k), int | float)})
        return self._write(rec)

    def add_folder(self, folder: str | os.PathLike) -> RunRecord:
        """A ``latent-train train --out`` folder: its checkpoint and its metrics."""
        folder = Path(folder)
        ck_path = folder / "checkpoint.safetensors"
        if not ck_path.is_file():
            raise RunsError(f"{folder}: has no checkpoint.safetensors (a latent-train --out "
                            "folder holds one)")  # fmt: skip
        rec = self.add_file(ck_path, source="folder")
        for name in ("metrics.json", "evaluation.json"):
            try:
                m = json.loads((folder / name).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(m, dict):
                keep = ("test_nelbo", "test_nll_iw", "active_units", "iw_samples")
                rec.metrics.update({k: m[k] for k in keep if isinstance(m.get(k), int | float)})
        return self._write(rec)

    def set_metrics(self, rid: str, metrics: dict) -> RunRecord | None:
        rec = self.get(rid)
        if rec is None:
            return None
        keep = ("test_nelbo", "test_nll_iw", "test_nll_prior_mc", "active_units", "iw_samples")
        rec.metrics.update({k: metrics[k] for k in keep if k in metrics})
        return self._write(rec)

    def rename(self, rid: str, name: str) -> RunRecord | None:
        rec = self.get(rid)
        if rec is None or not name.strip():
            return None
        rec.name = name.strip()[:100]
        return self._write(rec)

    def remove(self, rid: str) -> None:
        """Forget a run (a run trained in the window takes its checkpoint with it)."""
        folder = self.runs_dir / rid
        for f in (folder / RUN_FILE, folder / MODEL_FILE, folder / FILM_FILE):
            f.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:
            pass


def table(records: list[RunRecord]) -> list[list[str]]:
    """The runs table's rows: name, data, model, latent, beta, epochs, test -ELBO,
    -log p(x), film (the frames kept with it)."""
    rows = []
    for r in records:
        nll = r.metrics.get("test_nll_iw")
        nelbo = r.test_nelbo
        rows.append([
            r.name, r.data, f"{r.model.get('model', '?')} ({r.model.get('arch', '?')})",
            str(r.model.get("latent_dim", "?")), f"{r.train.get('beta', '?'):g}"
            if isinstance(r.train.get("beta"), int | float) else "?", str(r.epochs),
            f"{nelbo:.2f}" if nelbo is not None else "", f"{nll:.2f}" if nll is not None else "",
            f"{r.film} frames" if r.film else "",
        ])  # fmt: skip
    return rows


HEADERS = ["name", "data", "model", "latent", "beta", "epochs", "test -ELBO", "-log p(x)", "film"]
