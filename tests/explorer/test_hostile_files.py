"""Malformed checkpoints in the window: each one gives a message and changes nothing."""

from __future__ import annotations

import json
import os
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
KEYS = ["train/source", "train/shapes_count", "train/model", "train/arch", "train/likelihood",
        "train/device", "train/images", "train/labels", "train/root", "train/gauss_std",
        "train/beta", "train/warmup", "train/lr", "train/image_size", "train/latent",
        "train/hidden", "train/batch", "train/epochs", "train/seed", "window/geometry",
        "window/state", "window/tab", "window/main_split", "view/grid_n", "view/log",
        "view/smooth", "view/order_by_kl", "last_dir"]  # fmt: skip


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
