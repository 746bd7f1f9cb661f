"""The Film tab: a run is filmed, replays, and exports a GIF; the film belongs to its model."""

import numpy as np
from explorer_helpers import train
from PIL import Image
from PySide6.QtCore import QSettings, Qt

FILM_TAB = 10


def show_film(win):
    win.tabs.setCurrentIndex(FILM_TAB)
    win.tick()
    return win.film_view


def test_a_run_is_filmed_and_the_tab_follows_it(qtbot, window):
    win = window
    view = show_film(win)
    assert "No film yet" in view.status.text()
    assert not view.export_btn.isEnabled()
    train(qtbot, win, epochs=2)
    film = win.film.film
    assert film is not None and len(film) > 4
    ends = [f for f in film.frames if f.epoch_end]
    assert [f.epoch for f in ends] == [1.0, 2.0]
    assert film.frames[0].step == 0  # the untrained model comes first
    # one scrubber position per frame; the view shows the newest
    assert view.slider.maximum() == len(film) - 1 and view.slider.value() == len(film) - 1
    assert view.where.text().startswith(f"{len(film)} / {len(film)}")
    assert f"{len(film)} frames" in view.status.text() and "of 64 MB" in view.status.text()
    last = view.pane.array.copy()
    view.slider.setValue(0)
    first = view.pane.array.copy()
    assert first.shape == last.shape and np.abs(first - last).mean() > 0.01
    assert not view.follow  # scrubbed back: new frames do not pull it forward


def test_play_runs_through_the_frames_and_stops_at_the_end(qtbot, window):
    win = window
    train(qtbot, win, epochs=1)
    view = show_film(win)
    n = len(win.film.film)
    view.fps.setValue(30)
    view.slider.setValue(0)
    seen = set()
    view.slider.valueChanged.connect(seen.add)
    qtbot.keyClick(view.slider, Qt.Key_K)  # K plays
    assert view.play_btn.isChecked()
    qtbot.waitUntil(lambda: not view.play_btn.isChecked(), timeout=10000)
    assert seen == set(range(1, n)) and view.slider.value() == n - 1
    assert view.play_btn.text().endswith("Play")
    qtbot.keyClick(view.slider, Qt.Key_Home)
    assert view.slider.value() == 0
    qtbot.keyClick(view.slider, Qt.Key_Right)
    assert view.slider.value() == 1


def test_export_writes_a_gif_of_every_frame_in_the_background(qtbot, window, tmp_path):
    win = window
    train(qtbot, win, epochs=2)
    show_film(win)
    path = tmp_path / "film.gif"
    with qtbot.waitSignal(win.film.exported, timeout=30000) as got:
        assert win.export_film(path)
    assert got.args == [str(path), ""]
    assert "Saved the training film" in win.banner.history[-1][1]
    with Image.open(path) as im:
        assert im.n_frames == len(win.film.film)
        im.seek(0)
        a = np.asarray(im.convert("RGB"), dtype=float)
        im.seek(im.n_frames - 1)
        b = np.asarray(im.convert("RGB"), dtype=float)
    assert np.abs(a - b).mean() > 1
    qtbot.waitUntil(lambda: not win.film.exporting, timeout=5000)
    assert win.film_view.export_btn.isEnabled() and not win.film_view.cancel_btn.isVisible()


def test_export_mistakes_are_said_and_nothing_is_written(qtbot, window, tmp_path):
    win = window
    win.export_film_dialog()  # nothing trained yet
    assert "no film to export yet" in win.banner.history[-1][1]
    train(qtbot, win, epochs=1)
    out = tmp_path / "out"
    out.mkdir()
    with qtbot.waitSignal(win.film.exported, timeout=5000):
        assert not win.export_film(out / "film.png")
    said = win.banner.history[-1][1]
    assert "not saved" in said and ".gif or .mp4" in said
    assert list(out.iterdir()) == []


def test_continue_carries_the_film_on_and_another_model_ends_it(qtbot, window):
    win = window
    train(qtbot, win, epochs=1)
    film = win.film.film
    n = len(film)
    win.panel.more_epochs.setValue(1)
    assert win.start_training(resume=True)
    qtbot.waitUntil(lambda: len(win.run.outcomes) == 2 and not win.busy, timeout=30000)
    assert win.film.film is film and len(film) > n
    assert [f.epoch for f in film.frames if f.epoch_end] == [1.0, 2.0]
    train(qtbot, win, epochs=1)  # a new model: a new film
    assert win.film.film is not film and win.film.film.frames[0].step == 0


def test_recording_off_and_the_memory_budget_are_kept(qtbot, make_window, settings_path):
    win = make_window()
    view = show_film(win)
    view.record.setChecked(False)
    train(qtbot, win, epochs=1)
    assert win.film.film is None and "not recorded" in view.status.text()
    view.memory.setValue(8)
    assert win.film.budget_mb == 8
    win.close()
    st = QSettings(str(settings_path), QSettings.IniFormat)
    assert st.value("film/record") in (False, "false")
    again = make_window()
    assert not again.film_view.record.isChecked() and again.film.budget_mb == 8


def test_a_small_budget_thins_the_film_and_says_so(qtbot, window):
    win = window
    view = show_film(win)
    view.memory.setValue(4)
    train(qtbot, win, epochs=30, timeout=120000)
    film = win.film.film
    assert film.nbytes <= 4 * 2**20 and film.dropped > 0
    assert "thinned" in view.status.text() and "frames dropped" in view.status.text()
    assert view.slider.maximum() == len(film) - 1


def test_a_new_film_is_followed_and_the_arrows_step_from_the_picture(qtbot, window):
    win = window
    train(qtbot, win, epochs=1)
    view = show_film(win)
    view.slider.setValue(0)  # scrubbed back in this film
    train(qtbot, win, epochs=1)  # a new model, a new film: shown from its newest frame
    assert view.follow and view.slider.value() == len(win.film.film) - 1
    view.pane.setFocus()
    last = view.slider.value()
    qtbot.keyClick(view.pane, Qt.Key_Left)
    assert view.slider.value() == last - 1
    qtbot.keyClick(view.play_btn, Qt.Key_Home)
    assert view.slider.value() == 0
    qtbot.keyClick(view.pane, Qt.Key_End)
    assert view.slider.value() == last
