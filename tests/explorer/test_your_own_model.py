"""explore(): the window on a model written in the user's own code, the way people write them.

Four user models: a plain MLP VAE whose encode returns a (mu, logvar) tuple; a conv VAE whose
methods are named otherwise (wired with encode= / decode=, its decoder ending in a sigmoid); a
conditional VAE taking integer labels; an autoencoder giving posterior means only. Each is
opened through explore(..., block=False) and every view is checked on it."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PySide6.QtCore import QSettings
from torch import nn

from explorer import api, explore
from trainer.data import DataSpec, load_data
from trainer.evaluate import elbo_stats
from trainer.foreign import ForeignModelError


class MLPVAE(nn.Module):  # pytorch/examples' VAE, smaller
    def __init__(self, d: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(784, 200)
        self.fc21, self.fc22 = nn.Linear(200, d), nn.Linear(200, d)
        self.fc3, self.fc4 = nn.Linear(d, 200), nn.Linear(200, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))  # logits, flat


class ConvVAE(nn.Module):  # methods named otherwise; probabilities out
    def __init__(self, d: int = 3):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU()
        )
        self.head = nn.Linear(32 * 7 * 7, 2 * d)
        self.fc = nn.Linear(d, 32 * 7 * 7)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1)
        )

    def posterior(self, images):
        mu, logvar = self.head(self.enc(images).flatten(1)).chunk(2, dim=1)
        return mu, logvar

    def generate(self, codes):
        return torch.sigmoid(self.dec(F.relu(self.fc(codes)).view(-1, 32, 7, 7)))


class CVAE(nn.Module):  # encode(x, y), decode(z, y) with integer labels
    def __init__(self, classes: int, d: int = 2):
        super().__init__()
        self.classes = classes
        self.enc = nn.Linear(784 + classes, 128)
        self.mu, self.logvar = nn.Linear(128, d), nn.Linear(128, d)
        self.dec = nn.Sequential(nn.Linear(d + classes, 128), nn.ReLU(), nn.Linear(128, 784))

    def encode(self, x, y):
        h = F.relu(self.enc(torch.cat([x.flatten(1), F.one_hot(y, self.classes).float()], 1)))
        return self.mu(h), self.logvar(h)

    def decode(self, z, y):
        out = self.dec(torch.cat([z, F.one_hot(y, self.classes).float()], 1))
        return out.view(-1, 1, 28, 28)


class AE(nn.Module):  # posterior means only
    def __init__(self, d: int = 2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, d))
        self.decoder = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 784))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)


@pytest.fixture(scope="module")
def shapes():
    """Images with labels, made here (no download): the built-in shapes."""
    data = load_data(DataSpec(source="shapes", shapes_count=600))
    x = torch.cat([data.train_x, data.test_x]).float() / 255  # float in [0, 1]
    y = torch.cat([data.train_y, data.test_y])
    return x, y, data.class_names


def _open(qtbot, tmp_path, model, images, **kw):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    settings.setValue("train/epochs", 3)
    settings.setValue("train/source", "shapes")
    kw.setdefault("block", False)
    win = explore(model, images, settings=settings, **kw)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: not win.busy, timeout=20000)
    return win


def _views(qtbot, win, d: int) -> None:
    """The map, the manifold, the sliders, the traversals and the posterior on it."""
    s = win.session
    assert s.latent_dim == d and s.model.latent_dim == d
    assert s.refresh_test_latents(force=True)
    assert s.test_latents.shape == (len(s.test_index), d)
    assert win.map.point_count() == len(s.test_index)
    assert win.manifold.refresh(force=True)
    images = win.manifold.images
    assert images.shape[1:] == (1, 28, 28)
    assert not np.allclose(images[0], images[-1], atol=1e-4)  # the grid sweeps the plane
    assert len(win.sliders.rows) == d
    before = win.preview.array.copy()
    win.sliders.set_value(0, 2.5)
    assert not np.allclose(before, win.preview.array, atol=1e-5)  # z moved, image changed
    win.tabs.setCurrentIndex(5)
    assert win.traversals.refresh(force=True)
    assert sorted(win.traversals.traversal.dims) == list(range(d))
    win.tabs.setCurrentIndex(6)
    assert win.posterior.refresh(force=True)


def _elbo(win) -> float:
    s = win.session
    y = s.data.test_y if s.conditional else None
    return -float(elbo_stats(s.model, s.data.test_x, y).nelbo)


def _train(qtbot, win) -> None:
    assert win.start_training()
    qtbot.waitUntil(lambda: not win.busy, timeout=120000)
    assert win.run.outcomes[-1].error is None


def test_a_plain_mlp_vae_returning_a_tuple(qtbot, tmp_path, shapes):
    x, y, names = shapes
    user = MLPVAE()
    win = _open(qtbot, tmp_path, user, x, labels=y, class_names=names)
    s = win.session
    assert s.model.is_variational and not s.conditional
    assert s.data.name == "your images" and len(s.data.test_x) == 120
    assert win.status_model.text() == (
        "VAE · your own network · 4-D latent · Bernoulli decoder · as your code made it"
    )
    _views(qtbot, win, 4)
    assert s.kl_per_dim is not None and len(s.kl_per_dim) == 4  # sliders can order by KL
    assert win.sliders.order_box.isEnabled()
    assert win.eval_controls.button.isEnabled()
    before = _elbo(win)
    _train(qtbot, win)
    after = _elbo(win)
    assert after > before + 20  # the user's own network learnt, by autograd
    assert s.step > 0 and s.history.epochs
    # the user's object holds the trained weights
    with torch.no_grad():
        mu, _ = user.encode(s.data.test_x[:4].float() / 255)
    np.testing.assert_allclose(mu.numpy(), s.encode(s.data.test_x[:4]), atol=1e-5)
    # and can go on training in the user's own code: the window froze none of its weights
    assert all(p.requires_grad for p in user.parameters())
    assert not s.unsaved  # nothing to save: the weights live in the user's model
    assert win.projects.current_id is None  # nor a run of the project, half-kept
    assert "could not be kept" not in win.banner.text
    # Evaluate measures it: the ELBO and -log p(x)
    win.eval_controls.k.setValue(4)
    assert win.evaluate()
    qtbot.waitUntil(lambda: win.evaluation.result is not None, timeout=60000)
    assert "log p(x)" in win.eval_controls.result.text()


def test_a_conv_vae_wired_with_encode_and_decode(qtbot, tmp_path, shapes):
    x, y, _ = shapes
    net = ConvVAE()
    win = _open(
        qtbot, tmp_path, None, x[:, 0], encode=net.posterior, decode=net.generate, output="probs"
    )  # (N, H, W) images, no labels
    s = win.session
    assert s.model.config.output == "probs" and s.data.num_classes == 0
    _views(qtbot, win, 3)
    # probabilities are shown as they are
    z = torch.zeros(1, 3)
    with torch.no_grad():
        np.testing.assert_allclose(s.decode(z)[0], net.generate(z)[0].numpy(), atol=1e-4)
    before = _elbo(win)
    _train(qtbot, win)
    assert _elbo(win) > before + 10


def test_a_conditional_vae(qtbot, tmp_path, shapes):
    x, y, names = shapes
    dataset = torch.utils.data.TensorDataset(x, y)  # a Dataset of (x, y)
    win = _open(qtbot, tmp_path, CVAE(len(names)), dataset, class_names=names)
    s = win.session
    assert s.class_names == names and s.data.num_classes == len(names)
    assert s.conditional and s.model.num_classes == len(names)
    _views(qtbot, win, 2)
    # the class row draws z under every class, and the class picker changes the image
    win.tabs.setCurrentIndex(4)
    assert win.class_row.refresh(force=True)
    rows = win.class_row.images
    assert len(rows) == len(names) and not np.allclose(rows[0], rows[1], atol=1e-5)
    before = _elbo(win)
    _train(qtbot, win)
    assert _elbo(win) > before + 10


def test_a_posterior_mean_only_autoencoder(qtbot, tmp_path, shapes):
    x, y, names = shapes
    win = _open(qtbot, tmp_path, AE(), x.numpy(), labels=y.numpy())
    s = win.session
    assert not s.model.is_variational and s.short_model() == "2-D autoencoder"
    _views(qtbot, win, 2)
    assert "codes" in win.posterior.note.text()  # shown as an autoencoder's codes
    assert s.kl_per_dim is None and not win.sliders.order_box.isEnabled()
    # Evaluate is disabled, and says why
    assert not win.eval_controls.button.isEnabled()
    assert "no logvar" in win.eval_controls.result.text()
    assert not win.evaluate()
    # Train says it is explore-only
    assert not win.start_training()
    assert "explore-only" in win.banner.text
    assert s.step == 0
    # Save says that a model of one's own is saved by its owner
    assert win.save_checkpoint(tmp_path / "ae") is None
    assert "torch.save(model.state_dict()" in win.banner.text
    assert not list(tmp_path.glob("ae*"))


def test_mistakes_are_said_before_the_window_opens(qtbot, shapes):
    x, y, names = shapes
    with pytest.raises(ForeignModelError, match="give labels="):
        explore(CVAE(len(names)), x, block=False)
    with pytest.raises(ForeignModelError, match="decode returns shape"):
        net = MLPVAE()
        explore(None, x, encode=net.encode, decode=lambda z: net.decode(z)[:, :100], block=False)

    class Broken(MLPVAE):
        def encode(self, x):
            mu, logvar = super().encode(x)
            return mu * float("nan"), logvar

    with pytest.raises(ForeignModelError, match="NaN"):
        explore(Broken(), x, block=False)
    with pytest.raises(ForeignModelError, match="output='logits'"):
        explore(MLPVAE(), x, output="probs", block=False)


def test_in_ipython_with_a_qt_loop_it_returns_at_once(qtbot, tmp_path, shapes, monkeypatch):
    """As napari does: the Qt event loop is started for IPython, and the kernel stays usable."""
    assert not api._in_ipython_loop()  # a script: explore blocks until the window closes

    class Shell:
        active_eventloop = None

        def enable_gui(self, gui):
            self.active_eventloop = gui

    shell = Shell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    x, _, _ = shapes
    win = _open(qtbot, tmp_path, AE(), x, block=None)  # (it would block here otherwise)
    assert shell.active_eventloop == "qt" and win.isVisible()
