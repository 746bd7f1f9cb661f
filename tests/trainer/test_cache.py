"""Decode once: image folders and IDX pairs are decoded into a cache and memory-mapped after."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import trainer.data as data_mod
from trainer import cache
from trainer.data import DataSpec, load_data


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
    return all(torch.equal(getattr(a, k).to("cpu"), getattr(b, k).to("cpu"))
               for k in ("train_x", "test_x", "train_y", "test_y"))  # fmt: skip


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
    for rel in ("a/b.png", "a-b/x.png", "a/c/d.PNG", "a.png", "z/.hidden.png", "a/notes.txt",
                "B/1.jpg", "a/b2.png"):  # fmt: skip
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    old = [str(f) for f in sorted(tmp_path.rglob("*"))
           if f.is_file() and f.suffix.lower() in data_mod.IMAGE_SUFFIXES]  # fmt: skip
    assert [p for p, _ in data_mod._image_files(tmp_path)] == old
