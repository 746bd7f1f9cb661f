import math

import numpy as np
import pytest
import torch

from trainer.config import TrainConfig
from trainer.evaluate import (
    active_units,
    elbo_stats,
    iw_log_likelihood,
    posterior_means,
    prior_mc_log_likelihood,
)
from trainer.loop import model_config_for, train


@pytest.fixture(scope="module")
def trained(shapes):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=2e-3, device="cpu")
    trainer, _ = train(model_config_for(shapes, latent_dim=6, hidden=128), shapes, cfg)
    trainer.model.eval()
    return trainer.model, shapes.test_x[:40]


def test_importance_sampling_tightens_the_bound(trained):
    model, x = trained
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    elbo = -torch.tensor([elbo_stats(model, x).nelbo])
    ll1 = iw_log_likelihood(model, x, k=1, generator=g).mean()
    ll200 = iw_log_likelihood(model, x, k=200, generator=g).mean()
    assert abs(ll1 - elbo.double()) < 3.0  # K = 1 is the single-sample ELBO
    assert ll200 > ll1 + 0.5  # more samples, tighter bound
    prior = prior_mc_log_likelihood(model, x, k=200, generator=g).mean()
    assert prior < ll200 - 5  # prior sampling is hopeless at this K


def test_chunking_does_not_change_the_estimate(trained):
    model, x = trained
    x = x[:10]
    a = iw_log_likelihood(model, x, k=500, rows=16384, generator=torch.Generator().manual_seed(1))
    b = iw_log_likelihood(model, x, k=500, rows=64, generator=torch.Generator().manual_seed(2))
    assert a.shape == b.shape == (10,)
    assert abs(a.mean() - b.mean()) < 2.0  # two independent estimates agree within MC noise
    seen = []
    iw_log_likelihood(model, x, k=100, rows=64, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (1000, 1000) and len(seen) > 5


def test_running_logsumexp_over_chunks_is_exact(trained):
    # The estimate is log mean exp(log w) over k samples, accumulated chunk by chunk: with
    # rows=3 each image's 7 samples come in chunks of 3, 3 and 1. Recompute it directly
    # from the same noise.
    model, x = trained
    x = x[:3]
    g1 = torch.Generator().manual_seed(5)
    got = iw_log_likelihood(model, x, k=7, rows=3, generator=g1)
    from trainer.evaluate import to_float
    from trainer.losses import log_diag_normal, log_standard_normal

    xf = to_float(x)
    mu, lv = model.encode(xf)
    g2 = torch.Generator().manual_seed(5)
    d = mu.shape[1]
    per_image = [
        torch.cat([torch.randn((m, 1, d), generator=g2) for m in (3, 3, 1)]) for _ in range(3)
    ]
    eps = torch.cat(per_image, dim=1)  # (7, 3, D)
    z = mu + torch.exp(0.5 * lv) * eps
    with torch.no_grad():
        ll = model.log_likelihood(xf.repeat(7, 1, 1, 1), model.decode(z.reshape(21, -1))).view(7, 3)
        lw = ll + log_standard_normal(z) - log_diag_normal(z, mu, lv)
    expected = torch.logsumexp(lw.double(), 0) - math.log(7)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_kl_per_dim_and_active_units(trained):
    model, x = trained
    st = elbo_stats(model, x)
    assert st.kl_per_dim.shape == (6,) and (st.kl_per_dim >= 0).all()
    assert abs(st.kl_per_dim.sum() - st.kl) < 1e-3 * max(1.0, st.kl)
    n, var = active_units(model, x)
    mu = posterior_means(model, x).double().numpy()
    np.testing.assert_allclose(var, mu.var(axis=0, ddof=1), rtol=1e-6)
    assert n == int((var > 0.01).sum()) and 1 <= n <= 6


def test_autoencoder_has_no_likelihood(shapes):
    _, _ = None, None
    from trainer.models import build_model

    ae = build_model(model_config_for(shapes, model="ae", latent_dim=2, hidden=16))
    with pytest.raises(ValueError, match="plain autoencoder"):
        iw_log_likelihood(ae, shapes.test_x[:2], k=2)
