"""trainer.maps: the methods of a map (axes, principal and custom planes, UMAP, t-SNE), their
seeds, progress and Cancel, the placing of new codes, the 5-NN class agreement, and the cache
of computed maps."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from trainer import codes as codes_module
from trainer import maps
from trainer.codes import MapCodes, scatter_picture, sprite, write_codes, write_projector
from trainer.export import ExportError
from trainer.maps import (
    Cancelled,
    MapCache,
    MapUnavailable,
    Projection,
    map_key,
    neighbour_agreement,
    project,
)

N_PER, CLASSES, D = 40, 5, 12


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five well-separated Gaussian clusters of codes in 12-D, 40 each, and their classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 6.0, (CLASSES, D))
    codes = np.concatenate([c + rng.normal(0.0, 1.0, (N_PER, D)) for c in centres])
    return codes.astype(np.float32), np.repeat(np.arange(CLASSES), N_PER)


@pytest.fixture(scope="module")
def data():
    return clusters()


@pytest.fixture(scope="module")
def umap_map(data):
    steps: list[tuple[float, str]] = []
    p = project(data[0], "umap", seed=3, progress=lambda f, s: steps.append((f, s)))
    return p, steps


@pytest.fixture(scope="module")
def tsne_map(data):
    steps: list[tuple[float, str]] = []
    p = project(data[0], "tsne", seed=3, progress=lambda f, s: steps.append((f, s)))
    return p, steps


def test_importing_maps_and_the_map_command_loads_no_map_library():
    code = (
        "import sys, trainer.maps, trainer.codes, trainer.cli.map as m; "
        "m.add_options(__import__('argparse').ArgumentParser()); m.default_method(); "
        "print(sorted(m for m in ('umap', 'openTSNE', 'numba', 'pynndescent', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_nonlinear_map_separates_the_clusters(method, data, umap_map, tsne_map):
    p, steps = umap_map if method == "umap" else tsne_map
    codes, labels = data
    assert p.method == method and p.plane is None and not p.invertible
    assert p.xy.shape == (len(codes), 2) and p.xy.dtype == np.float32
    assert np.all(np.isfinite(p.xy))
    assert neighbour_agreement(p.xy, labels) > 0.95
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("laying out" in s for _, s in steps)
    assert p.seconds > 0


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_same_seed_same_map_other_seed_other_map(method, data, umap_map, tsne_map):
    p = (umap_map if method == "umap" else tsne_map)[0]
    again = project(data[0], method, seed=3)
    np.testing.assert_allclose(again.xy, p.xy, rtol=1e-5, atol=1e-5)
    other = project(data[0], method, seed=4)
    assert not np.allclose(other.xy, p.xy, atol=1e-3)


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_new_codes_are_placed_beside_their_class(method, data, umap_map, tsne_map):
    p = (umap_map if method == "umap" else tsne_map)[0]
    codes, labels = data
    new, new_labels = clusters(seed=0)[0][::10] + 0.05, labels[::10]
    placed = p.transform(new)
    assert placed.shape == (len(new), 2) and np.all(np.isfinite(placed))
    nearest = np.argmin(((placed[:, None, :] - p.xy[None]) ** 2).sum(-1), axis=1)
    assert np.mean(labels[nearest] == new_labels) >= 0.9


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_cancel_while_laying_out_stops_the_map(method, data, umap_map, tsne_map):
    seen: list[float] = []
    stop = [False]

    def progress(f, s):
        seen.append(f)
        if "laying out" in s and f > 0.55:
            stop[0] = True

    with pytest.raises(Cancelled):
        project(data[0], method, seed=3, progress=progress, cancelled=lambda: stop[0])
    assert max(seen) < 0.9  # it stopped soon after being asked, not at the end


def test_umap_of_many_codes_searches_neighbours_first_and_still_places_new_ones(monkeypatch, data):
    monkeypatch.setattr(maps, "UMAP_EXACT_BELOW", 50)  # the path of 4,096 codes and more
    codes, labels = data
    steps: list[str] = []
    p = project(codes, "umap", seed=3, progress=lambda f, s: steps.append(s))
    assert "UMAP: finding each code's neighbours" in steps
    assert neighbour_agreement(p.xy, labels) > 0.95
    placed = p.transform(codes[::10] + 0.05)
    nearest = np.argmin(((placed[:, None, :] - p.xy[None]) ** 2).sum(-1), axis=1)
    assert np.mean(labels[nearest] == labels[::10]) >= 0.9
    np.testing.assert_allclose(project(codes, "umap", seed=3).xy, p.xy, atol=1e-5)


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_cancel_before_the_start(method, data):
    with pytest.raises(Cancelled):
        project(data[0], method, cancelled=lambda: True)


@pytest.mark.parametrize(
    ("method", "module", "library"),
    [
        ("umap", "umap", "umap-learn"),
        ("tsne", "openTSNE", "openTSNE"),
    ],
)
def test_a_missing_library_is_one_line_saying_what_to_install(
    monkeypatch, data, method, module, library
):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(MapUnavailable) as e:
        project(data[0], method)
    assert library in str(e.value) and "pip install 'latent-explorer[maps]'" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_codes_a_nonlinear_map_cannot_take(method):
    with pytest.raises(MapUnavailable, match="at least 4 codes"):
        project(np.zeros((3, 5)), method)
    bad = np.ones((50, 5), dtype=np.float32)
    bad[7, 2] = np.nan
    with pytest.raises(MapUnavailable, match="NaN"):
        project(bad, method)


@pytest.mark.parametrize("method", ["axes", "pca"])
def test_planes_place_new_codes_where_the_map_has_them(method, data):
    p = project(data[0], method, dims=(2, 5))
    assert p.invertible
    np.testing.assert_allclose(p.transform(data[0]), p.xy, atol=1e-5)
    if method == "axes":
        np.testing.assert_allclose(p.xy, data[0][:, [2, 5]], atol=1e-6)


def test_custom_plane_places_codes_along_its_directions(data):
    codes = data[0]
    u, v = np.eye(D)[0] * 2.0, np.eye(D)[1]
    p = project(codes, "custom", axes=(u, v))
    np.testing.assert_allclose(p.xy[:, 0], (codes[:, 0] - codes[:, 0].mean()) / 2.0, atol=1e-4)
    np.testing.assert_allclose(p.transform(codes[:3]), p.xy[:3], atol=1e-5)
    assert p.names == ("direction 1", "direction 2 (orthogonal part)")
    # the axes may carry the directions' names
    p = project(codes, "custom", axes=(u, v), names=("3 → 8", "1 → 7"))
    assert p.names == p.plane.names == ("3 → 8", "1 → 7")
    with pytest.raises(ValueError, match="two words"):
        project(codes, "custom", axes=(u, v), names=("only one",))


def test_neighbour_agreement_counts_the_neighbours_of_each_class():
    # two tight pairs far apart: each point's nearest neighbour is its pair
    xy = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], dtype=np.float32)
    assert neighbour_agreement(xy, [0, 0, 1, 1], k=1) == 1.0
    assert neighbour_agreement(xy, [0, 1, 0, 1], k=1) == 0.0
    # k=2: each point's second neighbour is across the gap, of the other class
    assert neighbour_agreement(xy, [0, 0, 1, 1], k=2) == 0.5
    rng = np.random.default_rng(0)
    many = rng.normal(size=(3000, 2))
    assert abs(neighbour_agreement(many, rng.integers(0, 10, 3000)) - 0.1) < 0.02
    with pytest.raises(ValueError, match="one a point"):
        neighbour_agreement(xy, [0, 1])
    with pytest.raises(ValueError, match="more than 5 points"):
        neighbour_agreement(xy, [0, 0, 1, 1])


# -- the cache --------------------------------------------------------------------------------
class Counting:
    """Stands for :func:`trainer.maps.project` and counts its calls (a map is then ms)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, codes, method, **kwargs):
        self.calls += 1
        xy = np.asarray(codes, dtype=np.float32)[:, :2] * (1 + kwargs.get("seed", 0))
        return Projection(method, xy, ("a", "b"), None, 0.5, lambda c: c[:, :2])


