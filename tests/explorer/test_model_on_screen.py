"""Continue trains the model on screen, with its own type and shapes, and says so: the
settings on the left that differ from it are named, other data is fine-tuned on only when
the user says so, data it cannot take is refused in one line, and the status bar credits
each model with the data it was trained on."""

from __future__ import annotations

import shutil

import pytest

from trainer import examples as ex
from trainer.data import DataSpec


def _open(qtbot, win, name):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy and win.session.data is not None, timeout=20000)
    win.tick()


def _pick(combo, key):
    combo.setCurrentIndex(combo.findData(key))


@pytest.fixture
def fashion_idx(tmp_path):
    """Fashion-MNIST images as IDX files (the bundled example's test images)."""
    d = ex.bundle_dir("fashion-mnist")
    for name in (ex.IMAGES_FILE, ex.LABELS_FILE):
        shutil.copy(d / name, tmp_path / name)
    return tmp_path / ex.IMAGES_FILE, tmp_path / ex.LABELS_FILE


def _choose_idx(qtbot, win, images, labels):
    """Choose IDX files under Data, as the Browse buttons do (the choice loads them)."""
    p = win.panel
    p.images.setText(str(images))
    p.labels.setText(str(labels))
    _pick(p.source, "idx")
    qtbot.waitUntil(lambda: not win.busy and win.session.data_spec.source == "idx", timeout=20000)


def test_continue_trains_the_model_on_screen_and_names_the_settings_that_differ(
    qtbot, window, asked_fine_tune
):
    """Open the MNIST autoencoder, set Type = VAE: Continue trained it on and the status bar
    still said Autoencoder, with no word of the difference."""
    win = window
    _open(qtbot, win, "mnist-ae-2d")
    p = win.panel
    assert not p.model_info.isVisible()  # the settings show the model on screen
    _pick(p.model, "vae")
    p.latent.setValue(8)
    note = p.model_info.text()
    assert p.model_info.isVisible()
    assert "type VAE (the model's: autoencoder)" in note
    assert "latent size 8 (the model's: 2)" in note
    assert "Continue trains the 2-D autoencoder on screen as it is" in note
    assert "Train starts a new model with them" in note
    before = win.session.model_serial
    win.start_training(resume=True, epochs=1)
    qtbot.waitUntil(
        lambda: win.run.state.value == "preparing" or bool(win.run.outcomes), timeout=5000
    )
    assert "Continuing the 2-D autoencoder on screen" in p.progress_info.text()
    qtbot.waitUntil(lambda: bool(win.run.outcomes) and not win.busy, timeout=60000)
    s = win.session
    assert s.model_serial == before and s.model_config.model == "ae"
    assert s.model_config.latent_dim == 2
    assert win.status_model.text().startswith("Autoencoder · MLP · 2-D latent")


def test_continue_on_other_data_asks_first_and_does_not_blame_the_learning_rate(
    qtbot, window, asked_fine_tune, fashion_idx
):
    """The MNIST autoencoder continued on Fashion-MNIST: its test score went 149 -> 283 and
    the window blamed the learning rate."""
    win = window
    _open(qtbot, win, "mnist-ae-2d")
    _choose_idx(qtbot, win, *fashion_idx)
    assert "was trained on MNIST digits: Continue would fine-tune it" in win.panel.data_info.text()
    best_before = min(r["test_nelbo"] for r in win.session.history.epochs)
    # asked, and told no: nothing trains
    asked_fine_tune.answer = False
    assert not win.start_training(resume=True, epochs=1)
    assert asked_fine_tune.questions[-1][:2] == ("2-D autoencoder", "MNIST digits")
    assert not win.run.outcomes
    # told yes: it fine-tunes the model on screen
    asked_fine_tune.answer = True
    n = win.session.epochs_done
    assert win.start_training(resume=True, epochs=1)
    qtbot.waitUntil(lambda: bool(win.run.outcomes) and not win.busy, timeout=60000)
    win.tick()
    s = win.session
    assert s.epochs_done == n + 1 and s.model_config.model == "ae"
    assert s.history.epochs[-1]["test_nelbo"] > best_before + 20  # other data, other numbers
    texts = " ".join(t for _lvl, t in win.banner.history)
    assert "learning rate" not in texts, texts
    assert "on MNIST digits, then IDX file" in win.status_model.text()
    # continuing again on the same data asks nothing more
    asked = len(asked_fine_tune.questions)
    assert win.start_training(resume=True, epochs=1)
    qtbot.waitUntil(lambda: len(win.run.outcomes) == 2 and not win.busy, timeout=60000)
    assert len(asked_fine_tune.questions) == asked


