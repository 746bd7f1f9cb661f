"""Evaluation: test ELBO, importance-sampled log p(x), prior Monte Carlo, KL per dimension.

Inputs are uint8 image tensors (N, C, H, W) as held by :class:`trainer.data.ImageData`; they
are converted to floats batch by batch on the model's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .losses import gaussian_kl_per_dim, log_diag_normal, log_standard_normal
from .models import LatentModel

Progress = Callable[[int, int], None]  # (done, total)


def to_float(x_u8: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] on ``device``."""
    x = x_u8.to(device) if device is not None else x_u8
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _device(model: LatentModel) -> torch.device:
    return next(model.parameters()).device


def _wide(dev: torch.device) -> torch.dtype:
    """The accumulation dtype: float64, except on Apple MPS, which has none."""
    return torch.float32 if dev.type == "mps" else torch.float64


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _labels(y: torch.Tensor | None, sl: slice, model: LatentModel, dev) -> torch.Tensor | None:
    if not model.num_classes:
        return None
    if y is None:
        raise ValueError("a conditional model needs labelled data")
    return y[sl].to(dev)


@dataclass(frozen=True)
class ElboStats:
    """Averages over a dataset, in nats per image."""

    nelbo: float
    recon: float
    kl: float
    kl_per_dim: np.ndarray  # (D,)
    n: int


