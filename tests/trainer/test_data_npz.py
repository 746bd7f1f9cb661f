"""``--dataset npz``: images and labels from NumPy files, and every mistake one clear line."""

import zipfile

import numpy as np
import pytest
import torch

from trainer.data import DataError, DataSpec, load_data


def _images(n=12, shape=(8, 8), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _all(d):
    return torch.cat([d.train_x.to("cpu"), d.test_x]).numpy()


def test_an_npz_of_x_and_y_loads_with_its_labels_and_class_names(tmp_path):
    x, y = _images(), np.arange(12) % 3
    p = tmp_path / "faces.npz"
    np.savez_compressed(p, x=x, y=y, class_names=np.array(["cat", "dog", "owl"]))
    d = load_data(DataSpec("npz", images=str(p), test_fraction=0.25))
    assert d.image_shape == (1, 8, 8) and d.class_names == ["cat", "dog", "owl"]
    assert len(d.train_x) == 9 and len(d.test_x) == 3
    got = sorted(zip(map(bytes, _all(d)), torch.cat([d.train_y, d.test_y]).tolist()))
    assert got == sorted(zip(map(bytes, x[:, None]), y.tolist()))
    assert d.name == "NumPy file faces.npz"


def test_images_and_labels_names_float_pixels_and_channels_last(tmp_path):
    x = np.random.default_rng(1).random((10, 6, 6, 3)).astype(np.float32)
    p = tmp_path / "c.npz"
    np.savez(p, images=x, labels=np.array(["b", "a"] * 5))
    d = load_data(DataSpec("npz", images=str(p)))
    assert d.image_shape == (3, 6, 6) and d.class_names == ["a", "b"]
    assert sorted(map(bytes, _all(d))) == sorted(
        map(bytes, np.rint(x * 255).astype(np.uint8).transpose(0, 3, 1, 2))
    )


def test_a_given_split_is_kept(tmp_path):
    p = tmp_path / "mnist.npz"
    np.savez(
        p,
        x_train=_images(10),
        y_train=np.arange(10) % 2,
        x_test=_images(4, seed=1),
        y_test=np.array([0, 1, 1, 0]),
    )
    d = load_data(DataSpec("npz", images=str(p)))
    assert len(d.train_x) == 10 and len(d.test_x) == 4
    assert np.array_equal(d.test_x.numpy()[:, 0], _images(4, seed=1))
    assert d.test_y.tolist() == [0, 1, 1, 0] and d.class_names == ["0", "1"]
    # a test fraction asked for would not be what the archive's split gives: said, not ignored
    with pytest.raises(DataError, match=r"holds its own split .* a test fraction \(0\.1\)"):
        load_data(DataSpec("npz", images=str(p), test_fraction=0.1))


def test_npy_images_with_and_without_npy_labels(tmp_path):
    np.save(tmp_path / "x.npy", _images())
    np.save(tmp_path / "y.npy", np.arange(12) % 4)
    d = load_data(DataSpec("npz", images=str(tmp_path / "x.npy")))
    assert d.num_classes == 0 and len(d.train_x) + len(d.test_x) == 12
    d = load_data(DataSpec("npz", images=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy")))
    assert d.num_classes == 4


def _save(tmp_path, **arrays):
    p = tmp_path / f"d{len(list(tmp_path.glob('d*.npz')))}.npz"
    np.savez(p, **arrays)
    return str(p)


def _mistakes(tmp_path):
    x = _images()
    np.save(tmp_path / "y.npy", np.arange(12) % 2)
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object))
    (tmp_path / "junk.npz").write_bytes(b"hello, not numpy")
    (tmp_path / "cut.npz").write_bytes(open(_save(tmp_path, x=x), "rb").read()[:300])
    return [
        (str(tmp_path / "none.npz"), None, "none.npz: no such file"),
        (str(tmp_path), None, "is a folder, not a NumPy file"),
        (str(tmp_path / "junk.npz"), None, r"junk.npz: not a NumPy file \(.npz or .npy\)"),
        (str(tmp_path / "cut.npz"), None, "cut.npz: a damaged .npz archive"),
        (str(tmp_path / "obj.npy"), None, "holds Python objects"),
        (
            _save(tmp_path, a=x, b=x),
            None,
            r"holds no images; name them x or images \(it holds a, b\)",
        ),
        (_save(tmp_path, x=x, images=x), None, "holds both x and images"),
        (_save(tmp_path, x=x.reshape(12, 64)), None, r"flat rows, shape \(12, 64\)"),
        (_save(tmp_path, x=np.zeros((12, 5, 8, 8))), None, r"expected images .* \(12, 5, 8, 8\)"),
        (_save(tmp_path, x=np.array(["a"] * 12)), None, "holds values of type <U1"),
        (_save(tmp_path, x=x.astype(np.int32) * 4), None, "pixels run from 0 to 10"),
        (_save(tmp_path, x=np.full((4, 8, 8), np.nan)), None, "not numbers"),
        (_save(tmp_path, x=x[:0]), None, "holds no images"),
        (_save(tmp_path, x=x, y=np.arange(7)), None, "7 labels for 12 images"),
        (_save(tmp_path, x=x, y=np.eye(12)), None, r"one number per image.*one-hot"),
        (_save(tmp_path, x=x, y=np.arange(12) * 0.5), None, "labels must be whole numbers"),
        (
            _save(tmp_path, x=x, y=np.arange(12) % 2, class_names=np.array(["a"])),
            None,
            "1 class_names for labels 0 to 1",
        ),
        (_save(tmp_path, x=x, class_names=np.array(["a"])), None, "class_names but no labels"),
        (_save(tmp_path, x_train=x), None, "holds x_train but no x_test"),
        (
            _save(tmp_path, x_train=x, x_test=x, y_train=np.arange(12) % 2),
            None,
            "holds y_train but no y_test",
        ),
        (_save(tmp_path, x_train=x, x_test=x[:, :4]), None, "both splits must be alike"),
        (
            _save(tmp_path, x=x, y=np.arange(12) % 2),
            str(tmp_path / "y.npy"),
            "--labels goes with .npy images",
        ),
    ]


def test_every_mistake_is_one_clear_data_error(tmp_path):
    for images, labels, match in _mistakes(tmp_path):
        with pytest.raises(DataError, match=match) as e:
            load_data(DataSpec("npz", images=images, labels=labels))
        assert "\n" not in str(e.value), str(e.value)
        assert "Traceback" not in str(e.value)


def test_npy_labels_of_another_length_name_the_labels_file(tmp_path):
    np.save(tmp_path / "x.npy", _images())
    np.save(tmp_path / "y.npy", np.arange(5))
    with pytest.raises(DataError, match=r"y.npy: 5 labels for 12 images"):
        load_data(DataSpec("npz", images=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy")))


def test_a_header_promising_too_much_is_refused_before_reading(tmp_path, monkeypatch):
    import trainer.data.npz as npz

    monkeypatch.setattr(npz, "MAX_NPY_BYTES", 100)
    np.save(tmp_path / "x.npy", _images())
    with pytest.raises(DataError, match="its header promises 768 bytes"):
        load_data(DataSpec("npz", images=str(tmp_path / "x.npy")))


def test_a_spec_without_a_file_says_what_to_give():
    with pytest.raises(DataError, match="--dataset npz needs --images FILE"):
        DataSpec("npz")


def test_the_spec_round_trips_and_names_its_file(tmp_path):
    s = DataSpec("npz", images=str(tmp_path / "a.npz"), test_fraction=0.1, seed=3)
    assert DataSpec.from_dict(s.to_dict()) == s
    assert s.describe() == "NumPy file a.npz"


def test_a_zip_member_that_is_not_npy_is_no_array(tmp_path):
    p = tmp_path / "z.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.npy", b"not an array")
    with pytest.raises(DataError, match="z.npz: x: not a NumPy array"):
        load_data(DataSpec("npz", images=str(p)))
