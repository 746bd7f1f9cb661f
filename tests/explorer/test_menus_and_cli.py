"""Menus, shortcuts and the command line (regressions found by QA)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from explorer_helpers import train
from PySide6.QtWidgets import QFileDialog

import explorer.window as window_mod
from explorer import app
from explorer.run import RunState


def _menu_action(win, menu: str, text: str):
    for top in win.menuBar().actions():
        if top.text().replace("&", "") == menu:
            found = [a for a in _all_actions(top.menu()) if a.text().replace("&", "") == text]
            assert found, f"no {text!r} in the {menu} menu"
            return found[0]
    raise AssertionError(f"no {menu} menu")


def _all_actions(m):
    for a in m.actions():
        yield a
        if a.menu() is not None:
            yield from _all_actions(a.menu())


def test_view_menu_actions_switch_to_their_tab(window):
    """QA: Ctrl+1…Ctrl+5 always showed tab 0 (PySide passed checked=False into i)."""
    win = window
    for i in (4, 1, 3, 2, 0):
        action = _menu_action(win, "View", win.tabs.tabText(i))
        assert action.shortcut().toString() == f"Ctrl+{i + 1}"
        action.trigger()  # exactly what the shortcut does
        assert win.tabs.currentIndex() == i


@pytest.mark.parametrize("name", ["manifold", "class row"])
def test_export_menu_items_export_their_view(qtbot, window, tmp_path, monkeypatch, name):
    """QA: File ▸ Export ▸ "<View> as PNG…" raised AttributeError on a bool."""
    if name == "class row":
        train(qtbot, window, epochs=1, model="cvae")
    asked = []

    def fake_dialog(parent, title, start, filt):
        asked.append((title, start))
        return str(tmp_path / "out.png"), filt

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    exported = []
    monkeypatch.setattr(window, "export_view", lambda n, p: exported.append((n, p)))
    _menu_action(window, "File", f"{name.capitalize()} as PNG…").trigger()
    assert asked and asked[0][0] == f"Export {name}"
    assert Path(asked[0][1]).name == f"{name.replace(' ', '-')}.png"
    assert exported == [(name, str(tmp_path / "out.png"))]


def test_class_row_export_explains_itself_before_any_dialog(window, monkeypatch):
    """QA: "nothing to export from the class row yet" came only after a file name was
    chosen. For an unconditional model the action is disabled and says why, and triggering
    it anyway (Ctrl+E on that tab) explains without opening a dialog."""

    def no_dialog(*a, **k):
        raise AssertionError("a file dialog opened for an export that cannot happen")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(no_dialog))
    action = _menu_action(window, "File", "Class row as PNG…")
    assert not action.isEnabled() and "conditional VAE" in action.toolTip()
    assert not window.export_buttons["class row"].isEnabled()
    window.tabs.setCurrentIndex(4)
    window.export_current_dialog()
    assert window.banner.level == "warning" and "conditional VAE" in window.banner.text


@pytest.fixture
def checkpoint(qtbot, window, tmp_path):
    window.panel.latent.setValue(3)
    train(qtbot, window, epochs=1)
    path = window.save_checkpoint(tmp_path / "model")
    window.close()
    return path


def test_open_checkpoint_while_loading_opens_it_after_the_load(qtbot, make_window, checkpoint):
    """QA: Ctrl+O during the startup data load said "Stop training" and refused."""
    win = make_window(wait_data=False)
    assert win.run.state is RunState.LOADING
    assert win.open_checkpoint(checkpoint)
    texts = " ".join(t for _lvl, t in win.banner.history)
    assert "Stop training" not in texts and "loading data" in texts
    qtbot.waitUntil(lambda: win.session.latent_dim == 3 and not win.busy, timeout=20000)
    assert win.session.epochs_done == 1
    assert win.session.data is not None


def test_checkpoint_on_the_command_line_opens(qtbot, checkpoint, tmp_path):
    """QA: ``latent-explorer FILE`` always failed with "Stop training before opening"."""
    args = app.build_parser().parse_args(
        [str(checkpoint), "--settings", str(tmp_path / "cli.ini"), "--no-restore"]
    )
    win = app.start(args)
    qtbot.addWidget(win)
    assert win.session.data is None and not win.busy  # no startup load before the checkpoint
    qtbot.waitUntil(lambda: win.session.latent_dim == 3 and not win.busy, timeout=20000)
    qtbot.waitUntil(lambda: win.session.data is not None, timeout=20000)
    texts = " ".join(t for _lvl, t in win.banner.history)
    assert "Stop training" not in texts and f"Opened {checkpoint.name}" in texts
    assert win.session.epochs_done == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--tab", "12"], "--tab: must be 1 to 11, not 12"),
        (["--tab", "0"], "--tab: must be 1 to 11"),
        (["--latent", "300"], "--latent: must be 1 to 256, not 300"),
        (["--latent", "0"], "--latent: must be 1 to 256, not 0"),
        (["--grid", "50"], "--grid: must be 5 to 30, not 50"),
        (["--grid", "4"], "--grid: must be 5 to 30"),
        (["--epochs", "0"], "--epochs: must be 1"),
        (["--size", "12x"], "--size: must look like 1480x920"),
        (["--size", "100x100"], "--size: width and height must be"),
        (["--quit-after", "-5"], "--quit-after: must be 0 to 2147483647, not -5"),
        (["--latent", "two"], "--latent: 'two' is not a whole number"),
        # an abbreviation is a mistake (argparse took --epoch for --epochs)
        (["--epoch", "3"], "unrecognized arguments: --epoch; did you mean --epochs?"),
        (["--lat", "3"], "unrecognized arguments: --lat; did you mean --latent?"),
        # a data option the source does not read would be ignored (the window would load
        # the chosen or remembered data without it)
        (
            ["--dataset", "shapes", "--images", "f.gz"],
            "--images does not apply to --dataset shapes: it names an images file "
            "(--dataset idx or npz)",
        ),
        (["--images", "f.gz"], "--images does not apply to the remembered data (no --dataset)"),
        (
            ["m.safetensors", "--root", "d"],
            "--root does not apply to the checkpoint's data (no --dataset)",
        ),
        (
            ["--dataset", "idx", "--images", "f.gz", "--root", "d"],
            "--root does not apply to --dataset idx",
        ),
        (
            ["--dataset", "folder", "--root", "d", "--labels", "l.gz"],
            "--labels does not apply to --dataset folder",
        ),
        (["--dataset", "idx", "--labels", "l.gz"], "--labels without --images"),
        (["--quit-after", str(2**40)], "--quit-after: must be 0 to 2147483647"),
    ],
)
def test_bad_options_fail_with_one_line_before_any_window(argv, words, capsys, monkeypatch):
    """QA: --tab 9 was accepted, --latent 300 became 256, --latent 0 was ignored, …"""

    def no_window(*a, **k):
        raise AssertionError("a window was built for a bad option")

    monkeypatch.setattr(window_mod, "MainWindow", no_window)
    with pytest.raises(SystemExit) as e:
        app.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_idx_images_come_with_their_own_labels_or_none(window):
    """QA: --dataset idx --images OTHER kept the labels file the window remembered, and
    trained OTHER with the labels of other images."""
    win = window
    win.panel.labels.setText("/remembered/labels.gz")
    args = app.build_parser().parse_args(["--dataset", "idx", "--images", "/other/images.gz"])
    app._apply_cli(win, args)
    assert win.panel.images.text() == "/other/images.gz" and win.panel.labels.text() == ""
    args = app.build_parser().parse_args(
        ["--dataset", "idx", "--images", "/other/images.gz", "--labels", "/other/labels.gz"]
    )
    app._apply_cli(win, args)
    assert win.panel.labels.text() == "/other/labels.gz"


def test_a_huge_thread_count_is_lowered_and_said(capsys, monkeypatch):
    """QA: OMP_NUM_THREADS=99999 crashed the window's training (a segmentation fault)."""
    from trainer.loop.threads import most_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "99999")
    with pytest.raises(SystemExit) as e:
        app.main(["--tab", "0"])  # (a mistake: ends before any window)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"latent-explorer: note: OMP_NUM_THREADS=99999 is more than {most_threads()} " in err
    assert os.environ["OMP_NUM_THREADS"] == str(most_threads())


