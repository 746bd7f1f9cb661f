"""Evaluate in the window: the numbers of ``latent-train evaluate`` for the same model and
seed, in the background with progress and cancel, kept with the model they measured."""

from __future__ import annotations

import json

import pytest
from explorer_helpers import train

from explorer.evaluation import EvalState
from trainer import examples as ex
from trainer.__main__ import main as cli


def _open(qtbot, win, name):
    assert win.open_checkpoint(ex.example_path(name))
    qtbot.waitUntil(lambda: not win.busy, timeout=10000)


def _evaluate(qtbot, win, k):
    win.eval_controls.k.setValue(k)
    assert win.evaluate()
    qtbot.waitUntil(lambda: not win.evaluation.running, timeout=60000)
    assert win.evaluation.state is EvalState.DONE, win.evaluation.error
    return win.evaluation.result


@pytest.mark.parametrize("name", ["mnist-cvae-2d", "mnist-ae-2d"])
def test_the_window_gives_the_numbers_of_latent_train_evaluate(qtbot, window, tmp_path, name):
    _open(qtbot, window, name)
    got = _evaluate(qtbot, window, 20)
    out = tmp_path / "e.json"
    assert (
        cli(
            [
                "evaluate",
                "--checkpoint",
                str(ex.example_path(name)),
                "--iw-samples",
                "20",
                "--prior-samples",
                "20",
                "--seed",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    want = json.loads(out.read_text())
    for key in (
        "n_images",
        "test_nelbo",
        "test_recon",
        "test_kl",
        "test_nll_iw",
        "test_nll_prior_mc",
        "active_units",
        "kl_per_dim",
    ):
        assert (key in got) == (key in want), key
        if key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key
    text = window.eval_controls.result.text()
    if "test_nll_iw" in want:
        assert f"{want['test_nll_iw']:.2f}" in text and "prior Monte Carlo" in text
        assert window.session.kl_per_dim.tolist() == pytest.approx(want["kl_per_dim"])
    else:
        assert "autoencoder has no ELBO" in text


def test_an_evaluation_can_be_cancelled_and_shows_progress(qtbot, window):
    _open(qtbot, window, "fashion-vae-20d")
    window.eval_controls.k.setValue(100_000)  # minutes of work: it must stop on request
    assert window.evaluate()
    assert window.eval_controls.button.text() == "Cancel"
    qtbot.waitUntil(lambda: window.evaluation.fraction > 0, timeout=30000)
    assert window.eval_controls.progress.isVisible()
    # the time left, from the progress so far (it gave none)
    ev = window.evaluation
    ev._started -= 30.0  # as if 30 s had gone by for a quarter of the work
    ev._progressed(0.25, "importance sampling")
    assert 88 <= ev.eta <= 95
    assert "25% (importance sampling), about 1:3" in window.eval_controls.result.text()
    window.eval_controls.button.click()
    qtbot.waitUntil(lambda: not window.evaluation.running, timeout=10000)
    assert window.evaluation.state is EvalState.CANCELLED and window.evaluation.result is None
    assert window.eval_controls.button.text() == "Evaluate"
    assert "cancelled" in window.eval_controls.result.text()


def test_a_result_belongs_to_its_model(qtbot, window):
    """Training further makes it an earlier step's; another model clears it."""
    r = _evaluate(qtbot, window, 5)
    step = window.session.step
    assert r["step"] == step and not window.evaluation.stale
    train(qtbot, window, epochs=1)  # Train: a new model from scratch
    assert window.evaluation.result is None
    _evaluate(qtbot, window, 5)
    window.start_training(resume=True, epochs=1)  # Continue: the same model, further
    qtbot.waitUntil(lambda: len(window.run.outcomes) == 2 and not window.busy, timeout=60000)
    assert window.evaluation.result is not None and window.evaluation.stale
    assert "trained further since" in window.eval_controls.result.text()
    _open(qtbot, window, "shapes-vae-10d")  # the same shape of model, another model
    assert window.evaluation.result is None


def test_evaluate_waits_for_training_to_stop(qtbot, window):
    window.panel.epochs.setValue(500)
    assert window.start_training()
    qtbot.waitUntil(lambda: window.run.running, timeout=20000)
    assert not window.evaluate()
    assert "Stop training" in window.banner.text
    window.run.stop()
    qtbot.waitUntil(lambda: not window.busy, timeout=30000)