@pytest.fixture
def counting(monkeypatch):
    c = Counting()
    monkeypatch.setattr(maps, "project", c)
    return c


def test_a_map_is_computed_once_and_read_back_from_disk(tmp_path, data, counting):
    codes = data[0]
    cache = MapCache(tmp_path)
    first = cache.project(codes, "umap", seed=1)
    assert counting.calls == 1 and first.transform is not None
    assert cache.project(codes, "umap", seed=1) is first  # this process keeps it
    assert len(list(tmp_path.glob("*.npz"))) == 1
    later = MapCache(tmp_path).project(codes, "umap", seed=1)  # another process reads it
    assert counting.calls == 1
    np.testing.assert_array_equal(later.xy, first.xy)
    assert later.names == ("a", "b") and later.method == "umap" and later.transform is None
    assert later.seconds == 0.5


def test_other_codes_seed_or_method_are_another_map(tmp_path, data, counting):
    codes = data[0]
    cache = MapCache(tmp_path)
    cache.project(codes, "umap", seed=1)
    cache.project(codes, "umap", seed=2)
    cache.project(codes, "tsne", seed=1)
    other = codes.copy()
    other[0, 0] += 1e-3  # another model's weights, or other data
    cache.project(other, "umap", seed=1)
    assert counting.calls == 4 and len(list(tmp_path.glob("*.npz"))) == 4
    assert map_key(codes, "umap", seed=1) != map_key(other, "umap", seed=1)
    assert map_key(codes, "axes", dims=(0, 1)) != map_key(codes, "axes", dims=(0, 2))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_xy", "other_key", "folder"])
