"""A picture of the user's, dropped on the window or pasted (Ctrl+V), encoded by the model.

Functions that take the window: the Draw tab shows the picture as the model sees it, and z
moves to its posterior mean. A file that is no picture is said in one line, and nothing else
changes.
"""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QIODevice
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from trainer.data.imaging import ImageError


def encode_picture(win, source) -> bool:
    """Encode a picture (a path, PNG bytes) made like the model's data; z moves there.
    A file that is no picture is said in one line, and nothing else changes."""
    s = win.session
    if s.model is None or s.data is None or len(s.data.test_x) == 0:
        win.show_message("There is no model to encode a picture with yet.", "warning")
        return False
    try:
        done = win.drawing.show_picture(source)
    except ImageError as e:
        win.show_message(str(e), "error", topic="picture")
        return False
    win.banner.resolve("picture")
    under = ""  # a conditional model encodes it as the class chosen on the right: say which
    if s.conditional:
        name = s.class_names[s.cls] if s.cls < len(s.class_names) else str(s.cls)
        under = f" as class {name} (the class chosen on the right)"
    win.show_message(
        f"Encoded {done} z is now its posterior mean{under}: the cursor moved "
        "to it, and the Draw tab shows the picture as the model sees it beside "
        "its reconstruction.",
        "info",
        10000,
    )
    return True


def paste_picture(win) -> bool:
    """Ctrl+V: a picture on the clipboard (or a file name) is encoded."""
    done = win._picture_from(QApplication.clipboard().mimeData())
    if done is None:  # (a picture that cannot be read was said)
        win.show_message("The clipboard holds no picture to encode.", "warning")
    return bool(done)


def picture_from(win, md) -> bool | None:
    """Encode the picture ``md`` holds (True), or say why not (False); None if it
    holds none."""
    if md is None:
        return None
    if md.hasImage():
        buf = QBuffer()
        buf.open(QIODevice.WriteOnly)
        QImage(md.imageData()).save(buf, "PNG")
        return win.encode_picture(bytes(buf.data()))
    for url in md.urls() if md.hasUrls() else []:
        if url.isLocalFile():
            return win.encode_picture(url.toLocalFile())
    return None


def holds_picture(md) -> bool:
    """A drag may drop here: it carries an image or a local file."""
    return md.hasImage() or (md.hasUrls() and any(u.isLocalFile() for u in md.urls()))