def test_the_window_says_a_thread_count_it_lowered(qtbot, tmp_path):
    args = app.build_parser().parse_args(
        ["--settings", str(tmp_path / "o.ini"), "--no-restore", "--dataset", "shapes"]
    )
    args.notes = ["OMP_NUM_THREADS=99999 is more than 8 threads; using 8"]
    win = app.start(args)
    qtbot.addWidget(win)
    said = lambda: any("OMP_NUM_THREADS=99999 is more" in t for _l, t in win.banner.history)  # noqa: E731
    qtbot.waitUntil(said, timeout=10000)
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)


def test_zero_is_not_ignored_and_good_options_apply(qtbot, tmp_path):
    args = app.build_parser().parse_args(
        [
            "--settings",
            str(tmp_path / "o.ini"),
            "--no-restore",
            "--dataset",
            "shapes",
            "--latent",
            "1",
            "--epochs",
            "1",
            "--tab",
            "5",
            "--grid",
            "30",
            "--size",
            "1200x800",
        ]
    )
    assert args.size == (1200, 800)
    win = app.start(args)
    qtbot.addWidget(win)
    assert win.panel.latent.value() == 1 and win.panel.epochs.value() == 1
    assert win.tabs.currentIndex() == 4 and win.grid_n.value() == 30
    assert (win.width(), win.height()) == (1200, 800)
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)


def test_screenshot_exits_promptly_with_code_2_when_the_data_cannot_load(tmp_path):
    """QA: --screenshot waited up to 10 minutes for data that had failed to load."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    shot = tmp_path / "shot.png"
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "explorer",
            "--settings",
            str(tmp_path / "s.ini"),
            "--no-restore",
            "--dataset",
            "folder",
            "--root",
            str(tmp_path / "nonexistent"),
            "--screenshot",
            str(shot),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert time.perf_counter() - t0 < 60
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("latent-explorer:")]
    assert len(lines) == 1 and "could not load the data" in lines[0] and "nonexistent" in lines[0]
    assert shot.exists()  # the window, with the error in its banner


def test_every_tab_shows_whole_at_the_default_size(qtbot, window):
    """At the default size Arithmetic, Draw, Runs and Film hid behind scroll arrows."""
    win = window
    assert win.size().width() == 1480 and not win.tabs.usesScrollButtons()
    bar = win.tabs.tabBar()
    assert bar.sizeHint().width() <= win.tabs.width()  # no title shortened
    last = bar.tabRect(win.tabs.count() - 1)
    assert last.right() < win.tabs.width() and last.width() > 30
    # a title shortened in the bar is whole in its tooltip
    assert win.tabs.tabToolTip(6).startswith("Posterior vs prior (Ctrl+7)")
