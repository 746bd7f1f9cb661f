import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from trainer.losses import (
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_kl_per_dim,
    gaussian_log_likelihood,
    kl_weight,
    log_diag_normal,
    log_standard_normal,
)


def reference_kl(mu, logvar):
    """Float64 reference, accurate because expm1 - x cancels only ~1e-16 * x there."""
    mu, lv = mu.double(), logvar.double()
    return (0.5 * mu.square() + 0.5 * (torch.expm1(lv) - lv)).sum(-1)


def test_matches_torch_distributions_for_ordinary_values():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 7, generator=g, dtype=torch.float64) * 2
    lv = torch.randn(64, 7, generator=g, dtype=torch.float64) * 2
    q = Normal(mu, torch.exp(0.5 * lv))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, lv), expected, rtol=1e-12, atol=1e-12)
    assert gaussian_kl(mu, lv).shape == (64,)


@pytest.mark.parametrize("delta", [1e-5, 3e-6, 1e-6, 1e-7, -1e-5, -1e-7])
def test_sigma_near_one_has_no_cancellation(delta):
    # sigma = 1 + delta: the KL per dimension is ~delta^2, far below float32's epsilon.
    sigma = torch.tensor([[1.0 + delta]], dtype=torch.float64)
    lv64 = 2 * torch.log(sigma)
    lv = lv64.float()
    mu = torch.zeros_like(lv)
    got = gaussian_kl(mu, lv)
    ref = reference_kl(mu, lv)  # reference for the same float32 input
    assert got.dtype == torch.float32
    assert ref.item() > 0
    assert abs(got.item() - ref.item()) / ref.item() < 1e-5
    naive = 0.5 * (lv.exp() - 1 - lv).sum(-1)  # what the textbook formula gives in float32
    assert abs(naive.item() - ref.item()) / ref.item() > 1e-2  # shows the test has teeth


def test_extreme_means_stay_finite_and_accurate():
    mu = torch.tensor([[1e18, 0.0], [-3e18, 1.0]], dtype=torch.float32)
    lv = torch.zeros_like(mu)
    got = gaussian_kl(mu, lv)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), reference_kl(mu, lv), rtol=1e-6, atol=0)


def test_float16_large_mean_is_representable():
    # 0.5 * 300^2 = 45000 fits in float16 although 300^2 = 90000 does not.
    mu = torch.tensor([[300.0]], dtype=torch.float16)
    got = gaussian_kl(mu, torch.zeros_like(mu))
    assert got.dtype == torch.float16
    assert torch.isfinite(got).all()
    assert abs(got.item() - 45000.0) / 45000.0 < 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_keeps_dtype_and_matches_reference(dtype):
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(5, 3, generator=g).to(dtype)
    lv = (torch.randn(5, 3, generator=g) * 3).to(dtype)
    got = gaussian_kl(mu, lv)
    assert got.dtype == dtype
    tol = {torch.float16: 1e-2, torch.bfloat16: 3e-2, torch.float32: 1e-5, torch.float64: 1e-12}
    torch.testing.assert_close(got.double(), reference_kl(mu, lv), rtol=tol[dtype], atol=tol[dtype])


def test_extreme_logvars_and_gradients_are_finite():
    mu = torch.tensor([[0.0, 1.0, -2.0, 5.0]], requires_grad=True)
    lv = torch.tensor([[-60.0, 60.0, 1e-12, -1e-3]], requires_grad=True)
    kl = gaussian_kl(mu, lv)
    kl.sum().backward()
    assert torch.isfinite(kl).all()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(lv.grad).all()
    # d/dlv of 0.5 (e^lv - 1 - lv) = 0.5 (e^lv - 1)
    torch.testing.assert_close(lv.grad, 0.5 * torch.expm1(lv.detach()))
    torch.testing.assert_close(mu.grad, mu.detach())


def test_kl_is_zero_at_prior_and_per_dim_sums():
    mu, lv = torch.zeros(3, 4), torch.zeros(3, 4)
    assert torch.equal(gaussian_kl(mu, lv), torch.zeros(3))
    mu = torch.randn(3, 4)
    torch.testing.assert_close(gaussian_kl_per_dim(mu, lv).sum(-1), gaussian_kl(mu, lv))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))


def test_bernoulli_log_likelihood_matches_distribution():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 5, 5, generator=g) * 3
    x = (torch.rand(4, 1, 5, 5, generator=g) > 0.5).float()
    expected = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


def test_gaussian_log_likelihood_matches_distribution():
    g = torch.Generator().manual_seed(0)
    mean, x = torch.rand(4, 1, 3, 3, generator=g), torch.rand(4, 1, 3, 3, generator=g)
    log_std = torch.tensor(math.log(0.3))
    expected = Normal(mean, 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood(mean, x, log_std), expected)


def test_log_densities():
    z = torch.randn(6, 3)
    torch.testing.assert_close(log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    mu, lv = torch.randn(6, 3), torch.randn(6, 3)
    torch.testing.assert_close(
        log_diag_normal(z, mu, lv), Normal(mu, torch.exp(0.5 * lv)).log_prob(z).sum(-1)
    )


def test_kl_warmup_is_linear():
    assert kl_weight(2.0, 0, 100) == 0.0
    assert kl_weight(2.0, 50, 100) == 1.0
    assert kl_weight(2.0, 500, 100) == 2.0
    assert kl_weight(0.5, 3, 0) == 0.5
