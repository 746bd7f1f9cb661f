"""The Film tab: replay how the latent space organised itself while the model trained.

Each frame is drawn by :func:`trainer.film.render_frame`, the picture an exported GIF holds,
so what is seen here is what is saved. A scrubber picks the frame; Play runs through them
(K plays and pauses, the arrow keys step); while a run adds frames, the view follows the
newest unless the user has scrubbed back.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from explorer.film import FilmRecorder
from trainer.config import FILM_MAX_MB, FILM_MIN_MB, FILM_SIZES
from trainer.film import map_extent, render_frame

from .common import ImagePane, hint
from .inputs import RangeSpinBox


def frame_size(width: int, height: int) -> int:
    """The side of a frame's manifold and map that fills a ``width`` x ``height`` pane
    (in steps of 20 px, so that a small resize does not redraw)."""
    side = min((width - 24) / 2, (height - 40) / 1.42)
    side = int(side // 20 * 20)
    return int(min(max(side, FILM_SIZES[0]), FILM_SIZES[1] // 2))


class FilmView(QWidget):
    exportRequested = Signal()  # the user asked to save the film (the window asks where)

    def __init__(self, recorder: FilmRecorder, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recorder = recorder
        self.session = recorder.session
        self.pane = ImagePane(min_size=200)
        self.play_btn = QPushButton("▶ Play")
        self.play_btn.setCheckable(True)
        self.play_btn.setToolTip("Play or pause the film (K); ← → step a frame, Home / End")
        self.play_btn.toggled.connect(self._play_toggled)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Scrub through the film: ← → one frame, Home / End")
        self.slider.valueChanged.connect(self._scrubbed)
        self.where = QLabel("")
        self.where.setMinimumWidth(120)
        self.fps = RangeSpinBox(1, 30, 6, "Frames a second, when playing and in exports", "Speed")
        self.fps.setSuffix(" fps")
        self.fps.valueChanged.connect(self._fps_changed)
        self.record = QCheckBox("Record runs")
        self.record.setChecked(recorder.enabled)
        self.record.setToolTip(
            "Keep frames of every run: each epoch's end and, densely, the first steps"
        )
        self.record.toggled.connect(recorder.set_enabled)
        self.memory = RangeSpinBox(
            int(FILM_MIN_MB),
            int(FILM_MAX_MB),
            int(recorder.budget_mb),
            "Memory for the film's frames; past it, older frames are thinned",
            "Film memory",
            step=16,
        )
        self.memory.setPrefix("memory ")
        self.memory.setSuffix(" MB")
        self.memory.valueChanged.connect(lambda v: recorder.set_budget(float(v)))
        self.export_btn = QPushButton("Export GIF…")
        self.export_btn.setToolTip("Save the film as an animated GIF (or MP4 with ffmpeg)")
        self.export_btn.clicked.connect(self.exportRequested)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop writing the film (nothing is written)")
        self.cancel_btn.clicked.connect(recorder.cancel_export)
        self.cancel_btn.hide()
        self.status = hint("")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        for w in (self.play_btn, self.slider, self.where, self.fps):
            bar.addWidget(w, 1 if w is self.slider else 0)
        lay.addLayout(bar)
        lay.addWidget(self.pane, 1)
        low = QHBoxLayout()
        low.addWidget(self.status, 1)
        for w in (self.record, self.memory, self.cancel_btn, self.export_btn):
            low.addWidget(w)
        lay.addLayout(low)

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._advance)
        self._fps_changed(self.fps.value())
        QShortcut(
            QKeySequence("K"), self, self.play_btn.toggle, context=Qt.WidgetWithChildrenShortcut
        )
        # the arrows, Home and End step the film from the picture and the Play button too
        self.pane.setFocusPolicy(Qt.ClickFocus)
        for w in (self.pane, self.play_btn):
            w.installEventFilter(self)
        self.follow = True  # show the newest frame as frames arrive
        self._film = None  # the film shown (another one starts at its newest frame)
        self.frames = []
        self.shown: tuple | None = None  # (film version, frame index, size) last drawn
        recorder.changed.connect(self.update_frames)
        recorder.exportChanged.connect(self._export_changed)
        self.session.historyReset.connect(self.update_frames)
        self.update_frames()

    # -- frames ---------------------------------------------------------------------------------
    def update_frames(self) -> None:
        """The film changed (frames added or thinned, another film, none)."""
        film = self.recorder.film
        if film is not self._film:  # another film: follow its newest frame
            self._film, self.follow = film, True
        self.frames = film.frames_copy() if film is not None else []
        n = len(self.frames)
        at = self.slider.value()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        if self.follow or at >= n:
            self.slider.setValue(max(0, n - 1))
        self.slider.blockSignals(False)
        for w in (self.play_btn, self.slider):
            w.setEnabled(n > 1)
        if n <= 1 and self.play_btn.isChecked():
            self.play_btn.setChecked(False)
        self.export_btn.setEnabled(n > 0 and not self.recorder.exporting)
        self._say()
        self.render()

    def render(self, force: bool = False) -> bool:
        """Draw the slider's frame (only when seen; True if it drew)."""
        if not self.frames:
            self.pane.clear_image()
            self.where.setText("")
            self.shown = None
            return False
        if not self.isVisible() and not force:
            return False
        i = min(self.slider.value(), len(self.frames) - 1)
        size = frame_size(self.pane.width(), self.pane.height())
        film = self.recorder.film
        key = (film.version if film is not None else -1, i, size, len(self.session.history.steps))
        if key == self.shown and not force:
            return False
        pic = render_frame(
            film, self.frames[i], self.session.history, map_extent(self.frames), size
        )
        self.pane.set_array(pic.astype(np.float32) / 255.0)
        self.shown = key
        f = self.frames[i]
        self.where.setText(f"{i + 1} / {len(self.frames)} · epoch {f.epoch:.2f}")
        return True

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        self.render()

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self.render()

    def _scrubbed(self, i: int) -> None:
        self.follow = i >= len(self.frames) - 1
        self.render()

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        keys = (Qt.Key_Left, Qt.Key_Right, Qt.Key_Home, Qt.Key_End)
        if ev.type() == QEvent.KeyPress and ev.key() in keys and self.frames:
            last = len(self.frames) - 1
            to = {
                Qt.Key_Left: self.slider.value() - 1,
                Qt.Key_Right: self.slider.value() + 1,
                Qt.Key_Home: 0,
                Qt.Key_End: last,
            }[ev.key()]
            self.slider.setValue(min(max(to, 0), last))
            return True
        return super().eventFilter(obj, ev)

    def step(self, by: int) -> None:
        self.slider.setValue(min(max(self.slider.value() + by, 0), len(self.frames) - 1))

    # -- playing --------------------------------------------------------------------------------
    def _play_toggled(self, on: bool) -> None:
        self.play_btn.setText("❚❚ Pause" if on else "▶ Play")
        if on:
            if self.slider.value() >= len(self.frames) - 1:
                self.slider.setValue(0)  # from the start, as a player does at the end
            self.timer.start()
        else:
            self.timer.stop()

    def _advance(self) -> None:
        if self.slider.value() >= len(self.frames) - 1:
            self.play_btn.setChecked(False)  # at the end: stop there
            return
        self.step(1)

    def _fps_changed(self, fps: int) -> None:
        self.timer.setInterval(round(1000 / max(1, fps)))

    # -- what it says ---------------------------------------------------------------------------
    def _say(self) -> None:
        r = self.recorder
        if r.exporting:
            self.status.setText(
                f"Writing {r.export_path}… {r.export_fraction or 0:.0%} · {r.describe()}"
            )
        else:
            self.status.setText(r.describe())

    def _export_changed(self) -> None:
        busy = self.recorder.exporting
        self.cancel_btn.setVisible(busy)
        self.export_btn.setEnabled(bool(self.frames) and not busy)
        self._say()
