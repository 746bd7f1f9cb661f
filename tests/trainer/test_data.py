import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import trainer.data as data_mod
from trainer.data import DataError, DataSpec, load_data, make_shapes, read_idx


def write_idx(path, arr: np.ndarray, gz: bool = False):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def test_shapes_are_seeded_labelled_and_in_memory():
    x1, y1 = make_shapes(300, seed=3)
    x2, y2 = make_shapes(300, seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (300, 1, 28, 28) and x1.dtype == np.uint8
    assert set(np.unique(y1)) == set(range(5))
    assert x1.max() == 255 and x1.min() == 0
    d = load_data(DataSpec("shapes", shapes_count=500, image_size=32))
    assert d.image_shape == (1, 32, 32) and d.class_names[0] == "circle"
    assert d.train_x.dtype == torch.uint8 and len(d.train_x) + len(d.test_x) == 500
    assert len(d.test_x) == 100


def test_shape_classes_look_different():
    x, y = make_shapes(2000, seed=0)
    means = np.stack([x[y == k].mean(0) for k in range(5)])
    # the class-mean images differ between classes: the labels carry information
    d = np.abs(means[:, None] - means[None]).mean(axis=(2, 3, 4))
    assert (d[~np.eye(5, dtype=bool)] > 2).all()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pair_with_seeded_split(tmp_path, gz):
    imgs = np.random.default_rng(0).integers(0, 256, (50, 28, 28)).astype(np.uint8)
    labels = np.arange(50) % 10
    ip = write_idx(tmp_path / "img.idx", imgs, gz)
    lp = write_idx(tmp_path / "lab.idx", labels, gz)
    d = load_data(DataSpec("idx", images=str(ip), labels=str(lp), test_fraction=0.2, seed=1))
    assert len(d.train_x) == 40 and len(d.test_x) == 10
    assert d.class_names == [str(i) for i in range(10)]
    again = load_data(DataSpec("idx", images=str(ip), labels=str(lp), test_fraction=0.2, seed=1))
    assert torch.equal(d.test_x, again.test_x)
    other = load_data(DataSpec("idx", images=str(ip), labels=str(lp), test_fraction=0.2, seed=2))
    assert not torch.equal(d.test_x, other.test_x)
    # each image still carries its own label after the split
    idx = {imgs[i].tobytes(): labels[i] for i in range(50)}
    for x, y in zip(d.train_x, d.train_y):
        assert idx[x.numpy()[0].tobytes()] == int(y)


def test_idx_without_labels(tmp_path):
    ip = write_idx(tmp_path / "img.idx", np.zeros((10, 8, 8)))
    d = load_data(DataSpec("idx", images=str(ip)))
    assert d.train_y is None and d.num_classes == 0


def test_bad_idx_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.idx: no such file"):
        read_idx(tmp_path / "nope.idx")
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"hello world, not idx")
    with pytest.raises(DataError, match="junk.idx: not an IDX file"):
        read_idx(junk)
    good = write_idx(tmp_path / "cut.idx", np.zeros((10, 28, 28)))
    good.write_bytes(good.read_bytes()[:500])
    with pytest.raises(DataError, match="cut.idx: truncated"):
        read_idx(good)
    ip = write_idx(tmp_path / "i.idx", np.zeros((10, 8, 8)))
    lp = write_idx(tmp_path / "l.idx", np.zeros(7))
    with pytest.raises(DataError, match="7 labels for 10 images"):
        load_data(DataSpec("idx", images=str(ip), labels=str(lp)))


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            arr = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    d = load_data(DataSpec("folder", root=str(tmp_path), image_size=32, test_fraction=0.25))
    assert d.class_names == ["cats", "dogs"]
    assert d.image_shape == (3, 32, 32)
    assert len(d.train_x) == 9 and len(d.test_x) == 3


def test_greyscale_folder_gives_one_channel(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for c in "ab":
        for i in range(2):
            Image.fromarray(np.full((10, 10), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    assert load_data(DataSpec("folder", root=str(tmp_path))).image_shape == (1, 28, 28)


def test_bad_folders_are_explained(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_data(DataSpec("folder", root=str(tmp_path / "missing")))
    with pytest.raises(DataError, match="no class sub-folders"):
        load_data(DataSpec("folder", root=str(tmp_path)))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "a" / "ok.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a readable image"):
        load_data(DataSpec("folder", root=str(tmp_path)))


def test_spec_validation():
    with pytest.raises(DataError, match="needs --images"):
        DataSpec("idx")
    with pytest.raises(DataError, match="needs --root"):
        DataSpec("folder")
    with pytest.raises(DataError, match="unknown dataset"):
        DataSpec("cifar")
    with pytest.raises(DataError, match="test fraction"):
        DataSpec("shapes", test_fraction=1.5)


def test_offline_download_names_the_alternatives(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://example/, got:\n"
            "<urlopen error [Errno -3] Temporary failure in name resolution>\n"
        )

    monkeypatch.setattr(tvd, "MNIST", offline)
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION", tmp_path / "none")
    with pytest.raises(DataError) as e:
        load_data(DataSpec("mnist"))
    msg = str(e.value)
    assert "could not download mnist" in msg and "offline alternatives" in msg
    assert "--dataset shapes" in msg and "--dataset idx" in msg
    assert "\n" not in msg and "Error downloading train-images" in msg  # one line
    assert not data_mod.is_cached("mnist")


def test_fashion_mnist_comes_from_debian_files_when_present(tmp_path, monkeypatch):
    for split, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)), gz=True)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10, gz=True)
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION", tmp_path)
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd, "FashionMNIST", lambda *a, **k: pytest.fail("used the network"))
    d = load_data(DataSpec("fashion-mnist"))
    assert len(d.train_x) == 30 and len(d.test_x) == 10
    assert d.class_names[0] == "T-shirt/top"
    assert data_mod.is_cached("fashion-mnist")


def test_fashion_mnist_without_debian_files_goes_to_torchvision(tmp_path, monkeypatch):
    """On a machine without Debian's package the loader downloads (here: a fake torchvision
    dataset), whatever this machine has installed."""
    import torchvision.datasets as tvd

    class FakeFashion:
        def __init__(self, root, train, download):
            n = 20 if train else 5
            self.data = torch.zeros(n, 28, 28, dtype=torch.uint8)
            self.targets = torch.arange(n) % 10

    monkeypatch.setattr(tvd, "FashionMNIST", FakeFashion)
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    assert not data_mod.debian_fashion_available()
    d = load_data(DataSpec("fashion-mnist"))
    assert len(d.train_x) == 20 and len(d.test_x) == 5
