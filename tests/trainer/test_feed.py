"""A training split held on the device, or streamed to it from a memory-mapped cache
(trainer.loop.feed): the same batches, the same numbers, and never a whole copy when streamed."""

import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from trainer.config import ConfigError, TrainConfig
from trainer.data import DataSpec, ImageData, Rows, load_data, make_shapes, nbytes
from trainer.loop import TrainControl, Trainer, feed, model_config_for
from trainer.loop.feed import MB, OnDevice, Streamed, budget_bytes, place
from trainer.models import build_model


def _idx(path, arr):
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """600 labelled 28 px shapes as an IDX pair, loaded once (decoded into the cache) and
    again (memory-mapped from it); returns the spec and the second load."""
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "datasets"))
    x, y = make_shapes(600, 28, seed=3)
    _idx(tmp_path / "img.gz", x[:, 0])
    _idx(tmp_path / "lab.gz", y)
    spec = DataSpec("idx", images=str(tmp_path / "img.gz"), labels=str(tmp_path / "lab.gz"))
    load_data(spec)
    return spec, load_data(spec)


def _numbers(t):  # a run's epochs, less their times
    return [{k: v for k, v in e.items() if k != "elapsed"} for e in t.history.epochs]


def _train(data, data_memory, control=None, **model):
    torch.manual_seed(0)
    mc = model_config_for(data, latent_dim=2, hidden=64, **model)
    cfg = TrainConfig(epochs=2, batch_size=50, lr=2e-3, device="cpu", data_memory=data_memory)
    t = Trainer(build_model(mc), data, cfg)
    t.fit(control=control)
    return t


def test_a_caches_training_split_is_its_rows_not_a_copy(cached):
    spec, d = cached
    assert isinstance(d.train_x, Rows) and isinstance(d.test_x, torch.Tensor)
    assert d.train_x.shape == (480, 1, 28, 28) and len(d.train_x) == 480
    assert nbytes(d.train_x) == 480 * 784 and d.image_shape == (1, 28, 28)
    whole = torch.cat([d.train_x.to("cpu"), d.test_x])
    x, _ = make_shapes(600, 28, seed=3)
    # every image once, in the split's order; indexing and slicing read the same rows
    assert sorted(map(bytes, whole.numpy())) == sorted(map(bytes, x))
    dense = d.train_x.to("cpu")
    assert torch.equal(d.train_x[7], dense[7]) and torch.equal(d.train_x[5:9], dense[5:9])
    assert torch.equal(d.train_x[torch.tensor([3, 1])], dense[[3, 1]])
    assert d.train_x.to("cpu") is dense  # made once
    assert sum(1 for _ in d.train_x) == 480


@pytest.mark.parametrize(
    "model",
    [{"model": "vae"}, {"model": "cvae"}, {"model": "vae", "arch": "conv"}],
    ids=["vae-fused", "cvae", "conv"],
)
def test_streamed_batches_train_exactly_as_batches_on_the_device(cached, monkeypatch, model):
    _spec, d = cached
    held = _train(d, None, **model)
    assert isinstance(held.feed, OnDevice)

    def whole_copy(*a, **k):
        raise AssertionError("a streamed split was copied whole")

    monkeypatch.setattr(Rows, "to", whole_copy)
    streamed = _train(d, 0, **model)
    assert isinstance(streamed.feed, Streamed) and streamed.data.train_x is d.train_x
    assert streamed.step == held.step == 2 * 10
    assert _numbers(streamed) == _numbers(held)  # the same numbers, to the bit
    for k, v in held.model.state_dict().items():
        assert torch.equal(v, streamed.model.state_dict()[k]), k


def test_a_streamed_run_stopped_inside_an_epoch_goes_on_where_it_stopped(cached):
    _spec, d = cached
    straight = _train(d, 0)
    cfg = straight.config

    class StopAt(TrainControl):
        @property
        def stop_requested(self):
            return half.step >= 13

    torch.manual_seed(0)
    half = Trainer(build_model(straight.model.config), d, cfg)
    assert half.fit(control=StopAt()).stopped and half.step == 13
    on = Trainer(
        half.model,
        d,
        cfg,
        history=half.history,
        epochs_done=half.epochs_done,
        step=half.step,
        position=half.position(),
        optimizer_state=half.optimizer.state_dict(),
    )
    on.fit(epochs=1)
    assert on.step == straight.step
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(v, on.model.state_dict()[k], rtol=1e-6, atol=1e-7, msg=k)


