"""``--dataset celeba``: CelebA's standard extracted layout, built small with Pillow."""

import numpy as np
import pytest
import torch
from PIL import Image

import trainer.data.cache as cache
from trainer.data import DataError, DataSpec, Rows, load_data

ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling", "Young"]


def make_celeba(root, parts=(0, 0, 0, 1, 2, 0, 2, 0), size=(178, 218), attrs=ATTRS):
    """A tiny CelebA: img_align_celeba/000001.jpg …, its attribute list (a count line, the
    names line, a row of 1 / -1 per image, padded with spaces as the original) and its
    partition list. Each face is a random picture with a bright square in its centre."""
    rng = np.random.default_rng(0)
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, len(parts) + 1)]
    w, h = size
    for name in names:
        px = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        px[h // 2 - 10 : h // 2 + 10, w // 2 - 10 : w // 2 + 10] = 250
        Image.fromarray(px).save(root / "img_align_celeba" / name, quality=95)
    table = np.where(rng.random((len(names), len(attrs))) < 0.5, -1, 1)
    rows = [n + "  " + " ".join(f"{v:2d}" for v in r) for n, r in zip(names, table, strict=True)]
    rows[1] = rows[1].replace("  ", "\t", 1)  # (any white space between the columns)
    (root / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n" + " ".join(attrs) + " \n" + "\n".join(rows) + "\n"
    )
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{n} {p}\n" for n, p in zip(names, parts, strict=True))
    )
    return names, table > 0


def test_celeba_is_read_with_its_official_split_and_attributes(tmp_path):
    names, table = make_celeba(tmp_path / "celeba")
    d = load_data(DataSpec("celeba", root=str(tmp_path / "celeba"), image_size=32))
    assert d.image_shape == (3, 32, 32)
    # partitions 0 0 0 1 2 0 2 0: five training faces, two test ones, the validation one left
    assert len(d.train_x) == 5 and len(d.test_x) == 2 and d.num_classes == 0
    assert d.attributes.names == ATTRS
    assert torch.equal(d.attributes.train, torch.from_numpy(table[[0, 1, 2, 5, 7]]))
    assert torch.equal(d.attributes.test, torch.from_numpy(table[[4, 6]]))
    assert d.name == "CelebA faces"
    # centre-cropped: the bright square in the middle of each face fills the middle
    face = d.test_x[0].float()
    assert face[:, 14:18, 14:18].mean() > 200 and face[:, :4, :4].mean() < 130


def test_celeba_is_decoded_once_into_the_cache(tmp_path, monkeypatch):
    make_celeba(tmp_path / "celeba")
    spec = DataSpec("celeba", root=str(tmp_path / "celeba"), image_size=64)
    first = load_data(spec)
    import trainer.data.celeba as celeba

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(celeba, "decode_face", no_decoding)
    again = load_data(spec)
    assert isinstance(again.train_x, Rows)  # memory-mapped from the cache, not copied
    assert torch.equal(again.train_x.to("cpu"), first.train_x.to("cpu"))
    assert torch.equal(again.test_x, first.test_x)
    assert torch.equal(again.attributes.train, first.attributes.train)
    assert again.image_shape == (3, 64, 64)
    # another size is another cache
    with pytest.raises(AssertionError, match="decoded again"):
        load_data(DataSpec("celeba", root=str(tmp_path / "celeba"), image_size=128))
    assert cache.decoded_dir().is_dir()


def test_the_spec_defaults_and_sizes(tmp_path):
    with pytest.raises(DataError, match="--dataset celeba needs --root DIR"):
        DataSpec("celeba")
    with pytest.raises(DataError, match="resized to 32, 64 or 128 pixels .*not 28"):
        DataSpec("celeba", root=str(tmp_path))
    s = DataSpec("celeba", root=str(tmp_path), image_size=128)
    assert DataSpec.from_dict(s.to_dict()) == s


def _broken(root, how):
    names, _ = make_celeba(root)
    attr = root / "list_attr_celeba.txt"
    part = root / "list_eval_partition.txt"
    if how == "no images folder":
        for f in (root / "img_align_celeba").iterdir():
            f.unlink()
        (root / "img_align_celeba").rmdir()
    elif how == "no attributes":
        attr.unlink()
    elif how == "no partition":
        part.unlink()
    elif how == "missing image":
        (root / "img_align_celeba" / names[4]).unlink()
    elif how == "bad partition":
        part.write_text(part.read_text().replace(" 2\n", " 7\n", 1))
    elif how == "no test":
        part.write_text(part.read_text().replace(" 2\n", " 0\n"))
    elif how == "count":
        attr.write_text("9" + attr.read_text()[1:])
    elif how == "bad value":
        lines = attr.read_text().splitlines()
        lines[4] = lines[4][:-2] + " 0"
        attr.write_text("\n".join(lines) + "\n")
    elif how == "row missing":
        lines = attr.read_text().splitlines()
        lines[2] = lines[2].replace("000001.jpg", "999999.jpg")
        attr.write_text("\n".join(lines) + "\n")
    elif how == "damaged jpeg":
        (root / "img_align_celeba" / names[0]).write_bytes(b"\xff\xd8 not really")
    elif how == "a path":
        part.write_text(part.read_text().replace("000001.jpg", "../x.jpg"))


@pytest.mark.parametrize(
    "how, match",
    [
        ("no images folder", r"img_align_celeba: no such folder; --root must be the extracted"),
        ("no attributes", r"list_attr_celeba.txt: no such file; --root must be"),
        ("no partition", r"list_eval_partition.txt: no such file"),
        ("missing image", r"000005.jpg: no such file \(listed in list_eval_partition.txt\)"),
        ("bad partition", r"list_eval_partition.txt: line 5: expected an image's name and"),
        ("no test", r"lists no test images \(partition 2\)"),
        ("count", r"its first line promises 9 images, it lists 8"),
        ("bad value", r"list_attr_celeba.txt: line 5: expected an image's name and 4 values"),
        ("row missing", r"has no row for 000001.jpg"),
        ("damaged jpeg", r"000001.jpg: not a"),
        ("a path", r"line 1: expected an image's name"),
    ],
)
def test_every_mistake_in_the_layout_is_one_clear_data_error(tmp_path, how, match):
    _broken(tmp_path / "celeba", how)
    with pytest.raises(DataError, match=match) as e:
        load_data(DataSpec("celeba", root=str(tmp_path / "celeba"), image_size=32))
    assert "\n" not in str(e.value)


def test_a_missing_root_is_said(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_data(DataSpec("celeba", root=str(tmp_path / "nowhere"), image_size=32))
