"""Malformed checkpoints in the window: each one gives a message and changes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time

import pytest
import torch
from explorer_helpers import train
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save


def _rewrite(src, dst, change) -> None:
    """Copy checkpoint ``src`` to ``dst`` with ``change(meta)`` applied to its metadata."""
    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["latent_explorer"])
    text = change(meta)  # changes meta in place, or returns the metadata's whole text
    text = text if isinstance(text, str) else json.dumps(meta)
    dst.write_bytes(st_save(st_load(raw), metadata={"latent_explorer": text}))


def _set(path: str, value):
    def change(meta):
        *parents, last = path.split(".")
        d = meta
        for p in parents:
            d = d[p]
        d[last] = value

    return change


def _deep(meta):
    meta["history"] = "DEEP"
    return json.dumps(meta).replace('"DEEP"', "[" * 1000 + "0" + "]" * 1000)


MUTATIONS = {
    "seed text": _set("train_config.seed", "x"),
    "seed null": _set("train_config.seed", None),
    "seed 2**70": _set("train_config.seed", 2**70),
    "images a number": lambda m: m.update(data_spec=dict(m["data_spec"], source="idx", images=5)),
    "data_spec a string": _set("data_spec", "shapes"),
    "history a number": _set("history", 5),
    "history a string": _set("history", "abc"),
    "history steps a number": lambda m: m["history"].update(steps=5),
    "history rows of junk": lambda m: m["history"].update(steps=[{"x": 1}]),
    "epochs_done 1e100": _set("epochs_done", 1e100),
    "epochs_done text": _set("epochs_done", "x"),
    "epochs_done NaN": _set("epochs_done", float("nan")),
    "epochs_done null": _set("epochs_done", None),
    "version null": _set("version", None),
    "class_names a number": _set("class_names", 5),
    "optimizer state a number": lambda m: m["optimizer"].update(state=5),
    "image_shape fractional": _set("model_config.image_shape", [1, 28.5, 28]),
    "image_shape huge": _set("model_config.image_shape", [1, 1000000, 1000000]),
    "hidden text": _set("model_config.hidden", "400"),
    "latent a bool": _set("model_config.latent_dim", True),
    "lr NaN": _set("train_config.lr", float("nan")),
    "nested 1000 deep": _deep,
}


@pytest.fixture
def saved(qtbot, window, tmp_path):
    train(qtbot, window, epochs=1)
    path = window.save_checkpoint(tmp_path / "good.safetensors")
    assert path is not None and path.exists()
    return window, path


def test_every_malformed_checkpoint_is_refused_with_a_message(qtbot, saved, tmp_path):
    win, good = saved
    model_before = win.session.model
    weights = {k: v.clone() for k, v in model_before.state_dict().items()}
    step = win.session.step
    refused = []
    for i, (name, change) in enumerate(MUTATIONS.items()):
        bad = tmp_path / f"bad{i}.safetensors"
        _rewrite(good, bad, change)
        shown = len(win.banner.history)
        ok = win.open_checkpoint(bad)  # an exception here fails the test
        qtbot.wait(1)  # queued work (loads, redraws) runs: a late widget error fails it too
        if ok:  # accepted: then it must have opened with sane values
            pytest.fail(f"{name}: opened {bad.name}")
        assert len(win.banner.history) > shown, name
        level, text = win.banner.history[-1]
        assert level == "error" and bad.name in text, (name, text)
        assert "Traceback" not in text and "unexpected" not in text, (name, text)
        refused.append(name)
        assert win.session.model is model_before and win.session.step == step, name
    assert len(refused) == len(MUTATIONS)
    for k, v in win.session.model.state_dict().items():
        torch.testing.assert_close(v, weights[k])
    # and the good file still opens
    assert win.open_checkpoint(good), win.banner.history[-1]


def test_a_header_whose_metadata_is_a_list_is_refused(qtbot, saved, tmp_path):
    win, good = saved
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = ["latent_explorer"]
    text = json.dumps(header).encode()
    bad = tmp_path / "list.safetensors"
    bad.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    assert not win.open_checkpoint(bad)
    assert win.banner.level == "error" and "list.safetensors" in win.banner.text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_a_named_pipe_opened_as_a_checkpoint_does_not_freeze_the_window(qtbot, window, tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock():  # if the window blocks reading the pipe, end it so the test fails, not hangs
        if not done.wait(10):
            with open(fifo, "wb") as f:
                f.write(b"x")

    threading.Thread(target=unblock, daemon=True).start()
    t0 = time.perf_counter()
    ok = window.open_checkpoint(fifo)
    took = time.perf_counter() - t0
    done.set()
    assert took < 5, f"opening a named pipe blocked the window for {took:.1f} s"
    assert not ok and window.banner.level == "error"
    assert "pipe.safetensors" in window.banner.text and "regular file" in window.banner.text


GARBAGE = ["x", "99999999999999999999", "-5", "", "1e100", "nan", "@ByteArray(\\x1\\x2)", "true"]
KEYS = [
    "train/source",
    "train/shapes_count",
    "train/model",
    "train/arch",
    "train/likelihood",
    "train/device",
    "train/images",
    "train/labels",
    "train/root",
    "train/gauss_std",
    "train/beta",
    "train/warmup",
    "train/lr",
    "train/image_size",
    "train/latent",
    "train/hidden",
    "train/batch",
    "train/epochs",
    "train/seed",
    "window/geometry",
    "window/state",
    "window/tab",
    "window/main_split",
    "view/grid_n",
    "view/log",
    "view/smooth",
    "view/order_by_kl",
    "last_dir",
]


@pytest.mark.parametrize("value", GARBAGE)
def test_a_settings_file_full_of_garbage_opens_the_window(qtbot, make_window, tmp_path, value):
    """Every setting holds the same junk: the window opens, shows a usable model or says
    what is wrong with the data, and raises nothing."""
    ini = tmp_path / "junk.ini"
    ini.write_text(
        "[train]\n"
        + "".join(f"{k.split('/')[1]}={value}\n" for k in KEYS if k.startswith("train/"))
        + "[window]\n"
        + "".join(f"{k.split('/')[1]}={value}\n" for k in KEYS if k.startswith("window/"))
        + "[view]\n"
        + "".join(f"{k.split('/')[1]}={value}\n" for k in KEYS if k.startswith("view/"))
        + f"[General]\nlast_dir={value}\n"
    )
    win = make_window(ini, wait_data=False)
    qtbot.waitUntil(lambda: not win.busy, timeout=30000)
    assert win.session.model is not None or win.banner.level in ("error", "info", "warning")
    for spin in win.panel._spins().values():
        assert spin.minimum() <= spin.value() <= spin.maximum()


def test_settings_for_a_model_too_large_to_build_give_a_message(qtbot, make_window, tmp_path):
    ini = tmp_path / "huge.ini"
    ini.write_text("[train]\nsource=shapes\nshapes_count=100\nimage_size=256\nhidden=8192\n")
    win = make_window(ini)  # the preview falls back to a model that can be built
    assert win.session.model is not None and win.session.model.config.hidden == 400
    assert win.panel.hidden.value() == 8192
    win.start_training()  # refused by the training thread as it builds the model
    qtbot.waitUntil(lambda: not win.busy, timeout=30000)
    assert win.run.state.value == "failed" and win.session.model.config.hidden == 400
    level, text = win.banner.history[-1]
    assert level == "error" and "too large" in text and "Hidden size" in text


# -- files that are no file: a link loop, a damaged run, a named pipe as an export ---------------
def _unchanged(win, model, weights, step) -> None:
    assert win.session.model is model and win.session.step == step
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, weights[k])


def test_a_symbolic_link_loop_opened_is_one_message(qtbot, saved, tmp_path):
    win, _ = saved
    model, step = win.session.model, win.session.step
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    loop = tmp_path / "loop.safetensors"
    os.symlink(loop, loop)  # a link to itself
    assert not win.open_checkpoint(loop)  # it raised RuntimeError("Symlink loop") once
    assert win.banner.level == "error" and "loop.safetensors" in win.banner.text
    assert "loop" in win.banner.text.replace("loop.safetensors", "")
    assert "unexpected" not in win.banner.text
    _unchanged(win, model, weights, step)


def test_a_run_whose_noise_state_is_damaged_does_not_open(qtbot, saved, tmp_path):
    """A run stopped inside an epoch keeps its noise generator's state. One that no
    generator takes, in a file sealed afresh, opened and then failed at Continue with
    "Invalid mt19937 state"; it is refused on opening, the model on screen staying."""
    from trainer.checkpoint import _seal

    win, good = saved
    model, step = win.session.model, win.session.step
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(json.loads(raw[8 : 8 + n])["__metadata__"]["latent_explorer"])
    tensors = st_load(raw)
    noise = torch.Generator().manual_seed(1).get_state()
    noise[8:12] = 0  # the Mersenne Twister's count of numbers left: 0 is no state
    tensors["run/noise_state"] = noise
    meta["position"] = {"epoch_images": 64, "epoch_sums": [100.0, 90.0, 10.0]}
    meta["checksum"] = "sha256:" + "0" * 64
    bad = tmp_path / "stopped.safetensors"
    blob = st_save(tensors, metadata={"latent_explorer": json.dumps(meta)})
    bad.write_bytes(b"".join(_seal(blob)))
    assert not win.open_checkpoint(bad)
    assert win.banner.level == "error" and "stopped.safetensors" in win.banner.text
    assert "noise_state" in win.banner.text and "mt19937" in win.banner.text
    _unchanged(win, model, weights, step)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_an_export_to_a_named_pipe_writes_nothing_and_says_so(qtbot, saved, tmp_path):
    """Every export and the checkpoint save: one message, and the pipe is still a pipe
    (an export once replaced it with a file)."""
    import stat

    win, _ = saved
    win.runs_view.table.selectAll()
    exports = {
        "manifold.png": lambda p: win.export_view("manifold", p),
        "walk.gif": win.export_gif,
        "rows.gif": win.export_traversal_gif,
        "history.csv": win.export_csv,
        "runs.png": win.export_runs,
        "model.safetensors": lambda p: win.save_checkpoint(p) is not None,
    }
    for name, export in exports.items():
        fifo = tmp_path / name
        os.mkfifo(fifo)
        assert not export(fifo), name
        assert win.banner.level == "error" and name in win.banner.text, (name, win.banner.text)
        assert "named pipe" in win.banner.text, (name, win.banner.text)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode), name
    fifo = tmp_path / "film.gif"
    os.mkfifo(fifo)
    assert not win.export_film(fifo)
    assert win.banner.level == "error" and "named pipe" in win.banner.text, win.banner.text
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- the other files the window reads: the project's runs, the recovery folder, the settings --
def _json_fuzz():
    """The JSON fuzz of tests/trainer (its damaged run.json files and its reference)."""
    import importlib.util
    import sys
    from pathlib import Path

    if "json_fuzz" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "trainer" / "test_json_fuzz.py"
        spec = importlib.util.spec_from_file_location("json_fuzz", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["json_fuzz"] = module
        spec.loader.exec_module(module)
    return sys.modules["json_fuzz"]


DAMAGED_RUNS = 60  # damaged run.json files in the project the window opens on


def _damaged_project(folder) -> list:
    """A project of two good runs and the first DAMAGED_RUNS damaged run.json files of the
    JSON fuzz's run.json surface that its reference refuses (pipes, loops and folders in
    their place among them); returns the damaged files."""
    import random

    fz = _json_fuzz()
    for rid in fz.GOOD_IDS:
        f = folder / "runs" / rid / "run.json"
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps(fz.run_record(rid, f"good {rid[-1]}")))
    rng = random.Random(f"{fz.SEED}/window")
    damaged, i = [], 0
    while len(damaged) < DAMAGED_RUNS:
        kind, blob, _what = fz.hostile(fz.RunFile.base, i, fz.RunFile.fields) or fz.damage(
            rng, fz.RunFile.base
        )
        i += 1
        good = fz.dumps(fz.RunFile.base)
        ok, value = fz.expected_value(kind, blob, good)
        if ok and fz.ref_run(value, fz.FUZZ_ID)[0]:
            continue  # a good file: the loader's fuzz checks those
        rid = f"{fz.FUZZ_ID[:-6]}{len(damaged):06d}"
        if isinstance(blob, bytes):  # its own folder: its id must be the folder's name
            blob = blob.replace(fz.FUZZ_ID.encode(), rid.encode())
        target = folder / "runs" / rid / "run.json"
        fz.place(target, kind, blob, good.replace(fz.FUZZ_ID.encode(), rid.encode()))
        damaged.append(target)
    return damaged


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_the_runs_tab_on_a_damaged_project_lists_the_good_runs_and_says_the_rest_once(
    qtbot, make_window, settings_path, tmp_path
):
    """A project holding 60 damaged run.json files (fields of another type, null, lists
    for objects, 3,000 deep, not UTF-8, a named pipe, a folder, a link loop, a copied
    run's id...) beside two good runs: the window starts, its Runs tab lists the two, one
    message says what was skipped, and comparing and removing runs works."""
    from PySide6.QtCore import QSettings

    damaged = _damaged_project(tmp_path / "project")
    s = QSettings(str(settings_path), QSettings.IniFormat)
    s.setValue("runs/project", str(tmp_path / "project"))
    s.sync()
    win = make_window()
    view = win.runs_view
    assert view.table.rowCount() == 2
    assert sorted(view.table.item(r, 0).text() for r in range(2)) == ["good a", "good b"]
    said = [t for lvl, t in win.banner.history if "could not be read" in t]
    assert len(said) == 1 and "\n" not in said[0], win.banner.history
    assert str(damaged[0]) in said[0] and f"and {DAMAGED_RUNS - 1} more" in said[0]
    assert "latent-train runs --project" in said[0]
    view.table.selectAll()
    assert len(view.curves) == 2 and "same settings" in view.diff.text()
    win.projects.reload()  # (said once: a reload says nothing new)
    assert len([t for _lvl, t in win.banner.history if "could not be read" in t]) == 1
    view.select([win.projects.records[0].id])
    view.remove_selected()
    assert view.table.rowCount() == 1
    assert all(os.path.lexists(p) for p in damaged)  # nothing of the damaged runs went


@contextlib.contextmanager
def _unblocking(fifo):
    """Time what the block does; should it block reading the named pipe ``fifo``, write to
    the pipe after 10 s, so that the test fails rather than hangs. Yields the seconds
    taken (a function: read it after the block)."""
    done, spent = threading.Event(), []

    def unblock():
        if not done.wait(10):
            with contextlib.suppress(OSError), open(fifo, "wb") as f:
                f.write(b"x")

    if (
        not hasattr(os, "mkfifo")
        or not os.path.exists(fifo)
        or not stat.S_ISFIFO(os.lstat(fifo).st_mode)
    ):
        done.set()
    threading.Thread(target=unblock, daemon=True).start()
    t0 = time.perf_counter()
    try:
        yield lambda: spent[0]
    finally:
        spent.append(time.perf_counter() - t0)
        done.set()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_a_run_folder_whose_metrics_file_is_damaged_is_added_without_its_numbers(
    qtbot, window, tmp_path
):
    """The Runs tab's "Add --out folder…" (latent-train runs --add): a metrics.json that
    is a named pipe hung the window; one of the wrong kind was dropped silently."""
    from trainer.checkpoint import load_checkpoint

    fz = _json_fuzz()
    window.projects.set_folder(tmp_path / "project")
    for name, make in {
        "pipe": os.mkfifo,
        "text": lambda p: p.write_text('{"test_nelbo": "x"}'),
    }.items():
        run = tmp_path / name
        run.mkdir()
        (run / "checkpoint.safetensors").write_bytes(fz.tiny_checkpoint())
        make(run / "metrics.json")
        shown = len(window.banner.history)
        with _unblocking(run / "metrics.json") as took:
            rec = window.projects.add_folder(run)
        assert took() < 5, f"a named pipe as metrics.json held the window for {took():.1f} s"
        qtbot.waitUntil(lambda s=shown: len(window.banner.history) > s, timeout=5000)
        assert rec is not None and any(r.id == rec.id for r in window.projects.records)
        curve = load_checkpoint(run / "checkpoint.safetensors").history.epochs[-1]["test_nelbo"]
        assert rec.metrics == {"test_nelbo": curve}  # the curve's, none of the file's
        level, text = window.banner.history[-1]
        assert level == "warning" and str(run / "metrics.json") in text, text
        assert ("named pipe" if name == "pipe" else "'test_nelbo'") in text, text


def _recovery_folder(tmp_path, kind: str):
    folder = tmp_path / "recovery"
    if kind == "a file":
        folder.write_text("not a folder")
    elif kind == "a named pipe":
        os.mkfifo(folder)
    elif kind == "a link loop":
        os.symlink(folder, folder)
    elif kind == "unreadable":
        folder.mkdir()
        folder.chmod(0)
    else:
        folder.mkdir()
        name = "recovery-999999-0.safetensors"
        if kind == "a leftover temporary folder":
            (folder / f".{name}.999999.abcdefgh.tmp").mkdir()
        elif kind == "an autosave that is a folder":
            (folder / name).mkdir()
        elif kind == "an autosave that is a named pipe":
            os.mkfifo(folder / name)
    return folder


RECOVERY_KINDS = (
    "a file",
    "a named pipe",
    "a link loop",
    "unreadable",
    "a leftover temporary folder",
    "an autosave that is a folder",
    "an autosave that is a named pipe",
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
@pytest.mark.parametrize("kind", RECOVERY_KINDS)
def test_a_recovery_folder_that_cannot_hold_autosaves_is_one_message(
    qtbot, make_window, tmp_path, kind
):
    """The recovery folder a file, a named pipe, a link loop or unreadable: autosaving is
    off and one message says so (it was silent); a leftover temporary that is a folder
    (IsADirectoryError at start-up) or an autosave that is no file (offered, then a
    traceback at closing) are no autosaves: the window starts and closes cleanly."""
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("permissions do not bind root")
    folder = _recovery_folder(tmp_path, kind)
    try:
        win = make_window(recovery=folder)
        qtbot.wait(50)  # the start-up's queued messages (the recovery offer among them)
        texts = [t for _lvl, t in win.banner.history]
        assert not any("did not close normally" in t for t in texts), texts
        if kind in RECOVERY_KINDS[:4]:
            said = [t for t in texts if "not autosaved" in t]
            assert len(said) == 1 and str(folder) in said[0], texts
            assert not win.recovery.usable and win.run.autosave_path is None
        else:
            assert win.recovery.usable and not any("autosave" in t for t in texts), texts
        win.close()  # the recovery file is discarded: nothing raises
        assert os.path.lexists(folder)
    finally:
        if kind == "unreadable":
            folder.chmod(0o700)


def _start_window(program_env, tmp_path, args: list[str], config) -> tuple[int, str, str]:
    """The window started as the latent-explorer command starts it, in its own process:
    its messages (JSON) once the start-up has settled; a hang fails the test, not the
    suite."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import json, os, sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from explorer import app as appmod\n"
        "qapp = QApplication(sys.argv[:1])\n"
        "win = appmod.start(appmod.build_parser().parse_args(sys.argv[1:]))\n"
        "win.ask_on_close = False\n"
        "def done():\n"
        "    win.close()\n"
        "    print(json.dumps(win.banner.history), flush=True)\n"
        "    os._exit(0)\n"
        "QTimer.singleShot(2000, done)\n"
        "qapp.exec()\n"
    )
    env = dict(
        program_env,
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(config),
        XDG_DATA_HOME=str(tmp_path / "share"),
        LATENT_EXPLORER_PROJECT=str(tmp_path / "project"),
    )
    root = Path(__file__).resolve().parents[2]
    try:
        p = subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the window did not start within 240 s with {args}")
    return p.returncode, p.stdout, p.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