def test_a_damaged_cache_file_is_rebuilt_never_trusted(tmp_path, data, counting, damage):
    codes = data[0]
    MapCache(tmp_path).project(codes, "umap", seed=1)
    (path,) = tmp_path.glob("*.npz")
    blob = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a map at all")
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage in ("other_xy", "other_key"):
        with np.load(path) as z:
            fields = dict(z)
        if damage == "other_xy":
            fields["xy"] = fields["xy"] + 1.0  # the seal no longer fits
        else:
            fields["key"] = np.array("0" * 40)
        with open(path, "wb") as f:
            np.savez(f, **fields)
    else:
        path.unlink()
        path.mkdir()
    again = MapCache(tmp_path).project(codes, "umap", seed=1)
    if damage == "folder":  # not a file it can remove: computed again, still not trusted
        assert counting.calls == 2
        return
    assert counting.calls == 2
    np.testing.assert_array_equal(again.xy, codes[:, :2] * 2)
    assert MapCache(tmp_path).get(map_key(codes, "umap", seed=1), len(codes), "umap") is not None


def test_a_cache_folder_that_cannot_be_written_costs_only_the_caching(tmp_path, data, counting):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    cache = MapCache(blocker / "maps")
    p = cache.project(data[0], "umap", seed=1)
    assert p.xy.shape == (len(data[0]), 2)
    assert cache.problem is not None and "not cached" in cache.problem


def test_planes_are_not_written_to_disk(tmp_path, data):
    cache = MapCache(tmp_path)
    p = cache.project(data[0], "pca")
    assert p.invertible and list(tmp_path.iterdir()) == []


def test_a_real_tsne_map_read_back_from_the_cache(tmp_path, data, tsne_map):
    codes = data[0]
    first = MapCache(tmp_path).project(codes, "tsne", seed=3)
    np.testing.assert_allclose(first.xy, tsne_map[0].xy, atol=1e-5)
    read: list[str] = []
    later = MapCache(tmp_path).project(codes, "tsne", seed=3, progress=lambda f, s: read.append(s))
    np.testing.assert_array_equal(later.xy, first.xy)
    assert read == ["done (from the cache)"]


# -- the codes taken elsewhere ----------------------------------------------------------------
def some_codes(n: int = 10, d: int = 3, images: bool = False) -> MapCodes:
    rng = np.random.default_rng(1)
    return MapCodes(
        codes=rng.normal(size=(n, d)),
        labels=np.arange(n) % 3,
        xy=rng.normal(size=(n, 2)),
        method="umap",
        class_names=("zero", "one", "two\twith a tab"),
        images=rng.uniform(size=(n, 1, 6, 4)) if images else None,
    )


