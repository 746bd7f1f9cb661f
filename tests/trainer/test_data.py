import errno
import gzip
import math
import os
import struct
import threading
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import trainer.data as data_mod
from trainer.config import MAX_CLASSES, MAX_SEED, ConfigError, TrainConfig
from trainer.data import DataError, DataSpec, downloads, load_data, make_shapes, read_idx, shapes

IDX_CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_header(code: int, shape) -> bytes:
    return struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def write_idx(path, arr: np.ndarray, gz: bool = False, dtype: str = "u1"):
    arr = np.asarray(arr).astype(dtype)
    blob = idx_header(IDX_CODES[dtype], arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def peak_bytes(fn) -> int:
    """The most memory Python and numpy held at once while ``fn`` ran."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


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
            px = np.full((10, 10), 40 * i, np.uint8)
            px[2:8, 4:6] = 200  # a drawing: a folder of blank images is refused
            Image.fromarray(px).save(tmp_path / c / f"{i}.png")
    assert load_data(DataSpec("folder", root=str(tmp_path))).image_shape == (1, 28, 28)


@pytest.mark.parametrize("last_in_colour", [False, True])
def test_a_folders_pixels_are_kept_exactly(tmp_path, last_in_colour):
    """Each image's pixels, in order, whether the folder turns out grey (its images' first
    channel kept) or colour (one coloured image, the last, makes it all colour)."""
    rng = np.random.default_rng(2)
    want = []
    for c in "ab":
        (tmp_path / c).mkdir()
        for i in range(5):
            px = np.repeat(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), 3, axis=2)
            if last_in_colour and c == "b" and i == 4:
                px[..., 2] = 255 - px[..., 2]
            Image.fromarray(px).save(tmp_path / c / f"{i}.png")
            want.append(px.transpose(2, 0, 1))
    d = load_data(DataSpec("folder", root=str(tmp_path), image_size=8, test_fraction=0.3))
    got = torch.cat([d.train_x.to("cpu"), d.test_x]).numpy()
    want = np.stack(want) if last_in_colour else np.stack(want)[:, :1]
    assert got.shape == (10, *want.shape[1:])
    assert sorted(map(bytes, got)) == sorted(map(bytes, want))


def test_bad_folders_are_explained(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_data(DataSpec("folder", root=str(tmp_path / "missing")))
    with pytest.raises(DataError, match="no class sub-folders"):
        load_data(DataSpec("folder", root=str(tmp_path)))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "a" / "ok.png").write_bytes(b"")
    with pytest.raises(DataError, match="broken.png: not a picture Latent Explorer can read"):
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
    monkeypatch.setattr(downloads, "DEBIAN_FASHION", tmp_path / "none")
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
    monkeypatch.setattr(downloads, "DEBIAN_FASHION", tmp_path)
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


# -- files that are not what they seem ----------------------------------------------------------
def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.idx"
    os.mkfifo(fifo)
    got = {}

    def read():
        try:
            load_data(DataSpec("idx", images=str(fifo)))
        except BaseException as e:  # noqa: BLE001 - any outcome is reported below
            got["error"] = e

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # a writer lets the blocked open return, so the thread can end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("reading a FIFO blocked")
    assert isinstance(got.get("error"), DataError), got
    assert "pipe.idx: is a named pipe (FIFO)" in str(got["error"])


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_is_refused():
    with pytest.raises(DataError, match="/dev/zero: is a device"):
        read_idx("/dev/zero")


def test_symlink_loops_and_unreadable_files_are_explained(tmp_path, monkeypatch):
    (tmp_path / "a.idx").symlink_to(tmp_path / "b.idx")
    (tmp_path / "b.idx").symlink_to(tmp_path / "a.idx")
    with pytest.raises(DataError, match=r"a.idx: cannot be read \(a loop of symbolic links"):
        read_idx(tmp_path / "a.idx")
    with pytest.raises(DataError, match="is a folder"):
        read_idx(tmp_path)
    locked = write_idx(tmp_path / "locked.idx", np.zeros((4, 8, 8)))
    if os.geteuid() != 0:  # root reads it anyway: then the refusal is simulated below
        locked.chmod(0)
        with pytest.raises(DataError, match=r"locked.idx: cannot be read \(permission denied\)"):
            read_idx(locked)
        locked.chmod(0o600)

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(DataError, match=r"locked.idx: cannot be read \(permission denied\)"):
        read_idx(locked)


def test_a_gzip_bomb_is_read_no_further_than_its_header_promises(tmp_path):
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    blob = z.compress(idx_header(0x08, (10, 8, 8)))
    zeros = bytes(1 << 20)
    for _ in range(64):  # 64 MB of zeros after the 640 bytes the header promises
        blob += z.compress(zeros)
    bomb = tmp_path / "bomb.idx.gz"
    bomb.write_bytes(blob + z.flush())
    assert bomb.stat().st_size < 200_000

    def read():
        with pytest.raises(DataError, match="more data than its header describes"):
            read_idx(bomb)

    assert peak_bytes(read) < 4 << 20


@pytest.mark.parametrize("gz", [False, True])
def test_a_header_promising_too_much_is_refused_before_reading(tmp_path, gz):
    big = tmp_path / "big.idx"
    blob = idx_header(0x08, (100_000, 1024, 1024)) + bytes(1000)  # 100 GB promised
    big.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DataError, match="promises 104857600000 bytes"):
        read_idx(big)
    labels = tmp_path / "labels.idx"
    blob = idx_header(0x0E, (2**31,)) + bytes(8)  # 16 GiB of float64 labels
    labels.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DataError, match="at most 2147483648 are read"):
        read_idx(labels)


def test_a_huge_sparse_file_is_refused_without_reading_it(tmp_path):
    sparse = write_idx(tmp_path / "sparse.idx", np.zeros((10, 8, 8)))
    os.truncate(sparse, 6 << 30)  # 6 GiB, almost all of it a hole
    zeros = tmp_path / "zeros.idx"
    zeros.touch()
    os.truncate(zeros, 6 << 30)

    def read():
        with pytest.raises(DataError, match="sparse.idx: holds more data than its header"):
            read_idx(sparse)
        with pytest.raises(DataError, match="zeros.idx: not an IDX file"):
            read_idx(zeros)

    assert peak_bytes(read) < 4 << 20


@pytest.mark.parametrize("gz", [False, True])
def test_data_past_what_the_header_describes_is_refused(tmp_path, gz):
    blob = idx_header(0x08, (10, 8, 8)) + bytes(640 + 1)
    p = tmp_path / "long.idx"
    p.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(DataError, match="long.idx: holds more data than its header describes"):
        read_idx(p)
    p.write_bytes(gzip.compress(blob[:-2]) if gz else blob[:-2])
    with pytest.raises(DataError, match="long.idx: truncated"):
        read_idx(p)
    if gz:
        p.write_bytes(gzip.compress(blob)[:-20])  # the gzip stream itself cut short
        with pytest.raises(DataError, match="long.idx: truncated"):
            read_idx(p)


def test_idx_shapes_are_checked_from_the_header(tmp_path):
    ip = write_idx(tmp_path / "i.idx", np.zeros((10, 8, 8)))
    lp = write_idx(tmp_path / "l.idx", np.arange(10) % 2)

    def refused(shape, match, kind="images"):
        p = tmp_path / "x.idx"
        p.write_bytes(idx_header(0x08, shape))  # no data: only the header is looked at
        files = {"images": str(ip), "labels": str(lp), kind: str(p)}
        with pytest.raises(DataError, match=match):
            load_data(DataSpec("idx", **files))

    refused((10, 8, 2000), "images must be 1 to 1024 pixels high and wide, not 8x2000")
    refused((10, 0, 8), "not 0x8")
    refused((10, 3, 2048, 8), "not 2048x8")
    refused((10, 8, 8, 3000), r"expected images \(N, H, W\)")
    refused((10, 784), r"expected images \(N, H, W\)")
    refused((1, 1, 1, 1, 1), "5 dimensions")
    refused((10, 2), "labels must be one number per image", kind="labels")
    # (N, H, W, C) files are fine and come out as (N, C, H, W)
    ip = write_idx(tmp_path / "hwc.idx", np.arange(10 * 8 * 6 * 3).reshape(10, 8, 6, 3) % 256)
    d = load_data(DataSpec("idx", images=str(ip), labels=str(lp)))
    assert d.image_shape == (3, 8, 6) and d.num_classes == 2


def test_float_idx_images_are_scaled_and_non_numbers_refused(tmp_path):
    x = np.linspace(0, 1, 10 * 4 * 4).reshape(10, 4, 4)
    d = load_data(DataSpec("idx", images=str(write_idx(tmp_path / "f.idx", x, dtype=">f4"))))
    got = torch.cat([d.train_x.to("cpu"), d.test_x]).flatten().sort().values.numpy()
    assert np.array_equal(got, np.rint(x.astype(np.float32) * 255.0).astype(np.uint8).ravel())
    x255 = np.linspace(0, 255, 10 * 4 * 4).reshape(10, 4, 4)
    d = load_data(DataSpec("idx", images=str(write_idx(tmp_path / "g.idx", x255, dtype=">f4"))))
    got = torch.cat([d.train_x.to("cpu"), d.test_x]).flatten().sort().values.numpy()
    assert np.array_equal(got, np.rint(x255.astype(np.float32)).astype(np.uint8).ravel())
    # out of range: clipped, they would turn black or white without a word
    for lo, hi, words in [(-1.0, 1.0, "from -1 to 1"), (0, 1e30, r"from 0 to 1e\+30")]:
        wild = np.zeros((10, 4, 4))
        wild[0, 0, 0], wild[1, 0, 0] = lo, hi
        with pytest.raises(DataError, match=f"pixels run {words}; images must hold 0 to 255"):
            load_data(DataSpec("idx", images=str(write_idx(tmp_path / "w.idx", wild, dtype=">f8"))))
    wide = np.zeros((10, 4, 4), dtype=np.int32)
    wide[2, 0, 0] = 255_000_000
    with pytest.raises(DataError, match=r"pixels run from 0 to 2.55e\+08"):
        load_data(DataSpec("idx", images=str(write_idx(tmp_path / "i.idx", wide, dtype=">i4"))))
    wild = np.zeros((10, 4, 4))
    wild[3, 1, 2] = np.nan
    with pytest.raises(DataError, match="image 3 has pixels that are not numbers"):
        load_data(DataSpec("idx", images=str(write_idx(tmp_path / "n.idx", wild, dtype=">f8"))))


# -- labels ---------------------------------------------------------------------------------------
BAD_LABELS = [
    ([*range(10)] * 3 + [255], "i1", "image 30 has label -1; labels must be 0 to 999"),
    ([*range(10)] * 3 + [255], "u1", "image 30 has label 255 but labels 10..254 are unused"),
    ([1, 2, 3] * 10 + [4], "u1", "image 0 has label 1 but label 0 is unused"),
    ([0, 1] * 15 + [5_000_000], ">i4", "image 30 has label 5000000; labels must be 0 to 999"),
    ([0, 1] * 15 + [2e9], ">f8", "image 30 has label 2000000000; labels must be 0 to 999"),
    ([0, 1] * 15 + [2.5], ">f4", "image 30 has label 2.5; labels must be whole numbers"),
    ([0, 1] * 15 + [np.nan], ">f4", "image 30 has label nan; labels must be whole numbers"),
    ([0, 1] * 15 + [-np.inf], ">f8", "image 30 has label -inf; labels must be whole numbers"),
    ([*range(MAX_CLASSES + 1)], ">i2", f"has label {MAX_CLASSES}; .*at most {MAX_CLASSES} classes"),
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(("labels", "dtype", "match"), BAD_LABELS)
def test_bad_labels_are_one_clean_error(tmp_path, capfd, labels, dtype, match, gz):
    n = len(labels)
    ip = write_idx(tmp_path / "i.idx", np.zeros((n, 2, 2)), gz)
    lp = write_idx(tmp_path / "l.idx", np.array(labels), gz, dtype=dtype)
    with pytest.raises(DataError, match=match) as e:
        load_data(DataSpec("idx", images=str(ip), labels=str(lp)))
    assert str(e.value).startswith(str(lp)) and "\n" not in str(e.value)
    assert capfd.readouterr() == ("", "")  # nothing printed beside the error


@pytest.mark.filterwarnings("error")
def test_whole_float_labels_and_many_classes_are_accepted(tmp_path):
    ip = write_idx(tmp_path / "i.idx", np.zeros((MAX_CLASSES, 1, 1)))
    lp = write_idx(tmp_path / "l.idx", np.arange(MAX_CLASSES)[::-1], dtype=">f8")
    d = load_data(DataSpec("idx", images=str(ip), labels=str(lp)))
    assert d.num_classes == MAX_CLASSES and d.class_names[-1] == str(MAX_CLASSES - 1)
    assert d.train_y.dtype == torch.int64
    assert sorted(torch.cat([d.train_y, d.test_y]).tolist()) == list(range(MAX_CLASSES))


def test_a_single_class_is_one_class_fine_for_a_vae_not_a_cvae(tmp_path):
    from trainer.loop import model_config_for, train

    rng = np.random.default_rng(0)
    ip = write_idx(tmp_path / "i.idx", rng.integers(0, 256, (20, 8, 8)))
    lp = write_idx(tmp_path / "l.idx", np.zeros(20))
    d = load_data(DataSpec("idx", images=str(ip), labels=str(lp)))
    assert d.class_names == ["0"] and d.num_classes == 1
    with pytest.raises(ConfigError, match="at least 2 classes \\(this data has 1\\)"):
        model_config_for(d, model="cvae")
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    for model in ("vae", "ae"):
        _, result = train(model_config_for(d, model=model, latent_dim=2, hidden=16), d, cfg)
        assert result.epochs_done == 1 and math.isfinite(result.history.epochs[-1]["test_nelbo"])


# -- image folders ------------------------------------------------------------------------------
def png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels and holds none: enough for Pillow to open it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("error")
def test_decompression_bombs_in_a_folder_name_the_file(tmp_path, monkeypatch, capfd):
    for c in "ab":
        (tmp_path / c).mkdir()
        for i in range(2):
            px = np.full((30, 40), 9 * i, np.uint8)
            px[10:20, 5:25] = 200  # a drawing: a folder of blank images is refused
            Image.fromarray(px).save(tmp_path / c / f"{i}.png")
    assert load_data(DataSpec("folder", root=str(tmp_path))).num_classes == 2
    (tmp_path / "b" / "huge.png").write_bytes(png_header(20000, 20000))
    with pytest.raises(DataError, match=r"b/huge.png: too large an image \(more than"):
        load_data(DataSpec("folder", root=str(tmp_path)))
    (tmp_path / "b" / "huge.png").unlink()
    # past Pillow's MAX_IMAGE_PIXELS but below twice that, Pillow only warns: refused too
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the images have 1200 pixels
    with pytest.raises(DataError, match=r"a/0.png: too large an image \(more than 1000 pixels"):
        load_data(DataSpec("folder", root=str(tmp_path)))
    assert capfd.readouterr() == ("", "")


# -- DataSpec ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"source": None}, "unknown dataset None"),
        ({"source": ["idx"]}, "unknown dataset"),
        ({"source": "idx", "images": 3}, "'images' must be a file name"),
        ({"source": "idx", "images": "i", "labels": ["l"]}, "'labels' must be a file name"),
        ({"source": "folder", "root": {"a": 1}}, "'root' must be a file name"),
        ({"image_size": "28"}, "'image_size' must be a whole number, not '28'"),
        ({"image_size": 28.0}, "'image_size' must be a whole number"),
        ({"image_size": True}, "'image_size' must be a whole number, not True"),
        ({"seed": None}, "'seed' must be a whole number"),
        ({"seed": False}, "'seed' must be a whole number"),
        ({"seed": -1}, f"seed must be 0 to {MAX_SEED}, not -1"),
        ({"seed": MAX_SEED + 1}, f"seed must be 0 to {MAX_SEED}"),
        ({"shapes_count": "6000"}, "'shapes_count' must be a whole number"),
        ({"shapes_count": 10**30}, "shapes count must be 10 to 1000000"),
        ({"test_fraction": "0.2"}, "'test_fraction' must be a number between 0 and 1"),
        ({"test_fraction": None}, "'test_fraction' must be a number"),
        ({"test_fraction": True}, "'test_fraction' must be a number"),
        ({"test_fraction": float("nan")}, "'test_fraction' must be a number"),
        ({"test_fraction": float("inf")}, "'test_fraction' must be a number"),
        ({"test_fraction": 1}, "test fraction must be between 0 and 1"),
    ],
)
def test_data_spec_types_are_checked(fields, match):
    with pytest.raises(DataError, match=match):
        DataSpec(**fields)
    with pytest.raises(DataError, match=match):
        DataSpec.from_dict(fields)


def test_data_spec_from_anything_is_a_data_error():
    for d in (None, ["shapes"], "shapes", 3):
        with pytest.raises(DataError, match="data settings must be a mapping"):
            DataSpec.from_dict(d)
    spec = DataSpec(seed=np.int64(MAX_SEED), image_size=np.int32(32), test_fraction=np.float32(0.5))
    assert type(spec.seed) is int and type(spec.image_size) is int
    assert type(spec.test_fraction) is float and spec.test_fraction == 0.5
    assert DataSpec.from_dict({**spec.to_dict(), "unknown": 1}) == spec


def _calls(log):
    return lambda fraction, text: log.append((fraction, text))


@pytest.mark.parametrize("gz", [False, True])
def test_long_loads_report_progress(tmp_path, gz):
    log = []
    d = load_data(DataSpec("shapes", shapes_count=20000), progress=_calls(log))
    assert len(d.train_x) + len(d.test_x) == 20000
    assert log[0] == (None, "Loading the built-in shapes…")
    fractions = [f for f, _ in log[1:]]
    assert len(fractions) > 2 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert log[-1][1] == "20,000 of 20,000 shapes"
    # an IDX file: after each megabyte read
    x = np.random.default_rng(0).integers(0, 256, (4000, 28, 28), dtype=np.uint8)  # 3.1 MB
    write_idx(tmp_path / "x.idx", x, gz=gz)
    log.clear()
    got = read_idx(tmp_path / "x.idx", "images", progress=_calls(log))
    assert np.array_equal(got, x)
    fractions = [f for f, _ in log]
    assert len(fractions) == 3 and fractions[-1] == 1.0 and "x.idx: 2 of 2 MB" in log[-1][1]


def test_chunked_shapes_are_the_shapes_of_one_batch(monkeypatch):
    """Made a few thousand at a time (bounded memory, cancellable), the set is the same."""
    x, y = make_shapes(5000, 28, 3)
    assert len(x) > data_mod.SHAPES_CHUNK_BYTES // (4 * 28 * 28)  # more than one chunk
    monkeypatch.setattr(shapes, "SHAPES_CHUNK_BYTES", 1 << 40)
    x2, y2 = make_shapes(5000, 28, 3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_an_exception_from_progress_ends_the_load():
    class CalledOff(Exception):
        pass

    calls = []

    def stop(fraction, text):
        calls.append(fraction)
        if len(calls) == 3:
            raise CalledOff

    with pytest.raises(CalledOff):
        load_data(DataSpec("shapes", shapes_count=50000), progress=stop)
    assert len(calls) == 3  # nothing more was done after it
