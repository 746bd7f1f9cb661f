import copy
import errno
import json
import math
import os
import struct
import sys
import threading
import time

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from safetensors.torch import save_file

from trainer.checkpoint import CheckpointError, _seal, load_checkpoint, save_checkpoint
from trainer.config import ConfigError, ModelConfig, TrainConfig
from trainer.data import DataSpec
from trainer.loop import Trainer, model_config_for, train
from trainer.models import build_model


@pytest.fixture(scope="module")
def saved(shapes, tmp_path_factory):
    cfg = TrainConfig(epochs=2, batch_size=64, device="cpu")
    trainer, _ = train(model_config_for(shapes, model="cvae", latent_dim=3, hidden=64), shapes, cfg)
    path = tmp_path_factory.mktemp("ck") / "model.safetensors"
    save_checkpoint(
        path,
        trainer.model,
        cfg,
        DataSpec("shapes", shapes_count=1200),
        shapes.class_names,
        trainer.history,
        trainer.optimizer.state_dict(),
        trainer.epochs_done,
    )
    return trainer, path


def test_round_trip_is_exact(saved):
    trainer, path = saved
    ck = load_checkpoint(path)
    assert ck.model_config == trainer.model.config
    assert ck.train_config == trainer.config
    assert ck.data_spec == DataSpec("shapes", shapes_count=1200)
    assert ck.class_names == ["circle", "square", "triangle", "ring", "cross"]
    assert ck.history.to_dict() == trainer.history.to_dict()
    assert ck.epochs_done == 2
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(ck.model.state_dict()[k], v.cpu()), k


def test_resuming_from_a_checkpoint_continues_identically(saved, shapes):
    trainer, path = saved
    ck = load_checkpoint(path)
    torch.manual_seed(123)
    resumed = Trainer(
        ck.model,
        shapes,
        ck.train_config,
        history=ck.history,
        optimizer_state=ck.optimizer_state,
        epochs_done=ck.epochs_done,
    )
    a = resumed.fit(epochs=1)
    original = build_model(trainer.model.config)
    original.load_state_dict(trainer.model.state_dict())
    ref = Trainer(
        original,
        shapes,
        trainer.config,
        history=load_checkpoint(path).history,
        optimizer_state=trainer.optimizer.state_dict(),
        epochs_done=2,
    )
    torch.manual_seed(123)
    b = ref.fit(epochs=1)
    drop = lambda e: {k: v for k, v in e.items() if k != "elapsed"}  # noqa: E731
    assert drop(a.history.epochs[-1]) == drop(b.history.epochs[-1])
    for (k, v), w in zip(resumed.model.state_dict().items(), ref.model.state_dict().values()):
        assert torch.equal(v, w), k


def test_write_is_atomic_and_leaves_no_temporary_files(saved, tmp_path):
    trainer, _ = saved
    p = tmp_path / "a.safetensors"
    save_checkpoint(p, trainer.model, trainer.config)
    save_checkpoint(p, trainer.model, trainer.config)  # overwrite in place
    assert [f.name for f in tmp_path.iterdir()] == ["a.safetensors"]
    load_checkpoint(p)


def test_checkpoint_gets_ordinary_permissions(saved, tmp_path):
    import os
    import stat

    trainer, _ = saved
    old = os.umask(0o022)
    try:
        p = save_checkpoint(tmp_path / "m.safetensors", trainer.model, trainer.config)
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_unwritable_destination_is_a_clear_error(saved, tmp_path):
    trainer, _ = saved
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="could not be written"):
        save_checkpoint(tmp_path / "file" / "sub.safetensors", trainer.model, trainer.config)


def test_missing_corrupt_truncated_foreign_and_mismatched_files(saved, tmp_path):
    _, good = saved
    raw = good.read_bytes()
    cases = {}
    cases["missing"] = (tmp_path / "missing.safetensors", "no such file")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    cases["junk"] = (junk, "not a safetensors checkpoint")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    cases["cut"] = (cut, "corrupt or truncated")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    cases["foreign"] = (foreign, "not a Latent Explorer checkpoint")
    # mismatched: the header says latent 5 but the weights are for latent 3
    header, meta, data = _parts(raw)
    meta["model_config"]["latent_dim"] = 5
    mism = tmp_path / "mismatch.safetensors"
    _write(mism, header, meta, data)
    cases["mismatch"] = (mism, "shape")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    cases["empty"] = (empty, "not a checkpoint")
    cases["folder"] = (tmp_path, "is a folder")
    for name, (path, message) in cases.items():
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(path)
        assert str(path) in str(e.value), name
        assert message in str(e.value), (name, str(e.value))