def test_data_the_model_cannot_take_is_refused_in_one_line(qtbot, window, asked_fine_tune):
    """Data that loads with the run and does not fit the model on screen is refused in one
    line, before the views are given it: the model and the shown data stay."""
    win = window
    _open(qtbot, win, "mnist-vae-2d")
    s = win.session
    shown = s.data_spec
    # choose data without loading it, then continue: the run loads it and refuses it
    win.panel.show_data_spec(DataSpec(source="shapes", image_size=32, shapes_count=200))
    assert win.start_training(resume=True, epochs=1)
    qtbot.waitUntil(lambda: bool(win.run.outcomes) and not win.busy, timeout=60000)
    level, text = win.banner.history[-1]
    assert level == "error" and "\n" not in text
    assert "Continue cannot train the 2-D VAE on screen on the built-in shapes" in text
    assert "takes 28 x 28 greyscale images" in text and "32 x 32 greyscale" in text
    assert s.data_spec == shown and s.data.image_shape == (1, 28, 28)
    assert s.epochs_done == 50 and s.model_config.image_shape == (1, 28, 28)


def test_the_status_bar_credits_the_model_with_its_own_data(qtbot, window, fashion_idx):
    """After loading IDX files over an example, the status bar credited the new data to
    the example's model."""
    win = window
    _open(qtbot, win, "mnist-vae-2d")
    assert "trained 50 epochs on MNIST digits" in win.status_model.text()
    _choose_idx(qtbot, win, *fashion_idx)
    line = win.status_model.text()
    assert "trained 50 epochs on MNIST digits · showing IDX file" in line, line


def test_the_status_bar_counts_a_first_epoch_s_steps_as_they_go(qtbot, window):
    """The window said "trained 0 epochs" after 77 steps, then "trained 1 step" all through
    the first epoch while the Run box counted 103, 145, ..."""
    win = window
    s = win.session
    win.panel.batch.setValue(4)  # 200 steps an epoch
    win.panel.epochs.setValue(1)
    assert win.start_training()
    qtbot.waitUntil(lambda: s.step >= 30, timeout=60000)
    win.run.toggle_pause()
    qtbot.waitUntil(lambda: win.run.state.value == "paused", timeout=10000)
    qtbot.wait(300)  # (the snapshots in flight)
    assert s.epochs_done == 0
    assert f"trained {s.step:,} steps (part of the first epoch)" in win.status_model.text()
    win.run.stop()
    qtbot.waitUntil(lambda: not win.busy, timeout=30000)
    assert f"trained {s.step:,} steps (part of the first epoch)" in win.status_model.text()
    # past an epoch's end, inside the next
    s.history.epochs.append({"epoch": 1, "step": s.step - 5, "test_nelbo": 1.0})
    s.epochs_done = 1
    assert s.trained_text().startswith("trained 1 epoch and part of one")


def test_data_the_example_cannot_take_replaces_it_with_a_word(qtbot, window, fashion_idx):
    """IDX images without labels chosen over the conditional example: it became an
    untrained VAE without a word, the Model box still saying Conditional VAE."""
    win = window
    _open(qtbot, win, "mnist-cvae-2d")
    images, _labels = fashion_idx
    _choose_idx(qtbot, win, images, "")
    s = win.session
    assert s.model_config.model == "vae" and s.step == 0
    level, text = win.banner.history[-1]
    assert text.startswith("The 2-D conditional VAE that was on screen cannot take")
    assert "has no labels" in text and "untrained 2-D VAE until you press Train" in text


def test_data_that_did_not_load_is_never_offered_for_fine_tuning(qtbot, window, tmp_path):
    win = window
    p = win.panel
    blank = tmp_path / "blank" / "a"
    blank.mkdir(parents=True)
    from PIL import Image

    for i in range(4):
        Image.new("L", (28, 28), 255).save(blank / f"{i}.png")
    p.root.setText(str(tmp_path / "blank"))
    _pick(p.source, "folder")
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    assert "Could not load" in p.data_info.text()
    _open(qtbot, win, "mnist-vae-2d")
    assert "fine-tune" not in p.data_info.text(), p.data_info.text()
