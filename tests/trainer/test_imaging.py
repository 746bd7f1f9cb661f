"""What a viewer shows is what trains: every image the project reads (an image folder, a
dropped or pasted picture) is decoded the same way, transparency on one background, 16-bit,
32-bit and float images scaled, CMYK converted, EXIF orientation applied; only the formats
the project names are ever opened; names in messages stay on one line; and a folder whose
images carry no information is refused before training."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageDraw

from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataError, DataSpec, check_informative, load_data
from trainer.data.imaging import ImageError, decode_image, prepare_image
from trainer.examples import BUNDLES, load_bundle
from trainer.models import ModelConfig, build_model

SIDE = 32


def _disc(mode: str = "L", ink=80, size=SIDE) -> Image.Image:
    """A filled disc of ``ink`` on a transparent (or black) ground: an icon."""
    im = Image.new(mode, (size, size), 0)
    ImageDraw.Draw(im).ellipse((6, 6, size - 7, size - 7), fill=ink)
    return im


def _icon(mode: str) -> Image.Image:
    """A dark blue disc drawn on transparency whose hidden colour is black, as the icons of
    an icon theme are: without its alpha the whole picture is black."""
    rgba = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse((6, 6, SIDE - 7, SIDE - 7), fill=(40, 60, 150, 255))
    return rgba if mode == "RGBA" else rgba.convert(mode)


def _folder(root, images: dict[str, list[Image.Image]], ext="png", **save):
    for cls, ims in images.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(ims):
            im.save(root / cls / f"{i}.{ext}", **save)
    return root


def _pixels(data) -> np.ndarray:
    """All of a dataset's images (N, C, H, W) as floats 0..255."""
    return torch.cat([data.train_x.to("cpu"), data.test_x]).numpy().astype(np.float64)


def _spec(root, **kw) -> DataSpec:
    return DataSpec("folder", root=str(root), image_size=SIDE, **kw)


def _mixed(make) -> dict[str, list[Image.Image]]:
    """Two classes of icons of two sizes (a folder of identical images is refused)."""
    return {"a": [make(SIDE), make(SIDE - 8)], "b": [make(SIDE - 4), make(SIDE)]}


