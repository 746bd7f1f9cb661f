"""Keeping the model: before a model with unsaved training is dropped (save, discard or
cancel), and after a window that did not close normally (open its autosaved model or let it
go). Functions that take the window."""

from __future__ import annotations

from explorer import dialogs
from explorer.recovery import autosaved_at, forget, orphans, run_of
from explorer.run_status import RunState


def confirm_discard(win, action: str) -> bool:
    """Before ``action`` drops a model with unsaved training: Save, Discard or Cancel.
    True when the action may go ahead (saved, or the user let the model go)."""
    s = win.session
    if not s.unsaved:
        return True
    paused_here = win.run.state is RunState.TRAINING
    if paused_here:  # hold the run while the question is open: its numbers stay true
        win.run.toggle_pause()
    run = win.projects.get(win.projects.current_id)
    kept = win.projects.folder if run is not None and run.steps == s.step else None
    answer = dialogs.ask_save(win, action, s.describe_model(), s.source, kept=kept)
    if answer == dialogs.CANCEL:
        if paused_here:
            win.run.toggle_pause()
        return False
    if answer == dialogs.DISCARD:
        return True
    if win.run.running and not win.run.stop_and_wait():
        win.show_message("The run did not stop in time; nothing was saved.", "error")
        return False
    return win.save_checkpoint_dialog() is not None


def offer_recovery(win) -> None:
    """A model that a killed or crashed window was training: offer to open it."""
    if win.recovery.problem:  # no autosaves this session: said once
        win.show_message(win.recovery.problem, "warning")
    found = orphans(win.recovery.folder)
    if not found:
        return
    newest, when = found[0], autosaved_at(found[0])
    older = len(found) - 1
    more = f" {older} older autosave{'s are' if older > 1 else ' is'} kept too." if older else ""

    def open_it():
        path = win.recovery.adopt(newest)
        win._recovered_run = run_of(path)  # (taken up when the model is adopted)
        win.run.open(path, recovered=True)

    def discard():
        problem = forget(found)
        win.banner.hide()
        if problem:
            win.show_message(problem, "warning")

    win.show_message(
        f"Latent Explorer did not close normally last time. The model it was training was "
        f"autosaved {when}: open it to save it or to train it further.{more}",
        "warning",
        topic="recovery",
        actions=[("Open it", open_it), ("Discard", discard)],
    )


def model_replaced(win) -> None:
    """Another model on screen is not the run it was; a model recovered after a kill goes on
    with the run it was training (and gets its film back, when nothing was trained since)."""
    s = win.session
    if s.model_serial == win._serial:
        return
    win._serial = s.model_serial
    win.projects.current_id = None
    found, win._recovered_run = win._recovered_run, None
    if found is not None and s.source is None and s.step > 0:  # a recovered model
        if win.projects.continue_run(*found, steps=s.step):
            run = win.projects.get(found[1])
            kept = win.projects.film_for(run.checkpoint, s.step, s.epochs_done)
            if kept is not None:
                win.film.take_kept(kept)


def note_run(win) -> None:
    """Tell the recovery file which run of the project the model in training goes on with
    (a model recovered after a kill then continues that run)."""
    win.recovery.note_run(win.projects.folder, win.projects.current_id)
