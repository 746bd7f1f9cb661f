"""The Save / Discard / Cancel question says where the model's earlier state is: a bundled
example was opened, never saved, by the user."""

from explorer import dialogs
from trainer.examples import example_path


def test_a_fine_tuned_example_was_opened_from_it_not_saved_to_it(qtbot, window):
    win = window
    assert win.open_checkpoint(example_path("mnist-vae-2d"))
    qtbot.waitUntil(lambda: win.session.example and not win.busy, timeout=20000)
    s = win.session
    box = dialogs.question(None, "open another model", s.describe_model(), s.source)
    qtbot.addWidget(box)
    text = box.informativeText()
    assert "since it was opened from the example “MNIST digits: 2-D VAE”" in text, text
    assert "saved to" not in text and "model.safetensors" not in text
