"""A user's own model (``--model``, a saved view of one) opened in the window on the data
that has loaded: one place for the window's start, its bookmarks and its Model box."""

from __future__ import annotations

from trainer.foreign import ForeignModelError

SAVE_TEXT, KEEP_TEXT = "&Save checkpoint…", "&Keep in project"


def is_own(session) -> bool:
    """The session's model is a user's own (trainer.foreign): no checkpoint rebuilds it."""
    return getattr(session.model_config, "arch", "") == "foreign"


def save_text(session) -> str:
    """What File ▸ Save does for the model on screen: a user's model is kept in the project
    (no file dialog: the run keeps where its code is), any other is saved where asked."""
    return KEEP_TEXT if is_own(session) else SAVE_TEXT


def follow_save_action(session, action) -> None:
    """File ▸ Save's menu item says what it does for the model on screen (see save_text)."""

    def follow():
        action.setText(save_text(session))
        what = "the run of your model in the project" if is_own(session) else "a checkpoint"
        action.setStatusTip(f"Keep the model on screen as {what}")

    session.historyReset.connect(follow)  # (emitted whenever another model is adopted)
    follow()


def training_of(session):
    """All of the session's model's training here, to keep with its run (None: none yet)."""
    from trainer.checkpoint.training import Training

    if session.step == 0 or session.train_config is None:
        return None
    return Training(
        session.train_config,
        session.history,
        session.epochs_done,
        session.step,
        session.optimizer_state,
        session.position,
    )


def open_own(win, own, output: str | None, kept=None) -> bool:
    """Open the user's model (trainer.user_code's UserModel, or an ONNX pair) in ``win`` on
    the data that has loaded; what does not fit is said in the window's message bar. True if
    it is on screen. ``kept``: the run it is opened from (a RunRecord), whose training kept
    with it is restored (its history, epochs, steps, settings and optimiser state)."""
    from trainer.runs import RunsError
    from trainer.user_code import foreign_model

    data, spec = win.session.data, win.session.data_spec
    if data is None:
        win.show_message(f"Your model ({own.source}) has no images to be shown on.", "error")
        return False
    try:
        model = foreign_model(own, data, output)
    except ForeignModelError as e:
        shape = "×".join(map(str, data.image_shape))
        win.show_message(
            f"Your model ({own.source}) cannot be shown on {data.name} ({shape} images): {e}",
            "error",
        )
        return False
    training = None
    if kept is not None:
        try:
            training = win.projects.project.own_training(kept, model.trained_shapes())
        except RunsError as e:
            win.show_message(
                f"Run “{kept.name}”: its training cannot be restored, so it opens with its "
                f"weights alone: {e}",
                "warning",
            )
    return bool(win.run.open_model(model, data, spec, training))


def save_as_run(win):
    """File ▸ Keep in project (Save, for a user's own model): it is kept as a run of the
    project (its weights and training, and where its code is with a hash of that file, or
    its ONNX pair copied); the run it already is, if it is one, is brought up to date. Said
    in the message bar either way. The run, or None."""
    s = win.session
    was = win.projects.current_id
    rec = win.projects.record_own(  # (a failure is said)
        s.model, s.data_spec, s.step, s.history, continued=True, training=training_of(s)
    )
    if rec is None:
        return None
    s.mark_kept()
    where = rec.own.get("spec") or "its ONNX pair, copied"
    did = "Updated run" if rec.id == was else "Kept your model as run"
    win.show_message(
        f"{did} “{rec.name}” in the project {win.projects.folder}: its weights, its training "
        f"and where its code is ({where}). Opening the run runs that code again.",
        "info",
        topic="save",
    )
    return rec


def open_path(win, path) -> bool:
    """Open the model kept at ``path`` (a run's, from the Runs tab): a user's-model run runs
    its code again and restores its weights (said in the message bar), anything else opens
    as a checkpoint."""
    from trainer.onnx_pair import OnnxPairError
    from trainer.runs import RunsError
    from trainer.user_code import UserCodeError

    project = win.projects.project
    rec = project.own_at(path)
    if rec is None:
        return win.open_checkpoint(path)
    if win.run.running:
        win.show_message("Stop training before opening another model.", "warning", topic="open")
        return False
    try:
        own, spec, note = project.open_own(rec)
    except (UserCodeError, OnnxPairError, RunsError) as e:
        win.show_message(f"Run “{rec.name}” cannot be opened: {e}", "error", topic="open")
        return False
    output = rec.own.get("output")

    def opened():
        if not open_own(win, own, output, rec):
            return
        win.projects.current_id = rec.id
        ran = "ran its code again" if "spec" in rec.own else "read its ONNX pair"
        text = f"Opened run “{rec.name}”: {ran} ({own.source}) and restored its weights."
        if note:
            text += f" Note: {note}."
        win.show_message(text, "warning" if note else "info", topic="open")

    win.panel.show_data_spec(spec)  # the data chosen on the left is the run's
    win.run.load_data(spec, then=opened)
    return True


def keep_run(win, continued: bool) -> None:
    """A run of the session's model has ended: keep it in the project. A user's own model
    is kept with its weights and where its code is (one given from Python is not: no file
    holds its code, and its object has the weights); any other, as a checkpoint with its
    film. ``continued``: the run went on with the model on screen."""
    s = win.session
    if getattr(s.model_config, "arch", "") == "foreign":
        if s.model_config.spec and s.data_spec is not None:
            win.projects.record_own(
                s.model, s.data_spec, s.step, s.history, continued, training_of(s)
            )
        return
    win.projects.record_trained(win.run.write_copy, continued, win.film.current(), s.trained_data())


def kept_weights(win) -> str | None:
    """The weights file of the run the session's model is, when that is a run of a user's
    model (from its file) kept with all of the model's steps; else None."""
    rec = win.projects.get(win.projects.current_id)
    s = win.session
    if rec is not None and "spec" in rec.own and rec.steps == s.step:
        return rec.checkpoint
    return None