# -- files that are damaged, hostile or of the wrong kind ---------------------------------------
PLACEHOLDER = "sha256:" + "0" * 64


def _parts(raw: bytes) -> tuple[dict, dict, bytes]:
    """A checkpoint's safetensors header (less its metadata), metadata and tensor data."""
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header.pop("__metadata__")["latent_explorer"])
    return header, meta, raw[8 + n :]


def _write(path, header: dict, meta: dict, data: bytes, seal: bool = True, info=None) -> None:
    """Write a checkpoint from its parts; sealed, it gets a valid checksum (as a writer that
    made the fault would have given it), else the metadata is written as it is."""
    if seal:
        meta = dict(meta, checksum=PLACEHOLDER)
    header = dict(
        header, __metadata__={"latent_explorer": json.dumps(meta)} if info is None else info
    )
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    blob = struct.pack("<Q", len(hb)) + hb + data
    path.write_bytes(b"".join(_seal(blob)) if seal else blob)


def _write_tensors(path, tensors: dict, meta: dict, seal: bool = True) -> None:
    meta = dict(meta)
    meta.pop("checksum", None)
    if seal:
        meta["checksum"] = PLACEHOLDER
    blob = st_save(tensors, metadata={"latent_explorer": json.dumps(meta)})
    path.write_bytes(b"".join(_seal(blob)) if seal else blob)


