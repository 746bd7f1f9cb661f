import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.config import TrainConfig
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
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["latent_explorer"])
    meta["model_config"]["latent_dim"] = 5
    header["__metadata__"]["latent_explorer"] = json.dumps(meta)
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    mism = tmp_path / "mismatch.safetensors"
    mism.write_bytes(struct.pack("<Q", len(hb)) + hb + raw[8 + n :])
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
