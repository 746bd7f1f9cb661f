"""Nearest training images of a point of the latent space (trainer.neighbours) and its
command, ``latent-train neighbours``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.__main__ import main
from trainer.data import load_data
from trainer.examples import example_path
from trainer.export import save_neighbours
from trainer.loop import model_config_for
from trainer.models import build_model
from trainer.neighbours import Cancelled, NeighbourIndex, index_key, search


@pytest.fixture(scope="module")
def vae(shapes):
    torch.manual_seed(0)
    return build_model(model_config_for(shapes, latent_dim=4, hidden=32)).eval()


@pytest.fixture(scope="module")
def index(vae, shapes):
    return NeighbourIndex.build(vae, shapes, batch=256)


def _same_image(index, row, i) -> bool:
    return bool(torch.equal(index.images[int(row)], index.images[int(i)]))


def test_the_nearest_training_image_of_a_training_images_own_code_is_that_image(index, shapes):
    assert index.source == "train" and len(index) == len(shapes.train_x)
    for i in (0, 17, 500, len(index) - 1):
        found = index.query(index.codes[i], k=5)
        assert found.space == "latent" and found.source == "train"
        assert found.distances[0] == 0.0
        assert found.rows[0] == i or _same_image(index, found.rows[0], i)  # (a duplicate)
        assert np.all(np.diff(found.distances) >= 0)  # nearest first
        assert found.distances[1] > 0


def test_pixel_search_finds_a_training_image_itself_at_distance_zero(index, shapes):
    for i in (3, 250, 900):
        found = index.query_pixels(shapes.train_x[i], k=4)  # uint8: divided by 255
        assert found.space == "pixels" and found.distances[0] == 0.0
        assert found.rows[0] == i or _same_image(index, found.rows[0], i)
        assert np.all(np.diff(found.distances) >= 0)


def test_the_searches_agree_with_a_brute_force_search(index, shapes):
    z = torch.randn(index.codes.shape[1], generator=torch.Generator().manual_seed(1))
    found = index.query(z, k=6)
    exact = (index.codes - z).double().norm(dim=1).numpy()
    np.testing.assert_allclose(found.distances, np.sort(exact)[:6], rtol=1e-6)
    img = torch.rand(shapes.image_shape, generator=torch.Generator().manual_seed(2))
    found = index.query_pixels(img, k=6)
    px = shapes.train_x.reshape(len(shapes.train_x), -1).double() / 255
    exact = (px - img.reshape(-1).double()).norm(dim=1).numpy()
    np.testing.assert_allclose(found.distances, np.sort(exact)[:6], rtol=1e-6)
    batch = index.query(torch.stack([z, index.codes[7]]), k=3)  # a batch: one result each
    assert len(batch) == 2 and batch[1].distances[0] == 0.0


def test_a_conditional_search_keeps_to_the_class(shapes):
    torch.manual_seed(0)
    model = build_model(model_config_for(shapes, model="cvae", latent_dim=3, hidden=32)).eval()
    index = NeighbourIndex.build(model, shapes)
    for c in range(shapes.num_classes):
        found = index.query(torch.zeros(3), k=5, cls=c)
        assert found.cls == c and found.searched == int((shapes.train_y == c).sum())
        assert (index.labels[found.rows] == c).all()
        both = search(model, index, torch.zeros(3), k=4, cls=c)
        assert (index.labels[both.pixels.rows] == c).all() and both.cls == c
    with pytest.raises(ValueError, match="needs a class"):
        search(model, index, torch.zeros(3), k=4)
    with pytest.raises(ValueError, match="only .* of class 0"):
        index.query(torch.zeros(3), k=index.count(0) + 1, cls=0)


def test_data_without_training_images_is_searched_in_its_test_images_and_says_so():
    from trainer.checkpoint import load_checkpoint

    ck = load_checkpoint(example_path("mnist-vae-2d"))
    data = load_data(ck.data_spec)
    assert len(data.train_x) == 0
    index = NeighbourIndex.build(ck.model, data)
    assert index.source == "test" and index.where == "test images" and len(index) == 2000
    found = index.query(index.codes[12], k=3)
    assert found.source == "test" and found.rows[0] == 12 and found.distances[0] == 0.0


def test_a_users_own_model_is_searched_through_the_same_protocol(shapes):
    from torch import nn

    from trainer.foreign import ForeignModel

    class Mine(nn.Module):  # a posterior-mean-only encoder, flat outputs
        def __init__(self):
            super().__init__()
            self.enc, self.dec = nn.Linear(784, 3), nn.Linear(3, 784)

        def encode(self, x):
            return self.enc(x.flatten(1))

        def decode(self, z):
            return self.dec(z)

    torch.manual_seed(0)
    net = Mine()
    model = ForeignModel(net.encode, net.decode, latent_dim=3, image_shape=(1, 28, 28))
    index = NeighbourIndex.build(model, shapes, batch=500)
    found = index.query(index.codes[40], k=3)
    assert found.distances[0] == 0.0 and _same_image(index, found.rows[0], 40)
    both = search(model, index, index.codes[40], k=3)
    assert both.image.shape == (1, 28, 28) and len(both.pixels.rows) == 3


def test_progress_cancel_and_the_key(vae, shapes):
    seen = []
    NeighbourIndex.build(vae, shapes, batch=300, progress=lambda f, t: seen.append(f))
    assert seen[-1] == 1.0 and len(seen) == -(-len(shapes.train_x) // 300)
    with pytest.raises(Cancelled):
        NeighbourIndex.build(vae, shapes, cancelled=lambda: True)
    index = NeighbourIndex.build(vae, shapes, batch=2000)
    assert index.fits(index_key(vae, shapes))
    with torch.no_grad():
        next(vae.parameters()).add_(0.0)  # new weights (an in-place write)
    assert not index.fits(index_key(vae, shapes))
    assert index.nbytes == len(index) * (4 * 4 + 2 * 28 * 28 + 4 + 4 + 8)


def test_the_picture_has_the_query_and_two_rows_of_neighbours(vae, index, tmp_path):
    found = search(vae, index, index.codes[0], k=5)
    path = save_neighbours(found, index, tmp_path / "nn.png", scale=2)
    with Image.open(path) as im:
        w, h = im.size
    assert w > 6 * 28 * 2 and h > 2 * 28 * 2  # six images across, two rows, captions


# -- the command ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cvae_ck(tmp_path_factory):
    out = tmp_path_factory.mktemp("nb")
    code = main(
        ["train", "--dataset", "shapes", "--shapes-count", "200", "--model", "cvae",
         "--latent-dim", "3", "--hidden", "16", "--epochs", "1", "--device", "cpu",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    return str(out / "checkpoint.safetensors")


def test_the_command_prints_both_searches_and_writes_the_picture(cvae_ck, tmp_path, capsys):
    out = tmp_path / "nn.png"
    code = main(
        ["neighbours", "--checkpoint", cvae_ck, "--index", "3", "--split", "train", "--k", "4",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr()
    assert "nearest training images in latent space" in text.out
    assert "nearest training images in pixel space" in text.out
    assert "of class" in text.out and "keeps to class" in text.err
    first = [ln.split() for ln in text.out.splitlines() if ln.strip().startswith("1 ")]
    assert first[0][1] == "3" and float(first[0][3]) == 0.0  # its own code: itself
    with Image.open(out) as im:
        assert im.size[0] > 5 * 28 * 3
    assert main(["neighbours", "--checkpoint", cvae_ck, "--sample", "--seed", "2"]) == 0
    assert main(["neighbours", "--checkpoint", cvae_ck, "--z", "0,0.5,-1", "--class", "1"]) == 0


def test_the_command_on_an_example_says_it_searches_test_images(capsys):
    ck = str(example_path("mnist-vae-2d"))
    assert main(["neighbours", "--checkpoint", ck, "--index", "0", "--k", "2"]) == 0
    text = capsys.readouterr()
    assert "nearest test images in latent space" in text.out
    assert "no training images; searching its 2,000 test images" in text.err


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--z", "1,2"], "--z has 2 values; the model's latent has 3"),
        (["--z", "1,nan,2"], "--z"),
        (["--z", "1,1e300,2"], "--z"),
        (["--z", "1,,2"], "--z"),
        (["--index", "400"], "--index 400: the test set has 40 images"),
        (["--index", "0", "--k", "64"], "--k 64: there are only"),
        (["--index", "0", "--k", "65"], "--k"),
        (["--sample", "--split", "train"], "--split applies to --index only"),
        (["--z", "0,0,0", "--seed", "3"], "--seed applies to --sample only"),
        (["--index", "0", "--sample"], "not allowed with argument"),
        ([], "one of the arguments --z --index --sample is required"),
        (["--sample", "--class", "9"], "class index 9"),
        (["--sample", "--dataset", "shapes", "--images", "x.gz"], "--images does not apply"),
    ],
)
def test_the_commands_mistakes_are_one_line(cvae_ck, argv, said, capsys):
    try:
        code = main(["neighbours", "--checkpoint", cvae_ck, *argv])
    except SystemExit as e:  # refused by the parser
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and said in err[0], err