def test_the_budget_decides_and_the_default_is_half_of_what_is_free(cached):
    _spec, d = cached
    cpu = torch.device("cpu")
    both = nbytes(d.train_x) + nbytes(d.test_x)
    data, feed = place(d, cpu, both, labels=True)
    assert isinstance(feed, OnDevice) and isinstance(data.train_x, torch.Tensor)
    data, feed = place(d, cpu, both - 1, labels=True)
    assert isinstance(feed, Streamed) and data.train_x is d.train_x
    assert torch.equal(data.test_x, d.test_x) and torch.equal(data.test_y, d.test_y)
    x, y = feed.take(torch.tensor([4, 0, 4]))
    dense = d.train_x.to("cpu")
    assert torch.equal(x, dense[[4, 0, 4]].float() * (1.0 / 255.0))
    assert torch.equal(y, d.train_y[[4, 0, 4]])
    assert place(d, cpu, 0, labels=False)[1].take(torch.tensor([1]))[1] is None
    assert 0 < budget_bytes(cpu, None) and budget_bytes(cpu, 3) == 3 * MB
    assert budget_bytes(cpu, 3, share=4) == 3 * MB  # a given budget is each process's
    assert budget_bytes(cpu, None, share=4) <= budget_bytes(cpu, None) // 3


@pytest.mark.parametrize("version", [1, 2])
def test_the_default_budget_keeps_within_a_containers_memory_limit(tmp_path, version):
    """In a container (or a SLURM job) the memory cgroup's limit, not the machine's free
    memory, bounds what the data may take: the tightest limit up the hierarchy, less use."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    if version == 2:
        proc.write_text("0::/job/step\n")
        files, top = ("memory.max", "memory.current"), root
        unlimited = "max"
    else:
        proc.write_text("4:memory:/job/step\n3:cpuset:/\n")
        files, top = ("memory.limit_in_bytes", "memory.usage_in_bytes"), root / "memory"
        unlimited = str(2**63 - 4096)
    step, job = top / "job" / "step", top / "job"
    step.mkdir(parents=True)
    (step / files[0]).write_text(unlimited + "\n")
    (step / files[1]).write_text("100\n")
    (job / files[0]).write_text(f"{1000 * MB}\n")  # the job's limit binds its step
    (job / files[1]).write_text(f"{300 * MB}\n")
    assert feed.cgroup_room(proc, root) == 700 * MB
    (job / files[0]).write_text(unlimited)
    assert feed.cgroup_room(proc, root) is None  # no limit anywhere
    assert feed.cgroup_room(tmp_path / "absent", root) is None


def test_a_split_in_memory_streams_too(shapes):
    """Data that never came through the cache (downloaded MNIST, the shapes) streams from
    host memory the same way."""
    small = ImageData(
        "shapes",
        shapes.train_x[:300],
        shapes.test_x[:100],
        shapes.train_y[:300],
        shapes.test_y[:100],
        shapes.class_names,
    )
    a, b = _train(small, None), _train(small, 0)
    assert isinstance(b.feed, Streamed) and _numbers(b) == _numbers(a)


def test_the_budget_option_is_checked():
    with pytest.raises(ConfigError, match="data memory must be 0 to"):
        TrainConfig(data_memory=-1)
    with pytest.raises(ConfigError, match="data memory"):
        TrainConfig(data_memory="lots")
    assert TrainConfig(data_memory=0).data_memory == 0


def test_the_cli_says_when_it_streams_and_records_it(cached, tmp_path):
    spec, _d = cached
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--dataset",
        "idx",
        "--images",
        spec.images,
        "--labels",
        spec.labels,
        "--epochs",
        "1",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
        "--data-memory",
        "0.3",
        "--out",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (
        "the images, 459 KB, are more than the data memory on cpu (307 KB, given with "
        "--data-memory): the training batches are streamed to it" in r.stderr
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["streamed"] is True and metrics["train"]["data_memory"] == 0.3
    from trainer.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint.safetensors").train_config.data_memory == 0.3
    r = subprocess.run(
        cmd[:-4] + ["--data-memory", "-3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "--data-memory: must be in [0," in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streamed_to_cuda_through_pinned_buffers_trains_as_held_there(cached):
    _spec, d = cached
    runs = []
    for dm in (None, 0):
        torch.manual_seed(0)
        mc = model_config_for(d, model="cvae", latent_dim=2, hidden=64)
        cfg = TrainConfig(epochs=2, batch_size=50, device="cuda", data_memory=dm)
        t = Trainer(build_model(mc), d, cfg)
        t.fit()
        runs.append(t)
    held, streamed = runs
    assert isinstance(held.feed, OnDevice) and isinstance(streamed.feed, Streamed)
    assert streamed.feed.slots[50][0].host.is_pinned()
    assert streamed.data.test_x.device.type == "cpu"  # a budget of 0 holds nothing there
    for a, b in zip(held.history.epochs, streamed.history.epochs):
        assert a["test_nelbo"] == pytest.approx(b["test_nelbo"], rel=1e-5)