@torch.no_grad()
def elbo_stats(
    model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> ElboStats:
    """Single-sample negative ELBO and its parts, averaged over all of ``x``."""
    was_training = model.training
    model.eval()
    dev = _device(model)
    d = model.latent_dim
    wide = _wide(dev)
    tot = torch.zeros(3, dtype=wide, device=dev)
    kl_dim = torch.zeros(d, dtype=wide, device=dev)
    for sl in _batches(len(x), batch_size):
        xb, yb = to_float(x[sl], dev), _labels(y, sl, model, dev)
        mu, logvar = model.encode(xb, yb)
        if logvar is None:
            z, kd = mu, torch.zeros_like(mu)
        else:
            z, kd = model.reparameterize(mu, logvar), gaussian_kl_per_dim(mu, logvar)
        recon = -model.log_likelihood(xb, model.decode(z, yb))
        kl = kd.sum(1)
        tot += torch.stack([(recon + kl).sum(), recon.sum(), kl.sum()]).to(wide)
        kl_dim += kd.sum(0).to(wide)
    model.train(was_training)
    n = len(x)
    nelbo, recon, kl = (tot / n).tolist()
    return ElboStats(nelbo, recon, kl, (kl_dim / n).cpu().numpy(), n)


def _check_variational(model: LatentModel, what: str) -> None:
    if not model.is_variational:
        raise ValueError(
            f"{what} needs a variational model: a plain autoencoder defines no q(z|x) or p(x)"
        )


def _log_px_given_z(
    model: LatentModel, xb: torch.Tensor, z: torch.Tensor, yb: torch.Tensor | None
) -> torch.Tensor:
    """log p(x_n | z_nm) for nb images and m latents each: z (nb, m, D) -> (nb, m).

    For a Bernoulli decoder, log p = x . l - sum softplus(l); the x . l term is a batched
    product against each image, so the images are never copied m times.
    """
    nb, m, _ = z.shape
    yf = None if yb is None else yb.repeat_interleave(m)
    out = model.decode(z.reshape(nb * m, -1), yf)  # (nb * m, C, H, W)
    if model.config.likelihood == "bernoulli":
        logits = out.view(nb, m, -1)  # (nb, m, P)
        xl = torch.bmm(logits, xb.reshape(nb, -1, 1)).squeeze(-1)  # (nb, m)
        return xl - F.softplus(logits).sum(-1)
    xf = xb.unsqueeze(1).expand(nb, m, *xb.shape[1:]).reshape(nb * m, *xb.shape[1:])
    return model.log_likelihood(xf, out).view(nb, m)


@torch.no_grad()
def _log_mean_exp(
    model: LatentModel,
    x: torch.Tensor,
    y: torch.Tensor | None,
    k: int,
    rows: int,
    progress: Progress | None,
    generator: torch.Generator | None,
    proposal: str,
) -> torch.Tensor:
    """log (1/k) sum_i w_i per image, with z_i from q(z|x) ("q") or from p(z) ("prior").

    A running log-sum-exp over chunks keeps memory bounded for any k: each decoder pass
    handles about ``rows`` (image, sample) pairs. Returns (N,) float64 on the CPU.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    was_training = model.training
    model.eval()
    dev = _device(model)
    kc = min(k, rows)  # samples per pass
    b = max(1, rows // kc)  # images per pass
    out = torch.empty(len(x), dtype=torch.float64)
    total, done = len(x) * k, 0
    for sl in _batches(len(x), b):
        xb, yb = to_float(x[sl], dev), _labels(y, sl, model, dev)
        nb = xb.shape[0]
        if proposal == "q":
            mu, logvar = model.encode(xb, yb)  # (nb, D)
            std = torch.exp(0.5 * logvar)
        acc = torch.full((nb,), -math.inf, dtype=_wide(dev), device=dev)
        for start in range(0, k, kc):
            m = min(kc, k - start)
            eps = torch.randn((m, nb, model.latent_dim), generator=generator).to(dev)
            if proposal == "q":
                z = (mu + std * eps).transpose(0, 1)  # (nb, m, D)
                log_w = (
                    _log_px_given_z(model, xb, z, yb)
                    + log_standard_normal(z)
                    - log_diag_normal(z, mu.unsqueeze(1), logvar.unsqueeze(1))
                )
            else:
                log_w = _log_px_given_z(model, xb, eps.transpose(0, 1), yb)
            # log_w: (nb, m)
            acc = torch.logaddexp(acc, torch.logsumexp(log_w.to(acc.dtype), dim=1))
            done += m * nb
            if progress:
                progress(done, total)
        out[sl] = (acc - math.log(k)).cpu().double()
    model.train(was_training)
    return out


def iw_log_likelihood(
    model: LatentModel,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 5000,
    rows: int = 16384,
    progress: Progress | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) with ``k`` samples from q(z|x) (Burda et al.).

    log p(x) ~= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x).

    With k = 1 this is the single-sample ELBO; it tightens towards log p(x) as k grows.
    Returns (N,) in nats (float64).
    """
    _check_variational(model, "the importance-sampled log-likelihood")
    return _log_mean_exp(model, x, y, k, rows, progress, generator, "q")


def prior_mc_log_likelihood(
    model: LatentModel,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 5000,
    rows: int = 16384,
    progress: Progress | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Naive Monte Carlo estimate log (1/k) sum_i p(x | z_i), z_i ~ p(z): (N,) float64.

    Unbiased for p(x) but with enormous variance: almost no prior sample explains a given
    image, so the estimate sits far below the importance-sampled one. Kept for comparison.
    """
    _check_variational(model, "the prior Monte Carlo log-likelihood")
    return _log_mean_exp(model, x, y, k, rows, progress, generator, "prior")


@torch.no_grad()
def posterior_means(
    model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 2000
) -> torch.Tensor:
    """E_q[z | x] for every image: (N, D) on the CPU (the AE's code itself)."""
    was_training = model.training
    model.eval()
    dev = _device(model)
    parts = [
        model.encode(to_float(x[sl], dev), _labels(y, sl, model, dev))[0].float().cpu()
        for sl in _batches(len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(parts)


def kl_per_dim(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None) -> np.ndarray:
    """Average KL(q(z_d | x) || p(z_d)) over the data, per latent dimension: (D,) nats."""
    _check_variational(model, "KL per dimension")
    return elbo_stats(model, x, y).kl_per_dim


def active_units(
    model: LatentModel, x: torch.Tensor, y: torch.Tensor | None = None, threshold: float = 0.01
) -> tuple[int, np.ndarray]:
    """Burda et al.'s active units: dimension d is active if Cov_x(E_q[z_d | x]) > threshold.

    Returns (number active, per-dimension variances (D,)).
    """
    mu = posterior_means(model, x, y).double()
    var = mu.var(dim=0, unbiased=True).numpy() if len(mu) > 1 else np.zeros(mu.shape[1])
    return int((var > threshold).sum()), var


FINAL_LOSS_SLACK_NATS = 5.0  # final_loss_warning: how much worse than the best is "far" ...
FINAL_LOSS_SLACK_SHARE = 0.05  # ... the larger of these nats and this share of |best|


def final_loss_warning(history, since_epoch: int = 0) -> str | None:
    """A one-line warning when a run ended far worse than it had been, else None.

    "Far" means a final test -ELBO above the run's best by more than the larger of 5 nats
    and 5% of |best|: a loss that jumped and never came back, as a learning rate that is
    too high makes it do (a Gaussian decoder at lr 100 ended at 778,354 nats). Noise from
    epoch to epoch stays well inside that. ``history`` is a :class:`~trainer.loop.History`
    or its list of epoch rows (``epoch``, ``test_nelbo``). Only the run's own epochs count,
    those after ``since_epoch`` (where a continued model's run began): an earlier run may
    have been measured on other data, whose numbers say nothing of this run's.
    """
    rows = getattr(history, "epochs", history) or []
    losses = [
        (float(r["test_nelbo"]), int(r["epoch"]))
        for r in rows
        if r.get("test_nelbo") is not None
        and math.isfinite(float(r["test_nelbo"]))
        and int(r["epoch"]) > since_epoch
    ]
    if len(losses) < 2:
        return None
    final, final_epoch = losses[-1]
    best, best_epoch = min(losses)  # the earliest of equal bests
    slack = max(FINAL_LOSS_SLACK_NATS, FINAL_LOSS_SLACK_SHARE * abs(best))
    if final <= best + slack:
        return None
    return (
        f"the final test -ELBO, {final:,.2f} nats after epoch {final_epoch}, is far worse than "
        f"the best of this run, {best:,.2f} after epoch {best_epoch}; the learning rate is "
        "probably too high: try a lower one"
    )


# progress of a whole evaluation: (fraction 0..1, what is being done); may raise to cancel
Report = Callable[[float, str], None]


def evaluate_model(
    model: LatentModel,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    iw_samples: int = 1000,
    prior_samples: int = 0,
    seed: int = 0,
    progress: Report | None = None,
) -> dict:
    """Everything ``latent-train evaluate`` and the window's Evaluate report, on ``x``.

    Test negative ELBO and its parts (one z per image); for a VAE also the active units, the
    KL of each dimension, the importance-sampled -log p(x) with ``iw_samples`` samples from
    q, and with ``prior_samples`` > 0 the naive prior Monte Carlo estimate. The random
    streams come from ``seed`` alone, so the same model, images and seed give the same
    numbers wherever this runs. ``progress(fraction, text)`` may raise to stop.
    """
    import time

    y = y if model.num_classes else None
    noise = model.noise
    model.noise = torch.Generator(device=_device(model)).manual_seed(seed)
    try:
        if progress:
            progress(0.0, "test ELBO")
        st = elbo_stats(model, x, y)
    finally:
        model.noise = noise
    res: dict = {
        "n_images": len(x),
        "test_nelbo": st.nelbo,
        "test_recon": st.recon,
        "test_kl": st.kl,
    }
    if not model.is_variational:
        return res
    res["active_units"] = active_units(model, x, y)[0]
    res["kl_per_dim"] = [round(float(v), 4) for v in st.kl_per_dim]
    gen = torch.Generator().manual_seed(seed)
    total = iw_samples + max(0, prior_samples)  # decoder passes per image, both phases

    def part(before: int, cost: int, what: str):
        if not progress:
            return None
        return lambda done, n: progress((before + cost * done / max(1, n)) / total, what)

    t0 = time.perf_counter()
    ll = iw_log_likelihood(
        model, x, y, k=iw_samples, generator=gen, progress=part(0, iw_samples, "log p(x)")
    )
    res["iw_samples"] = iw_samples
    res["test_nll_iw"] = float(-ll.mean())
    res["seconds_iw"] = time.perf_counter() - t0
    if prior_samples > 0:
        ll = prior_mc_log_likelihood(
            model,
            x,
            y,
            k=prior_samples,
            generator=gen,
            progress=part(iw_samples, prior_samples, "prior MC"),
        )
        res["prior_samples"] = prior_samples
        res["test_nll_prior_mc"] = float(-ll.mean())
    if progress:
        progress(1.0, "done")
    return res
