"""Opening and saving checkpoints: the part of the run's controller that reads and writes files.

:class:`RunCheckpoints` is mixed into :class:`~explorer.run.RunController` and works on its
state (the session, the settings, the worker threads, ``notice`` and ``resolved``): a model is
saved between two steps by the training thread while a run is in flight, and a checkpoint is
opened once the data in flight has arrived.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from explorer.run_status import RUNNING, RunState
from trainer.checkpoint import SUFFIX, CheckpointError, load_checkpoint, save_checkpoint
from trainer.config import ConfigError, TrainConfig
from trainer.data import ImageData
from trainer.examples import is_example, title_for


class RunCheckpoints:
    """Save, open and copy the session's model (see :class:`~explorer.run.RunController`)."""

    def write_copy(self, path: str | os.PathLike) -> Path:
        """Write the session's model, with everything to continue it, to ``path`` (the
        project's copy of a run; the model's own saved state does not change)."""
        s = self.session
        return self._write(path, s.train_config or self._run_config or TrainConfig())

    def _write(self, path: str | os.PathLike, tc: TrainConfig) -> Path:
        """The session's model and all it needs to continue exactly, written to ``path``."""
        s = self.session
        return save_checkpoint(
            path,
            s.model,
            tc,
            data_spec=s.data_spec,
            class_names=s.class_names,
            history=s.history,
            optimizer_state=s.optimizer_state,
            epochs_done=s.epochs_done,
            step=s.step,
            position=s.position,
        )

    def save(self, path: str | os.PathLike) -> Path | None:
        """Save the session's model with everything needed to continue it exactly.

        During a run the training thread writes it between two steps (weights and optimiser
        state of the same step); the file name is returned at once and a notice follows.
        """
        s = self.session
        if s.model is None:
            self.notice.emit("warning", "There is no model to save yet.", "save")
            return None
        try:
            s.model.config.to_dict()  # a user's own model has no config to be rebuilt from
        except ValueError as e:
            self.notice.emit("warning", f"{str(e)[0].upper()}{str(e)[1:]}.", "save")
            return None
        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_suffix(SUFFIX)
        if is_example(path):
            self.notice.emit(
                "warning",
                f"{path.parent}: the bundled examples are read-only; save the "
                "model under another folder (File ▸ Save checkpoint…).",
                "save",
            )
            return None
        worker = self.trainer_runner.worker
        if self.control is not None and self.state in RUNNING and worker is not None:
            self.control.call_soon(lambda trainer: worker.save_now(trainer, path))
            self.notice.emit("info", f"Saving {path.name} at the next step…", "save")
            return path
        tc = s.train_config
        if tc is None:
            try:
                tc = self.settings.train_config()
            except ConfigError:
                tc = TrainConfig()
        try:
            out = self._write(path, tc)
        except CheckpointError as e:
            self.notice.emit("error", str(e), "save")
            return None
        s.mark_saved(out)
        self.notice.emit("info", f"Saved {out}", "save")
        return out

    def _saved_during_run(self, path: str, step: int, error: str) -> None:
        if error:
            self.notice.emit("error", error, "save")
            return
        self.session.mark_saved(Path(path), step)
        self.notice.emit("info", f"Saved {path} (the model at step {step:,})", "save")

    def open_model(self, model, data: ImageData, spec=None, training=None) -> bool:
        """Make a model already built (a user's own, trainer.foreign) the session's, shown on
        ``data`` (its images; ``spec``: the DataSpec they were loaded from, if any): the path
        an opened checkpoint takes, without a file. ``training``: the training it has had
        here, kept with its run (trainer.checkpoint.training.Training): its history, epochs,
        steps, settings and optimiser state come back, so Continue goes on from them."""
        if self.running:
            self.notice.emit("warning", "Stop training before opening another model.", "open")
            return False
        if not self.confirm_discard("open your model"):
            return False
        if self.loading:  # the remembered data in flight gives way to the model's images
            self._dropped, self._queued = True, None
            self._then.clear()
            self.data_runner.worker.cancel()
        s = self.session
        s.set_data(data, spec)
        if training is None:
            s.adopt(model.config, model=model)
        else:
            s.adopt(
                model.config,
                model=model,
                history=training.history,
                epochs_done=training.epochs_done,
                optimizer_state=training.optimizer_state,
                train_config=training.train_config,
                step=training.step,
                position=training.position,
                trained_on=spec,
            )
            s.mark_kept()  # its run holds all of it
            self.settings.show_train_config(training.train_config)
        self.latest, self._offer = None, 0
        self.update_kl()
        why = model.train_problem()
        then = (
            "Train and Continue train it further on them by its ELBO."
            if why is None
            else f"{why[0].upper()}{why[1:]}."
        )
        trained = f", {s.trained_text()}," if s.step > 0 else ""
        msg = (
            f"Opened your {s.short_model()}{trained} on {data.name} "
            f"({len(data.test_x):,} shown). {then}"
        )
        self.resolved.emit("open")
        self.notice.emit("info", msg, "open")
        self._set(self._idle_state(), msg)
        return True

    def open(self, path: str | os.PathLike, recovered: bool = False) -> bool:
        """Open a checkpoint as the session's model; while data loads, once it has arrived.

        ``recovered``: a recovery file, whose training is in no file the user chose (it
        counts as unsaved).
        """
        if self.running:
            self.notice.emit("warning", "Stop training before opening a checkpoint.", "open")
            return False
        if self.loading:
            self._then.append(lambda: self.open(path, recovered))
            self.notice.emit(
                "info",
                f"Still loading data…; {Path(path).name} opens as soon as it has arrived.",
                "open",
            )
            return True
        what = f"the example “{title_for(path)}”" if is_example(path) else Path(path).name
        if not self.confirm_discard(f"open {what}"):
            return False
        try:
            ck = load_checkpoint(path)
        except CheckpointError as e:
            self.notice.emit("error", str(e), "open")
            return False
        except Exception as e:  # noqa: BLE001 - a file the loader missed must not crash the app
            traceback.print_exc()
            self.notice.emit(
                "error",
                f"{path}: could not be opened (unexpected {type(e).__name__}: {e})",
                "open",
            )
            return False
        s = self.session
        self.settings.show_config(ck.model_config, ck.train_config, ck.data_spec)
        s.adopt(
            ck.model_config,
            ck.model.state_dict(),
            history=ck.history,
            epochs_done=ck.epochs_done,
            optimizer_state=ck.optimizer_state,
            train_config=ck.train_config,
            source=None if recovered else Path(path),
            step=ck.step,
            position=ck.position,
            trained_on=ck.data_spec if ck.step > 0 else None,
        )
        self.latest = None
        self._offer = max(0, ck.train_config.epochs - ck.epochs_done)
        name = "the recovered model" if recovered else Path(path).name
        n = ck.epochs_done
        note = f"Opened {name}: {n} epoch{'s' if n != 1 else ''} trained."
        msg = note
        if s.example:
            note = f"Opened the example “{title_for(path)}”: {n} epochs trained."
            msg = note + (
                " Drag the cursor over the latent map or the manifold, or move the sliders. "
                "The example's file is read-only (Save writes a copy elsewhere); Train starts "
                "a new model from scratch on the data chosen on the left."
            )
        if ck.data_spec is not None:
            if s.data is not None and s.data_spec == ck.data_spec:
                self.update_kl()
            else:
                self.load_data(ck.data_spec)
            if not s.example:
                msg += f" Data: {ck.data_spec.describe()}. Press Continue to train it further."
        else:
            msg += " The file names no data; choose data of the same image size to train it."
        self.resolved.emit("open")
        # an example's long message stays until dismissed or training starts (an "open"
        # notice goes after 10 s)
        self.notice.emit("info", msg, "example" if s.example else "open")
        self._set(RunState.LOADING if self.loading else self._idle_state(), note)
        return True