@pytest.mark.parametrize("where", ["--settings", "the user's settings file"])
def test_a_settings_file_that_is_a_named_pipe_never_holds_the_window(program_env, tmp_path, where):
    """Qt reads the settings file as the window is made: a named pipe there held the
    window before it appeared. It starts on the defaults, says so once, and leaves the
    pipe a pipe (the save at closing does not replace it)."""
    config = tmp_path / "config"
    if where == "--settings":
        fifo, args = tmp_path / "settings.ini", ["--settings", str(tmp_path / "settings.ini")]
    else:
        fifo, args = config / "latent-explorer" / "latent-explorer.ini", []
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    code, out, err = _start_window(program_env, tmp_path, args, config)
    assert code == 0 and out.strip(), err[-3000:]
    history = json.loads(out.strip().splitlines()[-1])
    said = [t for lvl, t in history if "settings file" in t]
    assert len(said) == 1 and str(fifo) in said[0] and "named pipe" in said[0], history
    assert "Traceback" not in err, err[-3000:]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def _png_with_text(chunk: bytes = b"zTXt", size: int = 2 << 20) -> bytes:
    """A white 28x28 PNG with a compressed text chunk of ``size`` bytes (past the 1 MB
    Pillow decompresses for one)."""
    import io
    import struct
    import zlib

    from PIL import Image

    def png_chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    buf = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buf, "PNG")
    png = buf.getvalue()
    text = png_chunk(chunk, b"comment\0\0" + zlib.compress(b"a" * size))
    return png[:33] + text + png[33:]  # after the header chunk