def _refused(path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            load_checkpoint(fifo)
        except Exception as e:  # noqa: BLE001 (reported below)
            outcome.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(timeout=10)
    if t.is_alive():  # a regression: release the reader blocked in open(), then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(timeout=10)
        pytest.fail("load_checkpoint blocked on a named pipe")
    assert len(outcome) == 1 and isinstance(outcome[0], CheckpointError), outcome
    assert str(outcome[0]) == f"{fifo}: is not a regular file (it is a named pipe)"


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null here")
def test_a_device_is_refused():
    _refused("/dev/null", "is not a regular file (it is a character device)")


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges there")
def test_a_symlink_loop_is_named_as_such(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.symlink_to(b)
    b.symlink_to(a)
    _refused(a, "symbolic link that leads round in a loop")
    _refused(tmp_path / "gone.safetensors", "no such file")
    (tmp_path / "file").write_text("x")
    _refused(tmp_path / "file" / "in.safetensors", "no such file")  # ENOTDIR
    with pytest.raises(CheckpointError, match="is not a valid file name"):
        load_checkpoint(tmp_path / "nul\0.safetensors")


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file; no modes on Windows"
)
def test_an_unreadable_file_says_permission_denied(saved, tmp_path):
    p = tmp_path / "locked.safetensors"
    p.write_bytes(saved[1].read_bytes())
    p.chmod(0)
    _refused(p, "cannot be read (permission denied)")


def test_a_file_too_large_is_refused_before_reading(saved, tmp_path, monkeypatch):
    import trainer.checkpoint.read as ck

    monkeypatch.setattr(ck, "MAX_FILE_BYTES", 1000)
    _refused(saved[1], "too large to be a checkpoint")


def test_non_finite_weights_are_refused_naming_the_tensor(saved, tmp_path):
    raw = saved[1].read_bytes()
    _, meta, _ = _parts(raw)
    for bad in (math.nan, math.inf):
        tensors = st_load(raw)
        tensors["model/decoder.out.bias"][3] = bad
        p = tmp_path / "nan.safetensors"
        _write_tensors(p, tensors, meta)
        _refused(p, "weight decoder.out.bias holds NaN or infinite values")
    tensors = st_load(raw)
    tensors["optim/0/exp_avg"][0, 0] = math.nan
    _write_tensors(p, tensors, meta)
    _refused(p, "optimizer tensor 0/exp_avg holds NaN or infinite values")
    tensors = st_load(raw)
    tensors["optim/1/exp_avg_sq"][0] = -1.0
    _write_tensors(p, tensors, meta)
    _refused(p, "optimizer tensor 1/exp_avg_sq holds negative values")


def test_weights_stored_as_integers_are_refused(saved, tmp_path):
    raw = saved[1].read_bytes()
    _, meta, _ = _parts(raw)
    tensors = st_load(raw)
    w = tensors["model/encoder.fc.weight"]
    tensors["model/encoder.fc.weight"] = w.view(torch.int32)  # the same bytes, read as I32
    p = tmp_path / "i32.safetensors"
    _write_tensors(p, tensors, meta)
    _refused(p, "weight encoder.fc.weight is stored as I32")


def test_half_precision_weights_are_read_as_float32(saved, tmp_path):
    trainer, path = saved
    raw = path.read_bytes()
    _, meta, _ = _parts(raw)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        tensors = {k: v.to(dtype) if k.startswith("model/") else v for k, v in st_load(raw).items()}
        p = tmp_path / f"{dtype}.safetensors".replace("torch.", "")
        _write_tensors(p, tensors, meta)
        ck = load_checkpoint(p)
        for k, v in trainer.model.state_dict().items():
            got = ck.model.state_dict()[k]
            assert got.dtype == torch.float32
            assert torch.equal(got, v.to(dtype).float()), (dtype, k)


def test_a_flipped_bit_is_caught_by_the_checksum(saved, tmp_path):
    raw = bytearray(saved[1].read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    p = tmp_path / "flipped.safetensors"
    for at in (8 + n + 5, len(raw) - 3, 8 + n + (len(raw) - 8 - n) // 2):
        flipped = bytearray(raw)
        flipped[at] ^= 0x10
        p.write_bytes(flipped)
        _refused(p, "is damaged (its data does not match its checksum)")
    # one in the metadata: a digit of the learning rate, still a valid file but for the digest
    text = bytes(raw[8 : 8 + n])
    at = 8 + text.index(b'\\"lr\\": ') + len(b'\\"lr\\": ')
    flipped = bytearray(raw)
    flipped[at] ^= 0x01
    p.write_bytes(flipped)
    _refused(p, "is damaged")


def test_a_file_without_a_checksum_is_refused(saved, tmp_path):
    """Every version wrote one: a file without it was damaged (one flipped bit in the key's
    name is enough) or made by something else, and nothing vouches for its values."""
    trainer, path = saved
    raw = path.read_bytes()
    header, meta, data = _parts(raw)
    assert meta["checksum"].startswith("sha256:") and meta["version"] == 1
    p = tmp_path / "unchecked.safetensors"
    del meta["checksum"]
    _write(p, header, meta, data, seal=False)
    _refused(p, "has no checksum", "damaged, or was not written by Latent Explorer")
    # the key's name damaged by one bit, and a weight too: nothing of it may load
    n = struct.unpack("<Q", raw[:8])[0]
    damaged = bytearray(raw)
    at = raw.index(b'\\"checksum\\"', 8, 8 + n) + 4
    damaged[at] ^= 0x01  # "checksum" -> "chdcksum"
    damaged[8 + n + 17] ^= 0x40
    p.write_bytes(damaged)
    _refused(p, "has no checksum")


def test_a_newer_format_is_refused_before_its_contents_are_judged(saved, tmp_path):
    header, meta, data = _parts(saved[1].read_bytes())
    meta["version"] = 2
    meta["model_config"] = "whatever a later version writes"
    p = tmp_path / "new.safetensors"
    _write(p, header, meta, data)
    _refused(p, "written by a newer version (format 2)")


WRONG = [
    # (where, value, what the message says)
    ("version", None, "version must be an integer 0 to 2147483647, not null"),
    ("version", "1", "version must be an integer"),
    ("history", 5, "history must be an object, not 5"),
    ("history", "abc", 'history must be an object, not "abc"'),
    ("history", {"steps": 5}, "history.steps must be a list, not 5"),
    ("history", {"steps": [{"nelbo": 1.0}]}, "history.steps[0] has no step"),
    ("history", {"steps": [{"step": "x"}]}, "history.steps[0].step must be an integer"),
    ("history", {"epochs": [{"epoch": 1, "step": 2}]}, "history.epochs[0] has no test_nelbo"),
    ("history", {"steps": [{"step": 1, "kl": math.nan}]}, "history.steps[0].kl must be a finite"),
    ("epochs_done", "x", 'epochs_done must be an integer 0 to 1000000000, not "x"'),
    ("epochs_done", None, "epochs_done must be an integer 0 to 1000000000, not null"),
    ("epochs_done", math.nan, "epochs_done must be an integer 0 to 1000000000, not nan"),
    ("epochs_done", math.inf, "epochs_done must be an integer 0 to 1000000000, not inf"),
    ("epochs_done", 1e100, "epochs_done must be an integer 0 to 1000000000, not 1e+100"),
    ("epochs_done", 2.0, "epochs_done must be an integer"),
    ("epochs_done", True, "epochs_done must be an integer 0 to 1000000000, not true"),
    ("step", -1, "step must be an integer 0 to"),
    ("class_names", 5, "class_names must be a list of at most 1000 names, not 5"),
    ("class_names", [1, 2, 3, 4, 5], "class_names[0] must be a text"),
    ("class_names", ["a", "b"], "class_names names 2 classes, the conditional model has 5"),
    ("optimizer", [], "optimizer must be an object, not []"),
    ("optimizer.state", [], "optimizer.state must be an object, not []"),
    ("optimizer.state.0.exp_avg", {"tensor": "optim/9/x"}, "refers to a tensor the file does"),
    ("optimizer.state.0.exp_avg", {"tensor": "optim/1/exp_avg"}, "optimizer.state.0.exp_avg has"),
    (
        "optimizer.state.0.step",
        "7",
        "optimizer.state.0.step must be a number or a tensor reference",
    ),
    ("optimizer.param_groups", {}, "optimizer.param_groups must be a list of one group"),
    ("optimizer.param_groups.0.betas", [0.9], "optimizer.param_groups[0].betas must be two"),
    ("optimizer.param_groups.0.params", [0, 1], "optimizer.param_groups[0].params must be"),
    ("data_spec", "shapes", 'data_spec must be an object, not "shapes"'),
    ("data_spec.images", 5, "data_spec.images must be a text of at most 32767 characters, not 5"),
    ("data_spec.image_size", "28", "data_spec.image_size must be an integer"),
    ("data_spec.source", "tape", "data_spec: unknown dataset"),
    ("train_config", None, "train_config must be an object, not null"),
    ("train_config.seed", "x", 'train_config.seed must be an integer 0 to 2147483647, not "x"'),
    ("train_config.seed", None, "train_config.seed must be an integer 0 to 2147483647, not null"),
    ("train_config.seed", 2**70, "train_config.seed must be an integer 0 to 2147483647, not 1180"),
    ("train_config.lr", "fast", 'train_config.lr must be a finite number, not "fast"'),
    ("train_config.lr", 5.0, "train_config: learning rate must be in (0, 1], not 5.0"),
    ("train_config.wings", 2, 'train_config has an unknown field "wings"'),
    ("model_config.image_shape", [1, 28.5, 28], "model_config.image_shape must be [channels"),
    ("model_config.image_shape", 5, "model_config.image_shape must be [channels"),
    ("model_config.image_shape", [1, 10**6, 10**6], "model_config.image_shape must be [1 or 3"),
    ("model_config.latent_dim", True, "model_config.latent_dim must be an integer 1 to 256"),
    ("model_config.gaussian_std", "x", "model_config.gaussian_std must be a finite number"),
    ("model_config.num_classes", 7, "class_names names 5 classes, the conditional model has 7"),
    ("position", 5, "position must be an object, not 5"),
    ("position", {"epoch_images": 64, "epoch_sums": [1.0, math.nan, 2.0]}, "position.epoch_sums"),
    ("position", {"epoch_images": -3, "epoch_sums": [1, 2, 3]}, "position.epoch_images"),
    ("checksum", 5, "checksum must be"),
    # values of the right type that make no sense
    ("optimizer.param_groups.0.eps", 1e100, "optimizer.param_groups[0].eps must be a number"),
    ("optimizer.param_groups.0.lr", 1e100, "optimizer.param_groups[0].lr must be a number in"),
    ("train_config.weights_hz", 1e100, "weights_hz must be above 0 and at most 1000"),
    ("train_config.snapshot_hz", 2**70, "snapshot_hz must be above 0 and at most 1000"),
    ("history.steps.0.images_per_second", -1, "history.steps[0].images_per_second cannot be"),
    ("history.steps.0.lr", 1e100, "history.steps[0].lr must be in (0, 1]"),
    ("history.epochs.0.elapsed", -1.0, "history.epochs[0].elapsed cannot be negative"),
    ("class_names", ["a", "", "c", "d", "e"], "class_names[1] must be a name"),
]


def _set(meta: dict, where: str, value) -> None:
    *parents, last = where.split(".")
    node = meta
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize("where,value,message", WRONG, ids=[f"{w}={v!r}"[:40] for w, v, _ in WRONG])
def test_each_wrong_field_is_one_clear_error(saved, tmp_path, where, value, message):
    header, meta, data = _parts(saved[1].read_bytes())
    _set(meta, where, value)
    p = tmp_path / "x.safetensors"
    if where != "checksum":
        _write(p, header, meta, data)  # sealed: the checksum is right, the content is not
        _refused(p, message)
    else:
        _write(p, header, meta, data, seal=False)
        _refused(p, message)


def test_wrong_metadata_containers_are_clear_errors(saved, tmp_path):
    header, meta, data = _parts(saved[1].read_bytes())
    p = tmp_path / "x.safetensors"
    _write(p, header, meta, data, seal=False, info=[])  # __metadata__ a list
    _refused(p, "not a Latent Explorer checkpoint (no metadata)")
    _write(p, header, meta, data, seal=False, info={"latent_explorer": "[1, 2]"})
    _refused(p, "not a Latent Explorer checkpoint")
    _write(p, header, meta, data, seal=False, info={"latent_explorer": "{"})
    _refused(p, "checkpoint metadata is corrupt")
    bad = dict(header, **{"model/decoder.out.bias": {"dtype": "F32", "shape": "x"}})
    _write(p, bad, meta, data)
    _refused(p, "tensor model/decoder.out.bias is described wrongly")


HEADER_TYPES = [["F32"], {"F32": 1}, 5, None, True, ["F32", [4]], {"a": []}]


@pytest.mark.parametrize("field", ["dtype", "shape", "data_offsets"])
def test_header_fields_of_any_type_are_one_clear_error(saved, tmp_path, field):
    """A dtype that is a list or an object once raised TypeError (unhashable)."""
    header, meta, data = _parts(saved[1].read_bytes())
    p = tmp_path / "x.safetensors"
    for value in HEADER_TYPES:
        for seal in (True, False):
            bad = copy.deepcopy(header)
            bad["model/decoder.out.bias"][field] = value
            _write(p, bad, meta, data, seal=seal)
            _refused(p, "tensor model/decoder.out.bias")
    info = {"latent_explorer": json.dumps(meta), "other": ["not", "a", "text"]}
    _write(p, header, meta, data, seal=False, info=info)
    _refused(p, "its metadata holds more than texts")


def test_deeply_nested_json_is_refused(saved, tmp_path):
    header, meta, data = _parts(saved[1].read_bytes())
    p = tmp_path / "deep.safetensors"
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps(meta)[:-1] + ', "extra": ' + deep + "}"
    _write(p, header, meta, data, seal=False, info={"latent_explorer": text})
    _refused(p, "nested too deeply")
    hb = ('{"x": ' + deep + "}").encode()
    p.write_bytes(struct.pack("<Q", len(hb)) + hb)
    _refused(p, "nested too deeply")


def test_a_huge_image_shape_is_refused_before_allocating(saved, tmp_path):
    header, meta, data = _parts(saved[1].read_bytes())
    p = tmp_path / "huge.safetensors"
    # inside the bounds, yet 3 x 1024 x 1024 x 8192 x 2 weights (200 GB) if it were built
    meta["model_config"].update(image_shape=[3, 1024, 1024], hidden=8192, model="vae")
    meta["class_names"] = []
    _write(p, header, meta, data)
    t = time.perf_counter()
    _refused(p, "model_config: a model of 51,542,843,398 parameters is too large")
    assert time.perf_counter() - t < 5


def test_saving_what_would_not_load_is_refused(saved, tmp_path):
    trainer, _ = saved
    model = build_model(trainer.model.config)
    model.load_state_dict(trainer.model.state_dict())
    with torch.no_grad():
        model.decoder.out.bias[0] = math.nan
    p = tmp_path / "nan.safetensors"
    with pytest.raises(CheckpointError, match="not saved.*decoder.out.bias holds NaN"):
        save_checkpoint(p, model, trainer.config)
    with pytest.raises(CheckpointError, match=r"not saved.*class_names\[0\] must be a text"):
        save_checkpoint(p, trainer.model, trainer.config, class_names=[3] * 5)
    assert not p.exists() and not list(tmp_path.iterdir())


def test_settings_of_the_wrong_type_are_config_errors():
    for kwargs in (
        dict(latent_dim="x"),
        dict(hidden=None),
        dict(image_shape=5),
        dict(latent_dim=True),
        dict(image_shape=(1, 28.5, 28)),
        dict(gaussian_std="x", likelihood="gaussian"),
        dict(num_classes="3"),
        dict(model=["vae"]),
        dict(image_shape=(1, 2048, 2048)),
    ):
        with pytest.raises(ConfigError):
            ModelConfig(**kwargs)
    for kwargs in (
        dict(seed="x"),
        dict(seed=None),
        dict(seed=2**70),
        dict(lr="fast"),
        dict(lr=math.nan),
        dict(beta=[1]),
        dict(epochs=2.0),
        dict(snapshot_hz=math.inf),
        dict(device=None),
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**kwargs)
    with pytest.raises(ConfigError, match="must be a JSON object"):
        ModelConfig.from_dict([1, 2])
    assert ModelConfig(image_shape=[1, 28, 28]).image_shape == (1, 28, 28)


# -- writing ----------------------------------------------------------------------------------
def test_stale_temporaries_of_dead_writers_are_removed(saved, tmp_path):
    import subprocess

    trainer, _ = saved
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    hour_ago = time.time() - 3600
    names = {
        f".m.safetensors.{gone.pid}.abcd1234.tmp": False,  # its writer is gone: removed
        f".other.json.{gone.pid}.abcd1234.tmp": False,  # any target in the folder
        f".m.safetensors.{os.getpid()}.abcd1234.tmp": True,  # a live writer (this one)
        ".m.safetensors.abcd1234.tmp": False,  # an older version's, an hour old
        ".other.json.abcd1234.tmp": True,  # an older version's, of another target
        "notes.tmp": True,  # not one of ours
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
        os.utime(tmp_path / name, (hour_ago, hour_ago))
    fresh = tmp_path / f".m.safetensors.{gone.pid}.fresh123.tmp"
    fresh.write_bytes(b"partial")  # touched just now: left for a later save
    names[fresh.name] = True
    save_checkpoint(tmp_path / "m.safetensors", trainer.model, trainer.config)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for n, kept in names.items() if kept} | {"m.safetensors"}


def test_atomic_write_names_the_target_and_syncs_the_folder(tmp_path, monkeypatch):
    import stat

    import trainer.files as files

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    target = tmp_path / "out" / "result.json"
    files.atomic_write(target, lambda f: f.write(b"{}"))
    assert target.read_bytes() == b"{}" and synced == [False, True]  # the file, then its folder

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as e:
        files.atomic_write(target, full)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert ".tmp" not in str(e.value) and str(target) in str(e.value)
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]
    assert target.read_bytes() == b"{}"


def test_a_noise_state_that_is_not_bytes_is_refused(saved, tmp_path):
    trainer, _ = saved
    p = tmp_path / "run.safetensors"
    noise = torch.Generator().manual_seed(5).get_state()
    position = {"epoch_images": 64, "epoch_sums": [1.0, 2.0, 3.0], "noise_state": noise}
    save_checkpoint(p, trainer.model, trainer.config, position=position)
    ck = load_checkpoint(p)
    assert torch.equal(ck.position["noise_state"], noise)
    assert ck.position["epoch_images"] == 64 and ck.position["epoch_sums"] == [1.0, 2.0, 3.0]
    raw = p.read_bytes()
    _, meta, _ = _parts(raw)
    tensors = st_load(raw)
    tensors["run/noise_state"] = tensors["run/noise_state"].view(torch.float32)
    _write_tensors(p, tensors, meta)
    _refused(p, "tensor run/noise_state must be a random generator's state (bytes), not F32")


def test_a_damaged_noise_state_is_refused_when_read_not_when_continued(saved, tmp_path):
    """A run stopped inside an epoch keeps its noise generator's state; one that no
    generator takes (sealed, so the checksum cannot tell) is refused on opening, where it
    once opened and raised "Invalid mt19937 state" at Continue."""
    trainer, _ = saved
    p = tmp_path / "run.safetensors"
    noise = torch.Generator().manual_seed(5).get_state()
    position = {"epoch_images": 64, "epoch_sums": [1.0, 2.0, 3.0], "noise_state": noise}
    save_checkpoint(p, trainer.model, trainer.config, position=position)
    raw = p.read_bytes()
    _, meta, _ = _parts(raw)
    tensors = st_load(raw)
    tensors["run/noise_state"][8:12] = 0  # the Mersenne Twister's "left" count: 0 is none
    _write_tensors(p, tensors, meta)
    _refused(p, "tensor run/noise_state is not a random generator's state", "mt19937")
    bad = dict(position, noise_state=tensors["run/noise_state"])
    with pytest.raises(CheckpointError, match="not saved.*mt19937"):  # nor is one written
        save_checkpoint(tmp_path / "new.safetensors", trainer.model, trainer.config, position=bad)
    tensors["run/noise_state"] = torch.tensor(
        [7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8
    )
    _write_tensors(p, tensors, meta)  # a CUDA generator's, its offset not a multiple of 4
    _refused(p, "tensor run/noise_state is not a random generator's state", "offset 3")


def test_a_conditional_model_without_class_names_gets_numbered_classes(saved, tmp_path):
    header, meta, data = _parts(saved[1].read_bytes())
    for missing in (None, []):
        meta["class_names"] = missing
        p = tmp_path / "x.safetensors"
        _write(p, header, meta, data)
        assert load_checkpoint(p).class_names == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_weights_saved_in_half_precision_load_as_float32(saved, shapes, tmp_path, dtype):
    """Half the space for bundled models; the test -ELBO barely moves."""
    from trainer.evaluate import elbo_stats

    trainer, full = saved
    half = save_checkpoint(
        tmp_path / "half.safetensors",
        trainer.model,
        trainer.config,
        class_names=trainer.data.class_names,
        weights_dtype=dtype,
    )
    ck = load_checkpoint(half)
    for k, v in ck.model.state_dict().items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, trainer.model.state_dict()[k].to(dtype).float())
    weights = sum(v.numel() for v in trainer.model.state_dict().values())
    plain = save_checkpoint(
        tmp_path / "plain.safetensors",
        trainer.model,
        trainer.config,
        class_names=trainer.data.class_names,
    )
    assert plain.stat().st_size - half.stat().st_size == pytest.approx(2 * weights, rel=0.01)
    x, y = shapes.test_x, shapes.test_y
    reference = load_checkpoint(plain).model

    def nelbo(model):  # the same noise for both models
        model.noise = torch.Generator().manual_seed(0)
        return elbo_stats(model, x, y).nelbo

    before, after = nelbo(reference), nelbo(ck.model)
    assert abs(after - before) < (0.1 if dtype == torch.float16 else 0.5), (before, after)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        save_checkpoint(
            tmp_path / "x.safetensors", trainer.model, trainer.config, weights_dtype=torch.int8
        )
