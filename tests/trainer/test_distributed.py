"""Training on several processes with torchrun (gloo on this CPU): the same steps and loss
as one process, one checkpoint from process 0, and a clean end when a process dies or the
user presses Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import load_checkpoint
from trainer.loop import distributed

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="torchrun's processes are watched through /proc"
)

SHAPES = [
    "--dataset",
    "shapes",
    "--shapes-count",
    "2400",
    "--latent-dim",
    "2",
    "--hidden",
    "64",
    "--device",
    "cpu",
]


def torchrun(n: int, args: list[str], **kw) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        "-m",
        "trainer",
        *args,
    ]
    # the loopback device: a container whose host name does not resolve still connects
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", GLOO_SOCKET_IFNAME="lo")
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def workers(launcher: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of the processes torchrun started."""
    found = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().split()
        except OSError:
            continue
        ppid = int(stat[3])
        if b"TORCHELASTIC_RUN_ID" in b"\0".join(env) and _descends(ppid, launcher.pid):
            for kv in env:
                if kv.startswith(b"RANK="):
                    found[int(kv[5:])] = pid
    return found


def _descends(pid: int, ancestor: int) -> bool:
    for _ in range(5):
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().split()[3])
        except OSError:
            return False
    return False


def test_two_processes_train_as_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["train", *SHAPES, "--epochs", "2", "--batch-size", "64"]
    single = subprocess.run(
        [sys.executable, "-m", "trainer", *args, "--out", str(one)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    # each process streams its share of the batches (held on the device or streamed, the
    # batches are the same: tests/trainer/test_feed.py)
    p = torchrun(2, [*args, "--data-memory", "0", "--out", str(two)])
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    assert m2["streamed"] and not m1["streamed"]
    assert m2["world_size"] == 2 and m2["backend"] == "gloo"
    assert m1["world_size"] == 1 and m1["backend"] is None
    assert m2["steps"] == m1["steps"] == 2 * 30  # 1,920 images, global batches of 64
    # the same images, noise and gradients as one process: equal up to the order of sums
    # (3e-5 nats here; the bar is 1 nat)
    assert abs(m2["test_nelbo"] - m1["test_nelbo"]) < 0.05
    assert "2 processes (gloo)" in out and "autograd with DistributedDataParallel" in out
    assert out.count("epoch 2: test -ELBO") == 1  # process 0 alone speaks
    ck = load_checkpoint(two / "checkpoint.safetensors")  # opens like any other
    assert ck.epochs_done == 2 and ck.step == 60
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def _start_long_run(tmp_path, **kw):
    out = tmp_path / "run"
    p = torchrun(
        2, ["train", *SHAPES, "--shapes-count", "6000", "--epochs", "500", "--out", str(out)], **kw
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.safetensors").is_file():  # the first epoch's end saves
        assert p.poll() is None, p.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint after 2 minutes"
        time.sleep(0.2)
    time.sleep(1.0)
    return p, out


def test_a_killed_process_ends_the_run_and_leaves_the_last_good_checkpoint(tmp_path):
    p, out = _start_long_run(tmp_path)
    ranks = workers(p)
    assert sorted(ranks) == [0, 1]
    t0 = time.monotonic()
    os.kill(ranks[1], signal.SIGKILL)
    text, _ = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 30
    assert p.returncode != 0
    assert "another process of the run failed or stopped answering" in text
    assert "the last good model, after epoch" in text
    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck.epochs_done >= 1 and all(
        torch.isfinite(v).all() for v in ck.model.state_dict().values()
    )
    assert not (out / "metrics.json").exists()  # the run did not end: no manifest says so


def test_ctrl_c_stops_every_process_and_saves_the_run(tmp_path):
    p, out = _start_long_run(tmp_path, start_new_session=True)
    t0 = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
    text, _ = p.communicate(timeout=60)
    assert time.monotonic() - t0 < 30
    assert "SIGINT: stopping; saving the model" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by"] == "SIGINT" and m["world_size"] == 2
    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck.step == m["steps"] and ck.step % distributed.SYNC_EVERY == 0


def test_shares_of_a_batch():
    procs = [distributed.Processes(r, 3, r, "gloo", torch.device("cpu")) for r in range(3)]
    idx = torch.arange(10)
    shares = [pr.shard(idx) for pr in procs]
    assert torch.equal(torch.cat(shares), idx) and [len(s) for s in shares] == [4, 3, 3]
    assert [len(pr.shard(torch.arange(2))) for pr in procs] == [1, 1, 0]


def test_launch_environment_is_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched()
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(distributed.DistributedError, match="start the run with torchrun"):
        distributed.start("cpu")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(distributed.DistributedError, match="CPU or CUDA, not MPS"):
        distributed.start("mps")
    monkeypatch.setenv("WORLD_SIZE", "x")
    assert not distributed.launched()


def test_a_signal_to_another_process_stops_the_run_in_its_name(tmp_path):
    p, out = _start_long_run(tmp_path)
    os.kill(workers(p)[1], signal.SIGTERM)  # process 1 alone
    text, _ = p.communicate(timeout=60)
    assert "SIGTERM (to another process): stopping; saving the model" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by"] == "SIGTERM" and m["steps"] % distributed.SYNC_EVERY == 0
    assert p.returncode != 0  # the run did not finish
    assert text.count("latent-train: error") == 0


def test_a_mistake_is_said_once(tmp_path):
    p = torchrun(2, ["train", *SHAPES, "--device", "mps", "--out", str(tmp_path / "r")])
    text, _ = p.communicate(timeout=120)
    assert text.count("training on several processes runs on CPU or CUDA, not MPS") == 1
