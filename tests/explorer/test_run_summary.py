"""The status bar's summary of a run that ended counts its epochs in words that agree."""

from explorer.run_status import ended_verb, epochs_text


def test_one_epoch_is_singular_and_more_are_plural():
    assert epochs_text(1) == "1 epoch" and epochs_text(0) == "0 epochs"
    assert ended_verb(False, 1, 1, None) == "Finished 1 epoch"
    assert ended_verb(False, 3, 3, 1) == "Finished 3 epochs (1 more)"
    assert ended_verb(True, 1, 1, None) == "Stopped after 1 of 1 epoch"
    assert ended_verb(True, 2, 5, None) == "Stopped after 2 of 5 epochs"
