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
beside the model as ``film.bin`` (:func:`trainer.film_file.write_film`: the frames within the
film's memory bound, compressed and checksummed), named by the run and the step, epochs
and last test -ELBO of the model it shows, so that it is never shown with another one.

Reading the runs table needs no torch: the checkpoint reader and the film (which import it)
are imported inside the methods that read or write a model or a film, not here.
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

from .config import MODEL_TITLES
from .data.spec import EXAMPLE, trained_on
from .files import (
    MAX_WHOLE,
    JSONFields,
    JSONFileError,
    atomic_write,
    is_number,
    kind_of,
    open_regular,
    printable,
    read_json,
)

RUN_FILE, MODEL_FILE, FILM_FILE = "run.json", "model.safetensors", "film.bin"
TRAINING_FILE = "training.safetensors"  # a user's model's training (trainer.checkpoint.training)
MAX_RUN_BYTES = 4 << 20
# the settings compared between runs, as (label, where in run.json)
SETTINGS = (
    ("data", ("data",)),
    ("model", ("model", "model")),
    ("body", ("model", "arch")),
    ("latent", ("model", "latent_dim")),
    ("hidden", ("model", "hidden")),
    ("decoder", ("model", "likelihood")),
    ("beta", ("train", "beta")),
    ("lr", ("train", "lr")),
    ("batch", ("train", "batch_size")),
    ("warm-up", ("train", "warmup_epochs")),
    ("seed", ("train", "seed")),
    ("epochs", ("epochs",)),
)


# the settings compared and shown, by kind (each may be left out: the table shows "?")
SETTING_KINDS = {
    "model": {
        "model": "text",
        "arch": "text",
        "latent_dim": "whole",
        "hidden": "whole",
        "likelihood": "text",
    },
    "train": {
        "beta": "number",
        "lr": "number",
        "batch_size": "whole",
        "warmup_epochs": "number",
        "seed": "whole",
    },
}
# the measured numbers a run keeps: -ELBO and -log p(x) in nats, and counts
METRIC_NATS = ("test_nelbo", "test_nll_iw", "test_nll_prior_mc")
METRIC_COUNTS = ("active_units", "iw_samples")


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
    # a user's own model (source "own"): where its code is and how to run it again (see
    # Project.add_own); empty for the project's models
    own: dict = field(default_factory=dict)

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


def _checked_settings(f: JSONFields, key: str) -> dict:
    obj = f.object(key)
    for name, kind in SETTING_KINDS[key].items():
        if kind == "text":
            obj.text(name, None)
        elif kind == "whole":
            obj.whole(name, 0, default=None)
        else:
            obj.number(name, None, finite=True)
    return obj.value


def measured(f: JSONFields, keep=METRIC_NATS + METRIC_COUNTS) -> dict:
    """The measured numbers among ``f``'s fields (those of ``keep`` it holds), each checked:
    a -ELBO or -log p(x) must be a number, a count a whole number from 0."""
    out = {}
    for k in keep:
        v = f.number(k, None) if k in METRIC_NATS else f.whole(k, 0, default=None)
        if v is not None:
            out[k] = v
    return out


def read_run(path: str | os.PathLike, folder_name: str | None = None) -> RunRecord:
    """The run ``path`` (a run.json) records, every field checked. Raises
    :class:`trainer.files.JSONFileError` naming the file and the field for a file that is
    no run's record: damaged, hand-edited wrong, or not a regular file. ``folder_name``:
    the run's folder, whose name its id must be (it names the files a remove deletes)."""
    # every field but the curve, the metrics and the film is required (older versions
    # wrote no film)
    f = JSONFields(path, read_json(path, MAX_RUN_BYTES))
    rid = f.text("id")
    if folder_name is not None and rid != folder_name:
        raise f.error("id", f"is {printable(rid)!r}, not its folder's name {folder_name!r}")
    curve = []
    for i, point in enumerate(f.items("curve", [])):
        if not (
            isinstance(point, list)
            and len(point) == 2
            and isinstance(point[0], int)
            and not isinstance(point[0], bool)
            and 0 <= point[0] <= MAX_WHOLE
            and is_number(point[1])
        ):
            raise f.error(
                f"curve[{i}]",
                f"must be [epoch, test -ELBO] (a whole number and a number), not {kind_of(point)}",
            )
        curve.append(point)
    metrics = f.object("metrics", {})
    return RunRecord(
        id=rid,
        name=f.text("name"),
        source=f.text("source"),
        checkpoint=f.text("checkpoint", path=True),
        created=f.text("created"),
        data=f.text("data"),
        model=_checked_settings(f, "model"),
        train=_checked_settings(f, "train"),
        epochs=f.whole("epochs", 0, MAX_WHOLE),
        steps=f.whole("steps", 0, MAX_WHOLE),
        curve=curve,
        metrics={**metrics.value, **measured(metrics)},
        film=f.whole("film", 0, MAX_WHOLE, default=0),
        own=_checked_own(f),
    )


OWN_OUTPUTS = ("logits", "probs", "mean")
ONNX_FOLDER = "onnx"  # a user's ONNX pair, copied into its run's folder


def _checked_own(f: JSONFields) -> dict:
    """The ``own`` object of a user's model's run, every field checked ({} if none)."""
    o = f.object("own", None)
    if o is None or not o.value:  # (the project's models, and runs kept before it was)
        return {}
    o.object("data")  # the DataSpec's fields (DataSpec.from_dict checks them when read)
    if "onnx" in o.value:
        if o.text("onnx") != ONNX_FOLDER:
            raise o.error("onnx", f"must be {ONNX_FOLDER!r}")
        return dict(o.value)
    o.text("spec", path=True)
    sha = o.text("sha256")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise o.error("sha256", "must be 64 hexadecimal digits")
    if o.text("output") not in OWN_OUTPUTS:
        raise o.error("output", f"must be one of {', '.join(OWN_OUTPUTS)}")
    return dict(o.value)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of the file at ``path`` (read as a regular file only)."""
    import hashlib

    h = hashlib.sha256()
    with open_regular(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unset(rec: RunRecord) -> str:
    """What a run that has no value for a setting shows in its place: a user's model has
    none of the project's model settings (its code is its model), a run kept before a
    setting was recorded has it unknown."""
    if rec.own.get("spec"):
        return f"(your {Path(rec.own['spec']).name})"
    if rec.own:
        return "(your ONNX pair)"
    return "?"


def differing(records: list[RunRecord]) -> dict[str, list]:
    """The settings whose values differ among ``records``: {label: [value per record]}; a
    run without that setting shows what it is instead (:func:`unset`), never None."""
    out = {}
    for label, where in SETTINGS:
        values = [r.setting(where) for r in records]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            pairs = zip(records, values, strict=True)
            out[label] = [unset(r) if v is None else v for r, v in pairs]
    return out


def data_title(spec) -> str:
    """The runs table's data: a bundled example's names what it was trained on (its file
    holds only the bundled test images to explore it with)."""
    if spec is None:
        return "(none recorded)"
    if spec.source == EXAMPLE:
        return trained_on(spec.bundle)
    return spec.describe()


def _record_from_checkpoint(ck, rid: str, name: str, source: str, path: Path) -> RunRecord:
    mc, tc = ck.model_config, ck.train_config
    curve = [[int(e["epoch"]), float(e["test_nelbo"])] for e in ck.history.epochs]
    return RunRecord(
        id=rid,
        name=name,
        source=source,
        checkpoint=str(path),
        created=datetime.now().isoformat(sep=" ", timespec="microseconds"),  # orders runs
        data=data_title(ck.data_spec),
        model=mc.to_dict(),
        train=tc.to_dict(),
        epochs=ck.epochs_done,
        steps=ck.step,
        curve=curve,
        metrics={"test_nelbo": curve[-1][1]} if curve else {},
    )


def _resolved(path: str | os.PathLike) -> Path | None:
    """``path`` with every link resolved; None where that cannot be done (a loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def film_owner(rec: RunRecord) -> dict:
    """What a run's kept film is the film of: the run, and its model's step, epochs and
    last test -ELBO (a film is shown only with the model these describe)."""
    return {
        "run": rec.id,
        "step": rec.steps,
        "epochs": rec.epochs,
        "test_nelbo": rec.curve[-1][1] if rec.curve else None,
    }


class Project:
    """The runs kept in ``folder``. Reading never fails on a damaged run: it is skipped
    (``problems`` says which and why)."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_project()
        self.problems: list[str] = []  # the runs the last listing skipped, and why
        self.notes: list[str] = []  # what the last run added left out, and why

    @property
    def runs_dir(self) -> Path:
        return self.folder / "runs"

    def runs(self) -> list[RunRecord]:
        """Every readable run, oldest first. A run folder whose run.json cannot be used
        is skipped, and said in ``problems`` (one line each, naming the file and field)."""
        self.problems = []
        out = []
        try:
            entries = sorted(os.scandir(self.runs_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return out  # no run kept yet
        except OSError as e:
            where = self.runs_dir if os.path.isdir(self.folder) else self.folder
            why = (
                "is not a folder"
                if isinstance(e, NotADirectoryError)
                else (f"cannot be read ({e.strerror or e})")
            )
            self.problems.append(f"{printable(str(where))}: {why}; no runs are shown")
            return out
        for d in entries:
            try:
                if not d.is_dir() or not os.path.lexists(os.path.join(d.path, RUN_FILE)):
                    continue  # not a run's folder, or one being made
            except (OSError, ValueError):
                continue
            try:
                out.append(read_run(Path(d.path) / RUN_FILE, d.name))
            except JSONFileError as e:
                self.problems.append(f"{e}; the run is skipped")
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

    def add_trained(self, save, name: str | None = None, data: str | None = None) -> RunRecord:
        """A run trained in the window: ``save(path)`` writes its checkpoint into the run's
        folder (``trainer.checkpoint.save_checkpoint`` with everything to continue it).
        ``data``: what it was trained on, where the checkpoint's data says less (a model
        fine-tuned on other data: "MNIST digits, then the built-in shapes")."""
        from .checkpoint import load_checkpoint

        rid = self._new_id()
        folder = self.runs_dir / rid
        folder.mkdir(parents=True, exist_ok=True)
        path = save(folder / MODEL_FILE)
        ck = load_checkpoint(path)
        n = len(self.runs()) + 1
        mc = ck.model_config
        name = name or f"run {n}: {mc.latent_dim}-D {MODEL_TITLES[mc.model]}"
        rec = _record_from_checkpoint(ck, rid, name, "trained", path)
        rec.data = data or rec.data
        return self._write(rec)

    def add_own(
        self,
        model,
        data_spec,
        steps: int = 0,
        name: str | None = None,
        rid: str | None = None,
        history=None,
        training=None,
    ) -> RunRecord:
        """A user's own model (a :class:`trainer.foreign.ForeignModel` that came from
        ``FILE.py:FUNCTION`` or an ONNX pair) kept as a run: its weights as safetensors
        (``model.safetensors``) with the path of its code and the SHA-256 of that file, or its
        ONNX pair copied (``onnx/``); and ``data_spec``, the images it is shown on. Reopening
        it (:meth:`open_own`) runs the user's file again. RunsError where it cannot be kept:
        a model given from Python (no file holds its code), one with no weights of its own.
        ``rid``: a run of a user's model kept before, brought up to date (trained further);
        ``history``: its training here (:class:`trainer.loop.History`), for the curve.
        ``training``: all of its training here (:class:`trainer.checkpoint.training.Training`:
        settings, history, epochs, steps, optimiser state), kept beside its weights as
        ``training.safetensors`` for :meth:`own_training` to give back, as a built-in
        model's checkpoint keeps them; its epochs and settings are the run's."""
        import shutil

        from .onnx_pair import DECODER, ENCODER, FACTS

        cfg = model.config
        if not getattr(cfg, "spec", ""):
            raise RunsError(
                "your model was given from Python, so no file holds its code and a run of it "
                "could not be reopened; save its weights in your own code "
                "(torch.save(model.state_dict(), path))"
            )
        if data_spec is None:
            raise RunsError("your model's images were given from Python: a run needs their files")
        before = self.get(rid) if rid is not None else None
        if before is not None and not before.own:
            raise RunsError(f"{rid}: is no run of a model of your own in {self.folder}")
        rid = before.id if before is not None else self._new_id()
        folder = self.runs_dir / rid
        folder.mkdir(parents=True, exist_ok=True)
        if Path(cfg.spec).is_dir():  # an ONNX pair: its graphs hold its weights
            pair = folder / ONNX_FOLDER
            pair.mkdir(exist_ok=True)
            for n in (ENCODER, DECODER, FACTS):
                with open_regular(Path(cfg.spec) / n) as src:
                    atomic_write(pair / n, lambda dst, src=src: shutil.copyfileobj(src, dst))
            own = {"onnx": ONNX_FOLDER}
            checkpoint = pair
        else:
            module = getattr(model, "module", None)
            if module is None or not len(module.state_dict()):
                raise RunsError("your model has no weights of its own (no torch.nn.Module) to keep")
            from safetensors.torch import save

            state = {
                k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()
            }
            blob = save(state)
            checkpoint = atomic_write(folder / MODEL_FILE, lambda f: f.write(blob))
            if training is not None:
                from .checkpoint.training import save_training

                save_training(folder / TRAINING_FILE, training)
            else:  # (a training kept before is of the weights before)
                (folder / TRAINING_FILE).unlink(missing_ok=True)
            file = cfg.spec.rpartition(":")[0]
            own = {"spec": cfg.spec, "sha256": file_sha256(file), "output": cfg.output}
        own["data"] = data_spec.to_dict()
        n = len(self.runs()) + 1
        rec = RunRecord(
            id=rid,
            name=name or (before.name if before else f"run {n}: your {cfg.latent_dim}-D model"),
            source="own",
            checkpoint=str(checkpoint),
            created=before.created
            if before
            else datetime.now().isoformat(sep=" ", timespec="microseconds"),
            data=data_title(data_spec),
            model={
                "model": cfg.model,
                "arch": "foreign",
                "latent_dim": cfg.latent_dim,
                "likelihood": cfg.likelihood,
            },
            train={},
            epochs=0,
            steps=steps,
            own=own,
        )
        if training is not None:
            history = training.history
            rec.train = training.train_config.to_dict()
        if history is not None and history.epochs:
            rec.curve = [[int(e["epoch"]), float(e["test_nelbo"])] for e in history.epochs]
            rec.epochs = rec.curve[-1][0]
            rec.metrics = {"test_nelbo": rec.curve[-1][1]}
        if training is not None:
            rec.epochs = training.epochs_done
        return self._write(rec)

    def own_training(self, rec: RunRecord, params: list[tuple[int, ...]]):
        """The training kept with a user's-model run (:meth:`add_own`), for its model whose
        trained parameters have the shapes ``params``; None if it has none (kept untrained,
        or before training was kept). Raises RunsError, one line, for a file that does not
        fit."""
        from .checkpoint import CheckpointError
        from .checkpoint.training import load_training

        path = self.runs_dir / rec.id / TRAINING_FILE
        if not os.path.lexists(path):
            return None
        try:
            return load_training(path, params)
        except CheckpointError as e:
            raise RunsError(str(e)) from None

    def own_at(self, path: str | os.PathLike) -> RunRecord | None:
        """The user's-model run whose kept model is ``path``, if any."""
        where = _resolved(path)
        return next(
            (r for r in self.runs() if r.own and where and _resolved(r.checkpoint) == where), None
        )

    def open_own(self, rec: RunRecord):
        """A user's-model run opened again: (the model, as trainer.user_code's UserModel or
        an ONNX pair, its weights restored; the DataSpec of its images; a note, "" or what
        has changed since). Running it runs the user's file again. Raises UserCodeError,
        OnnxPairError or RunsError, one line."""
        from .data.spec import DataError, DataSpec
        from .onnx_pair import read_onnx_pair
        from .user_code import UserCodeError, load_user_model

        try:
            spec = DataSpec.from_dict(rec.own["data"])
        except (DataError, ValueError, TypeError) as e:
            raise RunsError(f"run “{printable(rec.name)}”: its images: {e}") from None
        if "onnx" in rec.own:
            return read_onnx_pair(self.runs_dir / rec.id / ONNX_FOLDER), spec, ""
        file = rec.own["spec"].rpartition(":")[0]
        note = ""
        try:
            if file_sha256(file) != rec.own["sha256"]:
                note = f"{printable(file)} has changed since the run was kept"
        except OSError as e:
            raise UserCodeError(
                f"run “{printable(rec.name)}”: its code {printable(file)} cannot be read "
                f"({e.strerror or e})"
            ) from None
        own = load_user_model(rec.own["spec"], self.runs_dir / rec.id / MODEL_FILE)
        return own, spec, note

    def owns(self, rec: RunRecord) -> bool:
        """Whether ``rec`` is a run trained in the window whose model this project holds
        (the runs a continue of their model goes on with)."""
        mine = _resolved(self.runs_dir / rec.id / MODEL_FILE)
        return rec.source == "trained" and mine is not None and _resolved(rec.checkpoint) == mine

    def update_trained(self, rid: str, save, data: str | None = None) -> RunRecord:
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
        new.created, new.data = rec.created, data or new.data
        (self.runs_dir / rid / FILM_FILE).unlink(missing_ok=True)
        return self._write(new)

    def keep_film(self, rid: str, film) -> RunRecord | None:
        """Keep ``film`` (:class:`trainer.film.Film`) with run ``rid``, as the film of its
        model as it is now. Raises :class:`trainer.film.FilmError` if it cannot be written
        (the run is kept all the same)."""
        from .film_file import write_film

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
        from .film import FilmError
        from .film_file import read_film

        path = self.runs_dir / rec.id / FILM_FILE
        if not path.is_file():
            return None
        film = read_film(path)
        if film.owner != film_owner(rec):
            raise FilmError(
                f"{path}: is the film of another model than run “{rec.name}” (not shown)"
            )
        return film

    def add_file(self, path: str | os.PathLike, source: str = "opened") -> RunRecord:
        """A checkpoint the user opened (kept where it is); the same file is one run."""
        from .checkpoint import load_checkpoint

        self.notes = []
        path = _resolved(path) or Path(path).absolute()  # (a loop: the reader says so)
        for r in self.runs():  # the same file (a run trained here too): the same run
            if _resolved(r.checkpoint) == path:
                return r
        ck = load_checkpoint(path)
        name = (
            path.parent.name if path.name in (MODEL_FILE, "checkpoint.safetensors") else (path.stem)
        )
        rec = _record_from_checkpoint(ck, self._new_id(), name, source, path)
        # a bundled example's measured numbers
        rec.metrics.update(self._measured(path.parent / "example.json", "metrics"))
        return self._write(rec)

    def _measured(self, path: Path, within: str | None = None) -> dict:
        """The measured numbers ``path`` holds (in its object ``within``), if it exists; one
        that cannot be used is said in ``notes`` and gives none."""
        if not os.path.lexists(path):
            return {}
        try:
            f = JSONFields(path, read_json(path))
            return measured(f.object(within) if within else f)
        except JSONFileError as e:
            self.notes.append(f"{e}; its numbers are left out")
            return {}

    def add_folder(self, folder: str | os.PathLike) -> RunRecord:
        """A ``latent-train train --out`` folder: its checkpoint and its metrics. A metrics
        file that cannot be used is said in ``notes`` (the run is kept without it)."""
        folder = Path(folder)
        ck_path = folder / "checkpoint.safetensors"
        if not ck_path.is_file():
            raise RunsError(
                f"{folder}: has no checkpoint.safetensors (a latent-train --out folder holds one)"
            )
        rec = self.add_file(ck_path, source="folder")
        for name in ("metrics.json", "evaluation.json"):
            rec.metrics.update(self._measured(folder / name))
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
        for f in (
            folder / RUN_FILE,
            folder / MODEL_FILE,
            folder / FILM_FILE,
            folder / TRAINING_FILE,
        ):
            f.unlink(missing_ok=True)
        for n in ("encoder.onnx", "decoder.onnx", "model.json"):  # a user's ONNX pair
            (folder / ONNX_FOLDER / n).unlink(missing_ok=True)
        try:
            (folder / ONNX_FOLDER).rmdir()
        except OSError:
            pass
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
        rows.append(
            [
                printable(r.name),
                printable(r.data),
                printable(f"{r.model.get('model', '?')} ({r.model.get('arch', '?')})"),
                str(r.model.get("latent_dim", "?")),
                f"{r.train.get('beta', '?'):g}"
                if isinstance(r.train.get("beta"), int | float)
                else "?",
                str(r.epochs),
                f"{nelbo:.2f}" if nelbo is not None else "",
                f"{nll:.2f}" if nll is not None else "",
                f"{r.film} frames" if r.film else "",
            ]
        )
    return rows


HEADERS = ["name", "data", "model", "latent", "beta", "epochs", "test -ELBO", "-log p(x)", "film"]
