"""trainer.foreign: a user's model behind the protocol the views, the evaluator and the loop use."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.checkpoint import save_checkpoint
from trainer.config import TrainConfig
from trainer.evaluate import elbo_stats, evaluate_model
from trainer.foreign import ForeignModel, ForeignModelError, check_model
from trainer.loop import Trainer
from trainer.loop.fused import supports
from trainer.losses import bernoulli_log_likelihood, gaussian_log_likelihood


class TinyVAE(nn.Module):
    def __init__(self, d: int = 2, sigmoid: bool = False):
        super().__init__()
        self.enc = nn.Linear(784, 2 * d)
        self.dec = nn.Linear(d, 784)
        self.sigmoid = sigmoid

    def encode(self, x):
        return self.enc(x.flatten(1)).chunk(2, dim=1)

    def decode(self, z):
        out = self.dec(z)
        return torch.sigmoid(out) if self.sigmoid else out


def wrap(net: nn.Module, **kw) -> ForeignModel:
    return ForeignModel(net.encode, net.decode, latent_dim=2, image_shape=(1, 28, 28), **kw)


def test_a_vae_answers_the_protocol_and_flat_outputs_take_the_images_shape():
    m = wrap(TinyVAE())
    assert m.is_variational and m.latent_dim == 2 and m.num_classes == 0
    assert m.config.model == "vae" and m.config.likelihood == "bernoulli"
    assert m.config.conditional is False and m.config.n_pixels == 784
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 2)
    out = m.decode(mu)
    assert out.shape == (5, 1, 28, 28)  # flat (5, 784) reshaped
    torch.testing.assert_close(m.log_likelihood(x, out), bernoulli_log_likelihood(out, x))
    assert m.evaluate_problem() is None and m.train_problem() is None


def test_probabilities_are_kept_as_their_logits():
    net = TinyVAE(sigmoid=True)
    m = wrap(net, output="probs")
    z = torch.randn(3, 2)
    torch.testing.assert_close(
        m.decode_image(z), net.decode(z).view(3, 1, 28, 28), atol=1e-5, rtol=0
    )
    x = torch.rand(3, 1, 28, 28)
    p = net.decode(z).view(3, 1, 28, 28)
    bce = -F.binary_cross_entropy(p, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(m.log_likelihood(x, m.decode(z)), bce, atol=1e-3, rtol=1e-4)


def test_a_gaussian_mean_has_a_likelihood_only_with_its_std():
    net = TinyVAE()
    m = wrap(net, output="mean")
    assert "std" in m.evaluate_problem() and "explore-only" in m.train_problem()
    g = wrap(net, output="mean", std=0.5)
    assert g.evaluate_problem() is None and g.config.gaussian_std == 0.5
    x, z = torch.rand(2, 1, 28, 28), torch.randn(2, 2)
    with torch.no_grad():
        out = g.decode(z)
    want = gaussian_log_likelihood(out, x, torch.tensor(math.log(0.5)))
    torch.testing.assert_close(g.log_likelihood(x, out), want)
    assert float(g.mean_image(out).min()) >= 0 and float(g.mean_image(out).max()) <= 1


def test_an_autoencoder_of_functions_has_no_elbo_and_nothing_to_train():
    w = torch.randn(784, 3)
    m = ForeignModel(
        lambda x: x.flatten(1) @ w, lambda z: z @ w.T, latent_dim=3, image_shape=(1, 28, 28)
    )
    assert not m.is_variational and m.config.model == "ae"
    assert "no logvar" in m.evaluate_problem()
    assert "explore-only" in m.train_problem()
    x = torch.rand(4, 1, 28, 28)
    assert m(x).shape == (4, 1, 28, 28)


def test_what_a_foreign_model_cannot_give_is_refused_clearly(tmp_path):
    m = wrap(TinyVAE())
    assert not supports(m)  # the fused step is for the project's MLP models only
    with pytest.raises(ForeignModelError, match="hidden size"):
        m.config.hidden  # noqa: B018
    with pytest.raises(ForeignModelError, match="torch.save"):
        save_checkpoint(tmp_path / "m.safetensors", m, TrainConfig())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"latent_dim": 3}, "codes of 2 values"),
        ({"output": "softmax"}, "output must be"),
        ({"std": 0.1}, "output='mean'"),
        ({"image_shape": (2, 28, 28)}, "1 or 3 channels"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_settings_that_do_not_fit_are_refused(kw, match):
    net = TinyVAE()
    args = dict(latent_dim=2, image_shape=(1, 28, 28)) | kw
    with pytest.raises(ForeignModelError, match=match):
        ForeignModel(net.encode, net.decode, **args)


def test_check_model_names_what_does_not_fit():
    x = torch.rand(8, 1, 28, 28)
    check_model(wrap(TinyVAE()), x)
    check_model(wrap(TinyVAE()), (x * 255).to(torch.uint8))
    with pytest.raises(ForeignModelError, match=r"shape \(N, 1, 28, 28\)"):
        check_model(wrap(TinyVAE()), torch.rand(8, 1, 32, 32))
    bad = TinyVAE()
    with torch.no_grad():
        bad.dec.bias.fill_(float("nan"))
    with pytest.raises(ForeignModelError, match="decode gives NaN"):
        check_model(wrap(bad), x)
    with pytest.raises(ForeignModelError, match="output='logits'"):
        check_model(wrap(TinyVAE(), output="probs"), x)

    class Cond(TinyVAE):
        def encode(self, x, y):
            return super().encode(x)

        def decode(self, z, y):
            return super().decode(z)

    c = wrap(Cond(), num_classes=3)
    with pytest.raises(ForeignModelError, match="give labels="):
        check_model(c, x)
    check_model(c, x, torch.zeros(8, dtype=torch.long))

    def decode(z):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    failing = ForeignModel(
        lambda x: x.flatten(1)[:, :2], decode, latent_dim=2, image_shape=(1, 28, 28)
    )
    with pytest.raises(ForeignModelError, match="your model's decode failed: RuntimeError: mat1"):
        check_model(failing, x)


def test_the_loop_trains_a_users_vae_by_autograd_and_evaluate_measures_it(shapes):
    torch.manual_seed(0)
    m = wrap(TinyVAE())
    before = elbo_stats(m, shapes.test_x).nelbo
    t = Trainer(m, shapes, TrainConfig(epochs=3, batch_size=64, lr=3e-3, device="cpu"))
    assert t.fused_step is None
    t.fit()
    after = elbo_stats(m, shapes.test_x).nelbo
    assert after < before - 50
    r = evaluate_model(m, shapes.test_x[:50], None, iw_samples=4, prior_samples=4)
    # the importance-sampled bound is at least as tight as the ELBO (in expectation)
    assert math.isfinite(r["test_nll_iw"]) and r["test_nll_iw"] < r["test_nelbo"] + 5