def _drop(win, md) -> None:
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QDropEvent

    win.dropEvent(QDropEvent(QPointF(5, 5), Qt.CopyAction, md, Qt.LeftButton, Qt.NoModifier))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_a_dropped_named_pipe_is_refused_at_once(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(fifo))])
    with _unblocking(fifo) as took:
        _drop(window, md)
    assert took() < 5, f"a dropped named pipe held the window for {took():.1f} s"
    level, text = window.banner.history[-1]
    assert level == "error" and "ipe.png" in text and "named pipe" in text, text


def test_a_picture_with_a_huge_text_chunk_is_refused_in_one_line(qtbot, window, tmp_path):
    """A PNG whose text chunk decompresses past 1 MB (Pillow raises ValueError for it),
    dropped as a file and pasted as a picture: one message that says why, the cursor and
    the model where they were. A paste ended with "The clipboard holds no picture" over
    the reason."""
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QGuiApplication, QImage

    path = tmp_path / "big.png"
    path.write_bytes(_png_with_text())
    z = window.session.z.clone()
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(path))])
    _drop(window, md)
    level, text = window.banner.history[-1]
    assert level == "error" and "ig.png" in text and "too large" in text, text
    image = QImage()
    assert image.loadFromData(path.read_bytes())
    clip = QMimeData()
    clip.setImageData(image)
    QGuiApplication.clipboard().setMimeData(clip)
    shown = len(window.banner.history)
    assert not window.paste_picture()
    said = window.banner.history[shown:]
    assert len(said) == 1 and said[0][0] == "error" and "too large" in said[0][1], said
    assert window.session.z.equal(z)
