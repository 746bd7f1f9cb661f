"""A seeded fuzz of image folders: a few hundred folders of small pictures in every mode and
format the project reads, some of them hostile (cut short, bytes changed, another format
behind the name, no picture at all, PostScript, a header promising 900 million pixels, a
name holding a newline). Each folder must load with the pixels a careful reader finds in
its pictures, or be refused with exactly a DataError of one line; never another exception,
a hang or a warning on the console. (300 folders, about 1,200 pictures: some 200 folders
load, 100 are refused.)

The reference here decodes from the arrays the pictures were drawn from, not from the files:
transparency on white, 16-bit and float levels scaled, CMYK as Pillow defines it, the EXIF
orientation applied with NumPy's flips and turns.
"""

from __future__ import annotations

import collections
import io
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.data import DataError, DataSpec, load_data

CASES = 300
SEED = 2024
CASE_SECONDS = 5  # one case taking longer counts as a hang
SIDE = 12  # the folders' image size
# the formats each mode is written in (lossless ones are checked pixel for pixel)
WRITES = {
    "1": ["PNG", "BMP", "TIFF"],
    "L": ["PNG", "BMP", "GIF", "TIFF", "JPEG"],
    "P": ["PNG", "BMP", "GIF", "TIFF"],
    "Pt": ["PNG", "GIF"],
    "LA": ["PNG", "TIFF"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "RGB": ["PNG", "BMP", "TIFF", "JPEG", "WEBP"],
    "CMYK": ["TIFF", "JPEG"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
}
LOSSY = {"JPEG"}
SUFFIX = {
    "PNG": ".png",
    "BMP": ".bmp",
    "GIF": ".gif",
    "TIFF": ".tif",
    "JPEG": ".jpg",
    "WEBP": ".webp",
}
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
OUTCOMES = ("loaded", "refused", "refused a good folder", "other exception", "hang", "wrong")


class Hang(Exception):
    pass


# -- pictures and what they show ---------------------------------------------------------------
def _orient(a: np.ndarray, o: int) -> np.ndarray:
    """``a`` (H, W, ...) as a viewer shows a picture stored so with EXIF orientation ``o``."""
    if o in (5, 6, 7, 8):
        a = {
            5: a.swapaxes(0, 1),
            6: np.rot90(a, -1),
            7: np.rot90(a, 2).swapaxes(0, 1),
            8: np.rot90(a, 1),
        }[o]
    else:
        a = {1: a, 2: a[:, ::-1], 3: a[::-1, ::-1], 4: a[::-1]}[o]
    return np.ascontiguousarray(a)


def _on_white(c: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.rint(c.astype(np.float64) * a + 255.0 * (1 - a))


def make_picture(rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, str]:
    """A picture of random noise in a random mode, the RGB levels (H, W, 3) a viewer shows
    for it (floats 0..255), and the mode's name."""
    mode = str(rng.choice(list(WRITES)))
    h, w = (int(v) for v in rng.integers(3, 30, 2))
    u8 = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    grey = u8[..., 0].astype(np.float64)
    if mode == "1":
        bits = u8[..., 0] > 127
        im = Image.fromarray(bits)
        shown = np.where(bits, 255.0, 0.0)[..., None].repeat(3, 2)
    elif mode == "L":
        im, shown = Image.fromarray(u8[..., 0]), grey[..., None].repeat(3, 2)
    elif mode in ("P", "Pt"):
        palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        idx = u8[..., 0] % 16
        im = Image.fromarray(idx, "P")
        im.putpalette(palette.tobytes())
        shown = palette[idx].astype(np.float64)
        if mode == "Pt":
            im.info["transparency"] = 3
            shown[idx == 3] = 255.0
    elif mode == "LA":
        im = Image.fromarray(u8[..., :2], "LA")
        shown = _on_white(u8[..., :1], u8[..., 1]).repeat(3, 2)
    elif mode == "RGBA":
        im = Image.fromarray(u8, "RGBA")
        shown = _on_white(u8[..., :3], u8[..., 3])
    elif mode == "RGB":
        im, shown = Image.fromarray(u8[..., :3]), u8[..., :3].astype(np.float64)
    elif mode == "CMYK":
        im = Image.fromarray(u8, "CMYK")
        k = u8[..., 3:].astype(np.float64)
        shown = np.rint((255.0 - u8[..., :3]) * (255.0 - k) / 255.0)  # Pillow's CMYK -> RGB
    elif mode == "I;16":
        v = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        im = Image.fromarray(v)
        shown = np.rint(v / 257.0)[..., None].repeat(3, 2)
    elif mode == "I":
        v = rng.integers(0, 65536, (h, w)).astype(np.int32)
        im = Image.fromarray(v)
        shown = np.rint(v / 257.0)[..., None].repeat(3, 2)
    else:  # F, 0..1
        v = rng.random((h, w)).astype(np.float32)
        im = Image.fromarray(v)
        shown = np.rint(v.astype(np.float64) * 255.0)[..., None].repeat(3, 2)
    return im, shown, mode


def write_picture(im: Image.Image, fmt: str, orientation: int) -> bytes:
    b = io.BytesIO()
    kw = {"lossless": True} if fmt == "WEBP" else {"quality": 90} if fmt == "JPEG" else {}
    if "transparency" in im.info:
        kw["transparency"] = im.info["transparency"]
    if orientation != 1 and fmt in ("PNG", "JPEG", "WEBP"):
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    im.save(b, fmt, **kw)
    return b.getvalue()


def png_bomb() -> bytes:
    """A PNG header promising 30,000 x 30,000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def hostile(rng: np.random.Generator, blob: bytes) -> tuple[bytes, str]:
    """``blob`` spoiled one way or another, and how."""
    m = int(rng.integers(8))
    b = bytearray(blob)
    if m == 0:
        return bytes(b[: int(rng.integers(len(b)))]), "cut short"
    if m == 1:
        for _ in range(int(rng.integers(1, 6))):
            i = int(rng.integers(8, len(b))) if len(b) > 8 else 0
            b[i] ^= int(rng.integers(1, 256))
        return bytes(b), "bytes changed"
    if m == 2:
        return rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes(), "noise"
    if m == 3:
        return b"not a picture at all\n", "text"
    if m == 4:
        return EPS, "PostScript"
    if m == 5:
        ppm = io.BytesIO()
        Image.new("L", (5, 5), 128).save(ppm, "PPM")
        return ppm.getvalue(), "PPM"
    if m == 6:
        return png_bomb(), "bomb"
    return b"", "empty"


def make_case(rng: np.random.Generator, root: Path) -> tuple[list, bool, str]:
    """A folder of two classes of one to three pictures each. Returns (for each intact,
    lossless picture: its class and expected pixels at the folder's size), whether every
    picture is intact, and a description."""
    expected, intact, what = [], True, []
    for k, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True)
        for i in range(int(rng.integers(1, 4))):
            im, shown, mode = make_picture(rng)
            fmt = str(rng.choice(WRITES[mode]))
            orientation = int(rng.integers(1, 9)) if rng.random() < 0.3 else 1
            blob = write_picture(im, fmt, orientation)
            if fmt not in ("PNG", "JPEG", "WEBP"):
                orientation = 1
            suffix = SUFFIX[fmt]
            if rng.random() < 0.1:  # another format behind the name
                suffix = str(rng.choice(list(SUFFIX.values())))
            name = f"{i}\n{i}" if rng.random() < 0.05 else f"{i}"
            spoilt = rng.random() < 0.12
            if spoilt:
                blob, how = hostile(rng, blob)
                intact = False
                what.append(how)
            else:
                what.append(f"{mode} {fmt}{'' if orientation == 1 else f' o{orientation}'}")
            (root / cls / f"{name}{suffix}").write_bytes(blob)
            if not spoilt and fmt not in LOSSY:
                px = np.clip(_orient(shown, orientation), 0, 255).astype(np.uint8)
                small = Image.fromarray(px).resize((SIDE, SIDE), Image.BILINEAR)
                expected.append((k, np.asarray(small).transpose(2, 0, 1)))
            elif not spoilt:
                expected.append((k, None))
    return expected, intact, ", ".join(what)


# -- running -------------------------------------------------------------------------------------
def uninformative(x: np.ndarray) -> bool:
    """The loader's rule for data with nothing to learn: all images the same, or each one
    colour, give or take 3 levels."""
    x = x.astype(np.int16)
    same = (np.abs(x - x[:1]) <= 3).all()
    flat = x.reshape(len(x), x.shape[1], -1)
    return bool(same or (flat.max(2) - flat.min(2) <= 3).all())


def run_case(root: Path, rng: np.random.Generator) -> tuple[str, str]:
    expected, intact, what = make_case(rng, root)

    def alarm(*_):
        raise Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        try:
            d, error = load_data(DataSpec("folder", root=str(root), image_size=SIDE)), None
        except (DataError, Hang):
            raise
        except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
            d, error = None, f"{type(e).__name__}: {e}"[:200]
    except DataError as e:
        if "\n" in str(e) or "\n" in (e.gui or ""):
            return "wrong", f"{what}: a message of several lines: {str(e)!r}"
        exact = [x for _, x in expected if x is not None]
        if intact and not (len(exact) == len(expected) and uninformative(np.stack(exact))):
            return "refused a good folder", f"{what}: {e}"
        return "refused", f"{what}: {e}"
    except Hang:
        return "hang", what
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if error is not None:
        return "other exception", f"{what}: {error}"
    xs = torch.cat([d.train_x.to("cpu"), d.test_x]).numpy()
    ys = torch.cat([d.train_y, d.test_y]).numpy().tolist()
    if xs.dtype != np.uint8 or xs.shape[2:] != (SIDE, SIDE) or xs.shape[1] not in (1, 3):
        return "wrong", f"{what}: loaded {d!r}"
    got = collections.Counter(zip((x.tobytes() for x in xs), ys))
    for k, want in expected:
        if want is None:
            continue
        if xs.shape[1] == 1:
            if not (want[0] == want[1]).all() or not (want[1] == want[2]).all():
                return "wrong", f"{what}: a colour picture loaded as grey"
            want = want[:1]
        # (rounding may differ by a level where Pillow and the reference round a half)
        near = [(b, y) for (b, y) in got if y == k and _close(b, want)]
        if not near:
            return "wrong", f"{what}: a class {k} picture is not what it shows"
        got[near[0]] -= 1
        if got[near[0]] == 0:
            del got[near[0]]
    return "loaded", what


def _close(blob: bytes, want: np.ndarray) -> bool:
    have = np.frombuffer(blob, np.uint8).astype(np.int16)
    return have.size == want.size and np.abs(have - want.reshape(-1)).max() <= 1


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM for its hang guard")
def test_hostile_image_folders_load_right_or_raise_one_line_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(SEED)
    results = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(CASES):
            outcome, detail = run_case(tmp_path / f"case{i}", rng)
            results.append((outcome, f"case {i}: {detail}"))
    assert not caught, [str(w.message) for w in caught[:5]]  # nothing on the console
    bad = [d for o, d in results if o not in ("loaded", "refused")]
    counts = collections.Counter(o for o, _ in results)
    assert not bad, f"{len(bad)} bad cases of {CASES} ({dict(counts)}), e.g. {bad[:4]}"
    # the fuzz is no use unless it both loads and refuses a good share of its folders
    assert counts["loaded"] >= CASES // 4 and counts["refused"] >= CASES // 4, counts
