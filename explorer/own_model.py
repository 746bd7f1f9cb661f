"""A user's own model (``--model``, a saved view of one) opened in the window on the data
that has loaded: one place for the window's start, its bookmarks and its Model box."""

from __future__ import annotations

from trainer.foreign import ForeignModelError


def open_own(win, own, output: str | None) -> bool:
    """Open the user's model (trainer.user_code's UserModel, or an ONNX pair) in ``win`` on
    the data that has loaded; what does not fit is said in the window's message bar. True if
    it is on screen."""
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
    return bool(win.run.open_model(model, data, spec))