def test_codes_as_npz_read_back_without_pickle(tmp_path):
    m = some_codes()
    write_codes(tmp_path / "codes.npz", m)
    with np.load(tmp_path / "codes.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["codes"], m.codes)
        np.testing.assert_array_equal(z["labels"], m.labels)
        np.testing.assert_array_equal(z["xy"], m.xy)
        assert z["codes"].dtype == np.float32 and z["xy"].shape == (10, 2)
        assert str(z["method"]) == "umap" and list(z["class_names"])[0] == "zero"


def test_codes_as_csv_one_row_a_code(tmp_path):
    m = some_codes()
    write_codes(tmp_path / "codes.csv", m)
    with open(tmp_path / "codes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x", "y", "label", "class", "z0", "z1", "z2"]
    assert len(rows) == 11
    assert rows[2][2:4] == ["1", "one"]
    np.testing.assert_allclose([float(v) for v in rows[1][:2]], m.xy[0], rtol=1e-6)
    np.testing.assert_allclose([float(v) for v in rows[1][4:]], m.codes[0], rtol=1e-6)


def test_codes_refuse_another_extension_and_misfitting_arrays(tmp_path):
    with pytest.raises(ExportError, match=r"\.npz or \.csv"):
        write_codes(tmp_path / "codes.txt", some_codes())
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        MapCodes(np.zeros((4, 3)), np.zeros(4), np.zeros((3, 2)), "pca")


def test_projector_folder_in_add_embeddings_layout(tmp_path):
    m = some_codes(n=10, images=True)
    write_projector(tmp_path / "proj", m)
    sub = tmp_path / "proj" / "00000" / "default"
    tensors = [line.split("\t") for line in (sub / "tensors.tsv").read_text().splitlines()]
    assert len(tensors) == 10 and all(len(r) == 3 for r in tensors)
    np.testing.assert_allclose(np.array(tensors, dtype=float), m.codes, rtol=1e-6)
    meta = (sub / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert meta[0] == "label\tclass\tumap x\tumap y" and len(meta) == 11
    assert meta[3].split("\t")[:2] == ["2", "two with a tab"]  # a tab in a name is no column
    config = (tmp_path / "proj" / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "default:00000"' in config
    assert 'tensor_path: "00000/default/tensors.tsv"' in config
    assert 'metadata_path: "00000/default/metadata.tsv"' in config
    assert 'image_path: "00000/default/sprite.png"' in config
    assert config.count("single_image_dim: 4") == 1 and config.count("single_image_dim: 6") == 1
    from PIL import Image

    with Image.open(sub / "sprite.png") as im:
        assert im.size == (4 * 4, 4 * 6)  # ceil(sqrt(10)) = 4 cells a side, no padding
        px = np.asarray(im.convert("L"), dtype=float) / 255
    np.testing.assert_allclose(px[6:12, 0:4], m.images[4, 0], atol=1 / 255 + 1e-6)


def test_projector_without_images_has_no_sprite(tmp_path):
    write_projector(tmp_path / "p", some_codes())
    assert not (tmp_path / "p" / "00000" / "default" / "sprite.png").exists()
    assert "sprite" not in (tmp_path / "p" / "projector_config.pbtxt").read_text()


def test_a_sprite_too_large_for_the_projector_is_shrunk(monkeypatch):
    monkeypatch.setattr(codes_module, "SPRITE_MAX", 40)
    pixels, (w, h) = sprite(np.ones((50, 3, 10, 10)))  # 8 cells of 10 would be 80 px
    assert (w, h) == (5, 5) and pixels.shape == (40, 40, 3)


def test_scatter_picture_draws_each_class_in_its_colour():
    from trainer.data.imaging import class_rgb

    xy = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pic = scatter_picture(xy, [0, 1, -1], ("zero", "one"), title="t", size=100)
    assert pic.shape[0] == 100 + 28 + 8 and pic.shape[1] > 100 + 16
    px = np.rint(pic * 255).astype(int)
    colours = {tuple(c) for c in px.reshape(-1, 3)}
    assert class_rgb(0) in colours and class_rgb(1) in colours and (200, 200, 200) in colours
    many = scatter_picture(np.random.default_rng(0).normal(size=(60, 2)), np.arange(60), size=100)
    assert many.shape[0] == 100 + 8 + 8  # a legend of 60 classes is cut to what fits
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        scatter_picture(np.zeros((3, 3)), [0, 1, 2])