# -- transparency ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_icons_drawn_on_transparency_keep_their_drawing(tmp_path, mode):
    def make(side):
        return _icon(mode).resize((side, side), Image.NEAREST)

    _folder(tmp_path, _mixed(make))
    x = _pixels(load_data(_spec(tmp_path)))
    assert 100 < x.mean() < 220, x.mean()  # not black, not white: a drawing on a page
    assert (x[:, :, 0, 0] == 255).all()  # the corners are the white page
    centre = x[:, :, SIDE // 2, SIDE // 2]
    assert (centre < 160).all()  # the disc is dark
    if mode != "LA":  # and blue
        assert (x[:, 2, SIDE // 2, SIDE // 2] > x[:, 0, SIDE // 2, SIDE // 2] + 50).all()
    # on black, the option: the ground is black and the disc still shows
    y = _pixels(load_data(_spec(tmp_path, background="black")))
    assert (y[:, :, 0, 0] == 0).all() and (y[:, :, SIDE // 2, SIDE // 2].max(1) > 30).all()


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_a_palette_with_a_transparent_colour_is_put_on_the_background(tmp_path, ext):
    def make(side):
        p = Image.new("P", (side, side), 0)
        p.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)  # 0: (hidden) black, 1: red
        ImageDraw.Draw(p).rectangle((4, 4, side - 5, side - 5), fill=1)
        p.info["transparency"] = 0
        return p

    _folder(tmp_path, _mixed(make), ext=ext, transparency=0)
    x = _pixels(load_data(_spec(tmp_path)))
    assert (x[:, :, 0, 0] == 255).all()
    assert np.allclose(x[:, :, SIDE // 2, SIDE // 2], [200, 30, 30], atol=2)


def test_a_white_drawing_on_a_white_page_is_refused_with_what_to_do(tmp_path):
    """White strokes on transparency, on the white page, leave nothing: the message says
    which background was used and which option shows them; on black they train."""

    def make(side):
        im = Image.new("LA", (side, side), (255, 0))
        ImageDraw.Draw(im).line((3, 3, side - 4, side - 4), fill=(255, 255), width=3)
        return im

    _folder(tmp_path, _mixed(make))
    with pytest.raises(DataError) as e:
        load_data(_spec(tmp_path))
    msg = str(e.value)
    assert "a single colour (white)" in msg and "--background black" in msg, msg
    assert "Background: Black under Data" in e.value.gui and "\n" not in msg
    x = _pixels(load_data(_spec(tmp_path, background="black")))
    assert (
        x.shape[1] == 1 and x[:, 0, SIDE // 2, SIDE // 2].min() > 200 and x[:, 0, 0, -1].max() == 0
    )


# -- more than 8 bits --------------------------------------------------------------------------
def _mid_grey_drawing(rng) -> np.ndarray:
    """A drawing in 0..1 whose mean is about one half."""
    t = np.linspace(0, 1, SIDE)
    return np.clip(np.add.outer(t, t) / 2 + rng.normal(0, 0.05, (SIDE, SIDE)), 0, 1)


def _load_one_kind(tmp_path, make) -> np.ndarray:
    rng = np.random.default_rng(0)
    for cls in "ab":
        (tmp_path / cls).mkdir()
        for i in range(2):
            make(_mid_grey_drawing(rng), tmp_path / cls / f"{i}")
    return _pixels(load_data(_spec(tmp_path)))


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    def make(a, path):
        Image.fromarray(np.rint(a * 65535).astype(np.uint16)).save(f"{path}.png")

    x = _load_one_kind(tmp_path, make)
    assert x.shape[1] == 1 and abs(x.mean() - 127.5) < 4, x.mean()  # not 246: clipped
    assert x.min() < 20 and x.max() > 235  # the whole range, as drawn


def test_thirty_two_bit_integer_tiff_is_scaled_as_its_sixteen_bits(tmp_path):
    def make(a, path):
        Image.fromarray(np.rint(a * 65535).astype(np.int32)).save(f"{path}.tif")

    x = _load_one_kind(tmp_path, make)
    assert abs(x.mean() - 127.5) < 4, x.mean()
    # values past 16 bits (negative here) are stretched from their least to their most
    px = decode_image(_tiff(np.int32, lambda a: np.rint(a * 2e6 - 1e6)), colour=False)
    assert px.min() == 0 and px.max() == 255 and abs(px.mean() - 127.5) < 6


def _tiff(dtype, f) -> bytes:
    b = io.BytesIO()
    a = _mid_grey_drawing(np.random.default_rng(1))
    Image.fromarray(f(a).astype(dtype)).save(b, "TIFF")
    return b.getvalue()


def test_float_tiff_keeps_its_drawing(tmp_path):
    """Floats 0..1 are black..white; floats of 8-bit levels (0..255, what Pillow makes of
    an 8-bit image) are those levels."""
    for scale in (1.0, 255.0):
        root = tmp_path / str(scale)

        def make(a, path, scale=scale):
            Image.fromarray((a * scale).astype(np.float32)).save(f"{path}.tif")

        root.mkdir()
        x = _load_one_kind(root, make)
        assert abs(x.mean() - 127.5) < 4 and x.max() > 235, (scale, x.mean(), x.max())


def test_float_tiff_of_another_range_is_stretched_and_non_numbers_are_black():
    px = decode_image(_tiff(np.float32, lambda a: a * 10 - 5), colour=False)
    assert px.min() == 0 and px.max() == 255 and abs(px.mean() - 127.5) < 6
    nan = decode_image(_tiff(np.float32, lambda a: np.where(a > 0.5, np.nan, a)), colour=False)
    assert nan.max() <= 130 and (nan == 0).sum() > 100


@pytest.mark.parametrize("mode", ["RGB", "CMYK"])
def test_a_jpeg_is_turned_as_its_exif_orientation_says(tmp_path, mode):
    """Orientation 6: the picture is stored turned a quarter anticlockwise; every viewer
    turns it a quarter clockwise, so a red mark stored top left is shown top right. A CMYK
    JPEG shows the same colours."""
    for i, cls in enumerate("ab"):
        im = Image.new("RGB", (SIDE * 2, SIDE), (255, 255, 255))
        ImageDraw.Draw(im).rectangle((0, 0, SIDE // 2, SIDE // 2), fill=(200, 40, 40))
        ImageDraw.Draw(im).line((SIDE, 0, SIDE + i * 9, SIDE), fill=(90, 90, 90), width=2)
        exif = im.getexif()
        exif[0x0112] = 6
        (tmp_path / cls).mkdir()
        im.convert(mode).save(tmp_path / cls / "0.jpg", exif=exif, quality=95)
    x = _pixels(load_data(_spec(tmp_path)))
    q = SIDE // 4
    assert np.allclose(x[:, :, :q, -q:].mean((2, 3)), [200, 40, 40], atol=12)  # top right
    assert (x[:, :, :q, :q] > 200).all()  # top left: the page
    px = decode_image(tmp_path / "a" / "0.jpg")
    assert px.shape == (SIDE * 2, SIDE, 3)  # stood upright: tall, not wide


# -- only the formats the project names ---------------------------------------------------------
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n%%EOF\n"


@pytest.fixture
def eps_spy(monkeypatch):
    """Every call into Pillow's EPS plugin (which runs Ghostscript) is recorded."""
    calls = []
    real = EpsImagePlugin.EpsImageFile._open

    def spy(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a))
    return calls


def test_postscript_named_png_is_refused_and_never_handed_to_ghostscript(tmp_path, eps_spy):
    _folder(tmp_path, _mixed(lambda side: _disc(ink=200, size=side)))
    (tmp_path / "a" / "trap.png").write_bytes(EPS)
    with pytest.raises(DataError, match=r"trap.png: not a picture Latent Explorer can read"):
        load_data(_spec(tmp_path))
    with pytest.raises(ImageError, match="trap.png: not a picture"):  # dropped
        prepare_image(str(tmp_path / "a" / "trap.png"), (1, 28, 28), True)
    with pytest.raises(ImageError, match="the picture: not a picture"):  # pasted
        prepare_image(EPS, (1, 28, 28), True)
    assert eps_spy == []


def test_other_formats_pillow_knows_are_refused_too(tmp_path):
    """A PPM or an ICO is an image Pillow reads, but not one the project names."""
    b = io.BytesIO()
    _disc().save(b, "PPM")
    with pytest.raises(ImageError, match="not a picture Latent Explorer can read"):
        decode_image(b.getvalue())


# -- names in messages ---------------------------------------------------------------------------
def test_a_file_name_with_a_newline_makes_a_one_line_message(tmp_path):
    _folder(tmp_path, _mixed(lambda side: _disc(ink=200, size=side)))
    bad = tmp_path / "b" / "two\nlines.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError) as e:
        load_data(_spec(tmp_path))
    assert "\n" not in str(e.value) and "two\\nlines.png" in str(e.value), str(e.value)
    with pytest.raises(ImageError) as e:
        prepare_image(str(bad), (1, 28, 28), True)
    assert str(e.value).startswith("two\\nlines.png: ") and "\n" not in str(e.value)


# -- data that carries no information --------------------------------------------------------------
def test_a_folder_of_identical_images_is_refused_in_one_line(tmp_path):
    same = _disc(ink=200)
    _folder(tmp_path, {"a": [same] * 3, "b": [same] * 2})
    with pytest.raises(DataError) as e:
        load_data(_spec(tmp_path))
    msg = str(e.value)
    assert msg.startswith(f"all 5 images in image folder {tmp_path} are the same after decoding")
    assert "nothing to learn" in msg and "\n" not in msg and "background" not in msg


def test_a_folder_of_blank_images_is_refused_in_one_line(tmp_path):
    _folder(
        tmp_path, {c: [Image.new("RGB", (20, 20), (9 * i, 40, 90)) for i in range(3)] for c in "ab"}
    )
    with pytest.raises(DataError) as e:
        load_data(_spec(tmp_path))
    assert "each of the 6 images" in str(e.value) and "is a single colour" in str(e.value)


def test_icon_theme_black_under_alpha_was_the_case_of_one_colour(tmp_path):
    """Without its alpha every icon is black: the folder of them now trains on drawings, and
    the same pixels saved without alpha are refused instead of training on black squares."""
    _folder(tmp_path / "alpha", _mixed(lambda side: _icon("RGBA").resize((side, side))))
    assert _pixels(load_data(_spec(tmp_path / "alpha"))).mean() > 100
    _folder(
        tmp_path / "flat",
        _mixed(lambda side: _icon("RGBA").resize((side, side)).convert("RGB").point(lambda v: 0)),
    )
    with pytest.raises(DataError, match=r"are the same after decoding: a single colour \(black\)"):
        load_data(_spec(tmp_path / "flat"))


def test_real_data_is_never_refused(shapes):
    check_informative(shapes.train_x.numpy(), DataSpec("shapes"))
    for name in BUNDLES:  # the bundled test images: MNIST, Fashion-MNIST and shapes
        d = load_bundle(name)
        check_informative(d.test_x.numpy(), DataSpec("example", bundle=name))
    # sparse drawings: one image in a thousand with ink, the rest blank but not all the same
    x = np.zeros((1000, 1, 28, 28), np.uint8)
    x[500, 0, 10:12, 10:12] = 255
    check_informative(x, DataSpec("shapes"))


def test_the_cli_refuses_a_blank_folder_with_exit_2_and_one_line(tmp_path, capsys):
    _folder(tmp_path / "f", {"a": [_disc(ink=0)] * 2, "b": [_disc(ink=0)] * 2})
    argv = [
        "train",
        "--dataset",
        "folder",
        "--root",
        str(tmp_path / "f"),
        "--epochs",
        "1",
        "--image-size",
        "16",
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
    ]
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert "are the same after decoding: a single colour (black)" in err
    assert "--background" not in err  # (they are black, not on the background: no hint)
    assert not (tmp_path / "run").exists()


# -- the background option ------------------------------------------------------------------------
def test_the_background_is_part_of_the_data_and_of_the_cache_key(tmp_path):
    _folder(tmp_path, _mixed(lambda side: _icon("RGBA").resize((side, side))))
    white = _pixels(load_data(_spec(tmp_path)))
    black = _pixels(load_data(_spec(tmp_path, background="black")))  # decoded again
    assert (white[:, :, 0, 0] == 255).all() and (black[:, :, 0, 0] == 0).all()
    assert (_pixels(load_data(_spec(tmp_path))) == white).all()
    with pytest.raises(DataError, match="'background' must be white or black, not 'grey'"):
        DataSpec.from_dict({"source": "folder", "root": "r", "background": "grey"})
    # settings saved before there was a choice are on white
    old = {k: v for k, v in _spec(tmp_path).to_dict().items() if k != "background"}
    assert DataSpec.from_dict(old).background == "white"
    assert DataSpec.from_dict(_spec(tmp_path, background="black").to_dict()).background == "black"


def test_a_checkpoint_keeps_its_data_background(tmp_path):
    model = build_model(ModelConfig(latent_dim=2, hidden=8, image_shape=(1, 8, 8)))
    for bg in ("white", "black"):
        spec = DataSpec("folder", root="/data/icons", image_size=8, background=bg)
        save_checkpoint(tmp_path / f"{bg}.safetensors", model, TrainConfig(), data_spec=spec)
        assert load_checkpoint(tmp_path / f"{bg}.safetensors").data_spec == spec


def test_the_cli_background_option_is_for_image_folders(tmp_path, capsys):
    argv = ["train", "--dataset", "shapes", "--background", "black", "--out", str(tmp_path / "r")]
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert "--background does not apply to --dataset shapes" in err and "(--dataset folder)" in err
    assert not (tmp_path / "r").exists()


def test_the_cli_trains_on_icons_on_the_chosen_background(tmp_path, capsys):
    _folder(tmp_path / "f", _mixed(lambda side: _icon("RGBA").resize((side, side))))
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        "folder",
        "--root",
        str(tmp_path / "f"),
        "--background",
        "black",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    spec = load_checkpoint(out / "checkpoint.safetensors").data_spec
    assert spec.background == "black" and spec.source == "folder"


# -- a dropped or pasted picture ------------------------------------------------------------------
def test_a_picture_is_decoded_as_a_folders_image_is(tmp_path):
    """16-bit, transparency, EXIF: prepare_image reads what the folder loader reads."""
    a = _mid_grey_drawing(np.random.default_rng(3))
    Image.fromarray(np.rint(a * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.rint(a * 255).astype(np.uint8)).save(tmp_path / "flat.png")
    deep, _ = prepare_image(str(tmp_path / "deep.png"), (1, 28, 28), False)
    flat, _ = prepare_image(str(tmp_path / "flat.png"), (1, 28, 28), False)
    assert np.abs(deep.astype(int) - flat).max() <= 2
    icon, done = prepare_image(str(_save(_icon("RGBA"), tmp_path / "i.png")), (3, 28, 28), False)
    assert icon[0, :, 0, 0].tolist() == [255, 255, 255] and icon[0, 2, 14, 14] > 100, done


def test_a_white_drawing_on_transparency_is_put_on_black_when_dropped(tmp_path):
    im = Image.new("LA", (40, 40), (255, 0))
    ImageDraw.Draw(im).ellipse((8, 8, 31, 31), outline=(255, 255), width=4)
    x, done = prepare_image(str(_save(im, tmp_path / "w.png")), (1, 28, 28), True)
    assert "transparent pixels made black" in done, done
    assert x[0, 0, 0, 0] == 0 and x.max() > 200  # light strokes on the dark ground
    assert "inverted" not in done


def _save(im: Image.Image, path):
    im.save(path)
    return path
