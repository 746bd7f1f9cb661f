import math
from statistics import NormalDist

import pytest
import torch

from trainer.config import ModelConfig
from trainer.latent import (
    decode_batch,
    grid_latents,
    inverse_cdf_grid,
    lerp,
    sample_prior,
    slerp,
    traverse,
)
from trainer.models import build_model


@pytest.mark.parametrize("n", [1, 2, 5, 20])
def test_inverse_cdf_grid_matches_the_paper(n):
    g = inverse_cdf_grid(n)
    assert g.shape == (n, n, 2)
    expected = torch.tensor([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    torch.testing.assert_close(g[:, 0, 0], expected)  # first coordinate runs along rows
    torch.testing.assert_close(g[0, :, 1], expected)  # second along columns
    assert torch.equal(g[:, :, 0], g[:, :1, 0].expand(n, n))
    torch.testing.assert_close(g, -g.flip(0).flip(1))  # symmetric about the prior's mean
    assert torch.isfinite(g).all()


def test_grid_spacing_is_even_in_probability_not_in_z():
    z = inverse_cdf_grid(10)[:, 0, 0]
    gaps = z.diff()
    assert gaps[0] > gaps[4]  # wider steps in the tails
    p = torch.special.ndtr(z)
    torch.testing.assert_close(p.diff(), torch.full((9,), 0.1), atol=1e-6, rtol=0)


def test_grid_latents_places_grid_on_two_dims_and_keeps_the_rest():
    base = torch.tensor([0.5, -1.0, 2.0, 0.0])
    z = grid_latents(3, (2, 0), base)
    assert z.shape == (9, 4)
    grid = z.view(3, 3, 4)
    v = inverse_cdf_grid(3)[:, 0, 0]
    torch.testing.assert_close(grid[0, :, 2], v)  # columns: dim 2 increasing
    torch.testing.assert_close(grid[:, 0, 0], v.flip(0))  # rows: dim 0, top = largest
    assert torch.equal(grid[..., 1], torch.full((3, 3), -1.0))
    assert torch.equal(grid[..., 3], torch.zeros(3, 3))
    with pytest.raises(ValueError, match="outside"):
        grid_latents(3, (0, 4), base)


def test_traverse_lerp_slerp():
    base = torch.tensor([1.0, 2.0, 3.0])
    t = traverse(base, 1, [-1.0, 0.0, 1.0])
    assert t[:, 1].tolist() == [-1.0, 0.0, 1.0] and t[:, 0].tolist() == [1.0] * 3
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    line = lerp(a, b, 5)
    assert torch.equal(line[0], a) and torch.equal(line[-1], b)
    torch.testing.assert_close(line[2], torch.tensor([0.5, 0.5]))
    arc = slerp(a, b, 5)
    torch.testing.assert_close(arc[0], a)
    torch.testing.assert_close(arc[-1], b)
    torch.testing.assert_close(arc.norm(dim=1), torch.ones(5))  # stays on the unit circle
    torch.testing.assert_close(arc[2], torch.tensor([math.sqrt(0.5)] * 2))
    torch.testing.assert_close(slerp(a, 2 * a, 3), lerp(a, 2 * a, 3))  # parallel: falls back
    with pytest.raises(ValueError):
        lerp(a, b, 1)


def test_decode_batch_and_prior_samples():
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=2, hidden=16))
    imgs = decode_batch(model, torch.randn(400, 2))
    assert imgs.shape == (400, 1, 28, 28) and imgs.min() >= 0 and imgs.max() <= 1
    g = torch.Generator().manual_seed(0)
    s = sample_prior(model, 8, mode="sample", generator=g)
    assert set(s.unique().tolist()) <= {0.0, 1.0}  # Bernoulli pixels
    assert sample_prior(model, 8).shape == (8, 1, 28, 28)


def test_decode_batch_for_a_conditional_model():
    model = build_model(ModelConfig(model="cvae", num_classes=3, latent_dim=2, hidden=16))
    z = torch.zeros(3, 2)
    imgs = decode_batch(model, z, torch.arange(3))
    assert not torch.allclose(imgs[0], imgs[2])
    with pytest.raises(ValueError, match="needs a class"):
        decode_batch(model, z)
    with pytest.raises(ValueError, match="class must be"):
        decode_batch(model, z, 5)
