"""Decode once: image folders and IDX pairs are decoded into a cache and memory-mapped after."""

import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import trainer.data as data_mod
from trainer.data import DataSpec, cache, load_data


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(root))
    return root / "decoded"


def make_folder(root, per_class=6, size=12):
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            px = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(px).save(root / c / f"{i}.png")
    return root


def no_decoding(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(Image, "open", refuse)


def same(a, b):  # (a cache's training split is Rows of the memory-mapped file: .to copies it)
    def equal(u, v):
        return u is v is None or (
            u is not None and v is not None and torch.equal(u.to("cpu"), v.to("cpu"))
        )

    return all(
        equal(getattr(a, k), getattr(b, k)) for k in ("train_x", "test_x", "train_y", "test_y")
    )


def test_a_folder_is_decoded_once_then_read_from_the_cache(tmp_path, cache_root, monkeypatch):
    root = make_folder(tmp_path / "imgs")
    spec = DataSpec("folder", root=str(root), image_size=12, test_fraction=0.25)
    said = []
    first = load_data(spec, lambda f, t: said.append(t))
    assert any("decoding" in t and "once" in t for t in said)
    (folder,) = [d for d in cache_root.iterdir()]
    assert sorted(p.name for p in folder.iterdir()) == ["images.u8", "labels.i64", "meta.json"]
    assert (folder / "images.u8").stat().st_size == 12 * 1 * 12 * 12
    with monkeypatch.context() as m:
        no_decoding(m)
        said.clear()
        second = load_data(spec, lambda f, t: said.append(t))
    assert any("read from the cache" in t for t in said)
    assert same(first, second) and first.class_names == second.class_names == ["cat", "dog"]


def test_a_changed_folder_is_decoded_again_and_the_stale_cache_dropped(tmp_path, cache_root):
    root = make_folder(tmp_path / "imgs")
    spec = DataSpec("folder", root=str(root), image_size=12)
    load_data(spec)
    (old,) = list(cache_root.iterdir())
    # another image in place of one (same name): its size or mtime differs
    Image.fromarray(np.full((12, 12), 255, np.uint8)).save(root / "cat" / "0.png")
    st = (root / "cat" / "0.png").stat()
    os.utime(root / "cat" / "0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    d = load_data(spec)
    (new,) = list(cache_root.iterdir())
    assert new != old
    x = np.concatenate([d.train_x.to("cpu").numpy(), d.test_x.numpy()])
    assert (x.reshape(len(x), -1) == 255).all(1).sum() == 1  # the white one is there
    # a file added: decoded again too
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(root / "dog" / "new.png")
    d = load_data(spec)
    assert len(d.train_x) + len(d.test_x) == 13
    assert len(list(cache_root.iterdir())) == 1
    # another image size is another cache (both kept: the source differs)
    load_data(DataSpec("folder", root=str(root), image_size=8))
    assert len(list(cache_root.iterdir())) == 2


def test_a_broken_cache_is_rebuilt(tmp_path, cache_root, capsys):
    root = make_folder(tmp_path / "imgs")
    spec = DataSpec("folder", root=str(root), image_size=12)
    first = load_data(spec)
    first.train_x.to("cpu")  # a copy, kept: its rows are read from the file this damages
    (folder,) = list(cache_root.iterdir())
    with open(folder / "images.u8", "r+b") as f:
        f.truncate(100)
    second = load_data(spec)
    assert "unreadable" in capsys.readouterr().err
    assert same(first, second)
    (folder / "meta.json").write_text("{not json")
    assert same(first, load_data(spec))
    # contents damaged in place (same size): caught by their checksum
    (folder,) = list(cache_root.iterdir())
    size = (folder / "images.u8").stat().st_size
    (folder / "images.u8").write_bytes(bytes(size))
    capsys.readouterr()
    assert same(first, load_data(spec))
    assert "not what was written" in capsys.readouterr().err
    # a cache folder that lost its meta.json is rebuilt, not left in the way
    (folder,) = list(cache_root.iterdir())
    (folder / "meta.json").unlink()
    assert same(first, load_data(spec))
    assert "could not keep" not in capsys.readouterr().err
    assert (folder / "meta.json").is_file()


def test_an_unwritable_cache_costs_only_the_decode(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(blocker))
    root = make_folder(tmp_path / "imgs")
    d = load_data(DataSpec("folder", root=str(root), image_size=12))
    assert len(d.train_x) + len(d.test_x) == 12
    assert "could not keep the decoded images" in capsys.readouterr().err


def _idx(path, arr, code=0x08):
    head = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(">u1").tobytes())


def test_an_idx_pair_is_cached_too(tmp_path, cache_root, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 4
    _idx(tmp_path / "img.gz", x)
    _idx(tmp_path / "lab.gz", y.astype(np.uint8))
    spec = DataSpec("idx", images=str(tmp_path / "img.gz"), labels=str(tmp_path / "lab.gz"))
    first = load_data(spec)
    assert len(list(cache_root.iterdir())) == 1
    with monkeypatch.context() as m:
        m.setattr(data_mod, "read_idx", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
        second = load_data(spec)
    assert same(first, second) and second.class_names == ["0", "1", "2", "3"]
    # a cached pair whose labels file is then damaged is read again (and refused)
    (tmp_path / "lab.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(data_mod.DataError, match="lab.gz"):
        load_data(spec)


def test_cache_keys_follow_names_sizes_and_mtimes(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"12345")
    k1 = cache.fingerprint("folder", [f], tmp_path, {"image_size": 28})
    assert k1 == cache.fingerprint("folder", [f], tmp_path, {"image_size": 28})
    assert k1 != cache.fingerprint("folder", [f], tmp_path, {"image_size": 32})
    f.write_bytes(b"123456")
    assert k1 != cache.fingerprint("folder", [f], tmp_path, {"image_size": 28})


def test_files_are_listed_in_pathlibs_order(tmp_path):
    """The order fixes a folder's train/test split: it must stay what it always was."""
    for rel in (
        "a/b.png",
        "a-b/x.png",
        "a/c/d.PNG",
        "a.png",
        "z/.hidden.png",
        "a/notes.txt",
        "B/1.jpg",
        "a/b2.png",
    ):
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    old = [
        str(f)
        for f in sorted(tmp_path.rglob("*"))
        if f.is_file() and f.suffix.lower() in data_mod.IMAGE_SUFFIXES
    ]
    assert [p for p, _ in data_mod._image_files(tmp_path)] == old


# -- never stale, never damaged, never blocking -----------------------------------------------
def _bmp_folder(root, seed):
    """A folder of uncompressed BMPs: its files' sizes do not depend on their pixels."""
    rng = np.random.default_rng(seed)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            px = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(px).save(root / c / f"{i}.bmp")
    return root


def _times_of(a, b):
    """Give every file under ``b`` its namesake's modification time under ``a``."""
    for f in b.rglob("*.bmp"):
        st = (a / f.relative_to(b)).stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def fresh(spec, tmp_path, monkeypatch):
    """``spec`` decoded afresh (in a cache of its own)."""
    with monkeypatch.context() as m:
        m.setenv("LATENT_EXPLORER_DATA", str(tmp_path / f"fresh{len(list(tmp_path.iterdir()))}"))
        return load_data(spec)


def test_two_folders_alike_in_names_sizes_and_times_are_two_sources(
    tmp_path, cache_root, monkeypatch
):
    """Two extractions of archives with the same names, sizes and times: B's own pixels."""
    a, b = _bmp_folder(tmp_path / "a", 0), _bmp_folder(tmp_path / "b", 1)
    _times_of(a, b)
    load_data(DataSpec("folder", root=str(a), image_size=12))
    spec_b = DataSpec("folder", root=str(b), image_size=12)
    assert same(load_data(spec_b), fresh(spec_b, tmp_path, monkeypatch))
    # b's files copied over a's with their times (cp -p): a's cache is stale
    spec_a = DataSpec("folder", root=str(a), image_size=12)
    for f in b.rglob("*.bmp"):
        shutil.copy2(f, a / f.relative_to(b))
    assert same(load_data(spec_a), fresh(spec_a, tmp_path, monkeypatch))


def test_an_idx_file_replaced_keeping_its_size_and_time_is_decoded_again(
    tmp_path, cache_root, monkeypatch
):
    rng = np.random.default_rng(2)
    images, other = tmp_path / "img.idx", tmp_path / "other.idx"
    for p in (images, other):
        x = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8)
        p.write_bytes(struct.pack(">HBB3I", 0, 8, 3, *x.shape) + x.tobytes())
    st = images.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    spec = DataSpec("idx", images=str(images))
    load_data(spec)
    shutil.copy2(other, images)  # cp -p: the same size and modification time
    assert images.stat().st_mtime_ns == st.st_mtime_ns
    assert same(load_data(spec), fresh(spec, tmp_path, monkeypatch))


@pytest.mark.parametrize("change", ["labels", "shape", "class names"])
def test_a_changed_meta_json_is_caught_and_the_cache_rebuilt(
    tmp_path, cache_root, monkeypatch, capsys, change
):
    root = make_folder(tmp_path / "imgs")
    spec = DataSpec("folder", root=str(root), image_size=12)
    first = load_data(spec)
    first.train_x.to("cpu")  # (kept in memory: the cache's file is rebuilt)
    (folder,) = list(cache_root.iterdir())
    meta = json.loads((folder / "meta.json").read_text())
    if change == "labels":
        meta["labels"] = False
    elif change == "shape":
        n, c, h, w = meta["shape"]
        meta["shape"] = [n, c * h, w, 1]
    else:
        meta["class_names"] = meta["class_names"][::-1]
    (folder / "meta.json").write_text(json.dumps(meta))
    second = load_data(spec)
    assert same(first, second) and second.class_names == ["cat", "dog"]
    assert "meta.json is not what was written" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX things")
@pytest.mark.parametrize("name", ["images.u8", "labels.i64"])
def test_a_named_pipe_in_the_cache_is_never_opened(tmp_path, cache_root, capsys, name):
    root = make_folder(tmp_path / "imgs")
    spec = DataSpec("folder", root=str(root), image_size=12)
    first = load_data(spec)
    first.train_x.to("cpu")
    (folder,) = list(cache_root.iterdir())
    (folder / name).unlink()
    os.mkfifo(folder / name)

    def hang(*_):
        raise TimeoutError("the load waited on a named pipe")

    old = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        second = load_data(spec)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert same(first, second)
    assert f"{name} is not a regular file" in capsys.readouterr().err


def test_a_cache_cut_short_in_a_folder_that_cannot_be_changed_is_passed_by(
    tmp_path, cache_root, monkeypatch, capsys
):
    """The cache cannot be removed nor replaced: the images are decoded in memory."""
    root = make_folder(tmp_path / "imgs")
    spec = DataSpec("folder", root=str(root), image_size=12)
    first = load_data(spec)
    first.train_x.to("cpu")
    (folder,) = list(cache_root.iterdir())
    os.truncate(folder / "images.u8", 100)

    def refused(*a, ignore_errors=False, **k):  # as a folder that cannot be written answers
        if not ignore_errors:
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(shutil, "rmtree", refused)
    monkeypatch.setattr(os, "rename", refused)
    capsys.readouterr()
    for _ in range(2):
        assert same(first, load_data(spec))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decoded in memory" in err[0], err


def test_a_killed_builders_temporary_is_removed_by_the_next_build(tmp_path, cache_root):
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    cache_root.mkdir(parents=True)
    key = "0" * 40
    dead = [
        cache_root / f".{key}.{gone.pid}.abcdefgh.tmp",  # as this version names them
        cache_root / f".tmp-{key}-{gone.pid}",
    ]  # as older versions did
    live = cache_root / f".{key}.{os.getpid()}.abcdefgh.tmp"  # a build under way
    for d in [*dead, live]:
        d.mkdir()
        (d / "images.u8").write_bytes(bytes(1000))
        os.utime(d / "images.u8", (time.time() - 7200,) * 2)
        os.utime(d, (time.time() - 7200,) * 2)
    load_data(DataSpec("folder", root=str(make_folder(tmp_path / "imgs")), image_size=12))
    left = sorted(p.name for p in cache_root.iterdir() if p.name.startswith("."))
    assert left == [live.name]


@pytest.mark.parametrize("source", ["folder", "idx"])
def test_a_cache_folder_that_cannot_be_written_is_said_once(tmp_path, monkeypatch, capsys, source):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(blocker / "data"))
    if source == "folder":
        spec = DataSpec("folder", root=str(make_folder(tmp_path / "imgs")), image_size=12)
    else:
        x = np.random.default_rng(3).integers(0, 256, (12, 6, 6), dtype=np.uint8)
        _idx(tmp_path / "img.gz", x)
        spec = DataSpec("idx", images=str(tmp_path / "img.gz"))
    said = []
    for _ in range(3):
        d = load_data(spec, lambda f, t: said.append(t))
        assert len(d.train_x) + len(d.test_x) == 12
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decoded in memory" in err[0], err
    assert any("in memory" in t and "cannot be written" in t for t in said)
    assert not any("once" in t for t in said)
