"""A hand-derived training step for MLP models with a Bernoulli decoder.

With batches of 128 small images, an autograd step spends more time in bookkeeping (graph
building, ~150 small tensor ops, allocations) than in its six matrix products. This step
computes the same loss and gradients with the backward pass written out by hand, so each
step is the matrix products plus a few fused element-wise passes. ``tests/trainer`` checks
its gradients against autograd's.

Shapes: B batch, P pixels, H hidden, D latent, K classes (0 if unconditional).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import LatentModel


def supports(model: LatentModel) -> bool:
    c = model.config
    return c.arch == "mlp" and c.likelihood == "bernoulli"


class FusedStep:
    """Computes the loss and writes ``.grad`` of every parameter of an MLP Bernoulli model."""

    def __init__(self, model: LatentModel):
        if not supports(model):
            raise ValueError("the fused step handles MLP models with a Bernoulli decoder only")
        self.model = model
        enc, dec = model.encoder, model.decoder
        self.w1, self.b1 = enc.fc.weight, enc.fc.bias  # (H, P+K), (H,)
        self.w2, self.b2 = enc.head.weight, enc.head.bias  # (S, H), S = 2D or D (AE)
        self.w3, self.b3 = dec.fc.weight, dec.fc.bias  # (H, D+K)
        self.w4, self.b4 = dec.out.weight, dec.out.bias  # (P, H)
        self.params = [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3, self.w4, self.b4]
        self.variational = model.is_variational
        self.d = model.latent_dim
        self.k = model.num_classes
        self._ws: dict[int, dict[str, torch.Tensor]] = {}

    def _buffers(self, b: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        # Fresh multi-hundred-kB tensors every step cost page faults that take as long as
        # the arithmetic; the step writes into buffers kept per batch size instead.
        ws = self._ws.get(b)
        if ws is None:
            h, p = self.w1.shape[0], self.w4.shape[0]
            e = lambda *shape: like.new_empty(shape)  # noqa: E731
            ws = dict(
                h1=e(b, h),
                h2=e(b, h),
                s=e(b, self.w2.shape[0]),
                logits=e(b, p),
                g_logits=e(b, p),
                g_h2=e(b, h),
                g_h1=e(b, h),
                sp=e(b, p),
                relu=e(b, p),
            )
            self._ws = {b: ws, **self._ws}
        for prm in self.params:
            if prm.grad is None or prm.grad.shape != prm.shape:
                prm.grad = torch.zeros_like(prm)
        return ws

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, beta: float) -> torch.Tensor:
        """One forward and backward pass on x (B, C, H, W) in [0, 1].

        Returns a (3,) tensor on the device: summed reconstruction, summed KL, summed loss.
        """
        b = x.shape[0]
        d, k = self.d, self.k
        ws = self._buffers(b, x)
        xf = x.reshape(b, -1)  # (B, P)
        onehot = F.one_hot(y, k).to(xf.dtype) if k else None
        u1 = xf if onehot is None else torch.cat([xf, onehot], 1)  # (B, P+K)
        # -- forward --
        h1 = torch.addmm(self.b1, u1, self.w1.t(), out=ws["h1"]).clamp_(min=0)  # (B, H)
        s = torch.addmm(self.b2, h1, self.w2.t(), out=ws["s"])  # (B, S)
        if self.variational:
            mu, lv = s[:, :d], s[:, d:]
            std = torch.exp(0.5 * lv)
            eps = self.model.randn_like(mu)
            z = torch.addcmul(mu, std, eps)  # (B, D)
        else:
            mu, z = s, s
        u3 = z if onehot is None else torch.cat([z, onehot], 1)  # (B, D+K)
        h2 = torch.addmm(self.b3, u3, self.w3.t(), out=ws["h2"]).clamp_(min=0)  # (B, H)
        logits = torch.addmm(self.b4, h2, self.w4.t(), out=ws["logits"])  # (B, P)
        # -log p(x|z) = sum softplus(l) - x * l over the batch, with softplus(l) taken from
        # p = sigmoid(l), which the backward pass needs anyway:
        # softplus(l) = relu(l) - log sigmoid(|l|),  sigmoid(|l|) = 1/2 + |p - 1/2|
        p = torch.sigmoid(logits, out=ws["g_logits"])
        log_sig_abs = torch.sub(p, 0.5, out=ws["sp"]).abs_().add_(0.5).log_()
        relu_sum = torch.clamp(logits, min=0, out=ws["relu"]).sum()
        recon = relu_sum - log_sig_abs.sum() - torch.dot(xf.reshape(-1), logits.reshape(-1))
        if self.variational:
            var = std.square()
            kl = 0.5 * (mu.square() + var - 1.0 - lv).sum()
        else:
            kl = recon.new_zeros(())
        # -- backward of mean(recon + beta * kl) --
        # Gradients are carried unscaled (per-sample sums) and the 1/B of the mean is applied
        # by the weight-gradient products (alpha=1/B), which saves a pass over each buffer.
        inv_b = 1.0 / b
        g_logits = p.sub_(xf)  # (B, P): d recon / d logits
        torch.addmm(self.w4.grad, g_logits.t(), h2, beta=0, alpha=inv_b, out=self.w4.grad)
        torch.sum(g_logits, 0, out=self.b4.grad).mul_(inv_b)
        g_h2 = torch.mm(g_logits, self.w4, out=ws["g_h2"])  # (B, H)
        g_h2 = torch.ops.aten.threshold_backward(g_h2, h2, 0.0)
        torch.addmm(self.w3.grad, g_h2.t(), u3, beta=0, alpha=inv_b, out=self.w3.grad)
        torch.sum(g_h2, 0, out=self.b3.grad).mul_(inv_b)
        g_z = g_h2.mm(self.w3[:, :d])  # (B, D)
        if self.variational:
            g_mu = g_z.add(mu, alpha=beta)
            # dz/dlv = 0.5 * std * eps;  dKL/dlv = 0.5 * (var - 1)
            g_lv = (g_z * eps * std).add_(var - 1.0, alpha=beta).mul_(0.5)
            g_s = torch.cat([g_mu, g_lv], 1)  # (B, 2D)
        else:
            g_s = g_z
        torch.addmm(self.w2.grad, g_s.t(), h1, beta=0, alpha=inv_b, out=self.w2.grad)
        torch.sum(g_s, 0, out=self.b2.grad).mul_(inv_b)
        g_h1 = torch.mm(g_s, self.w2, out=ws["g_h1"])
        g_h1 = torch.ops.aten.threshold_backward(g_h1, h1, 0.0)
        torch.addmm(self.w1.grad, g_h1.t(), u1, beta=0, alpha=inv_b, out=self.w1.grad)
        torch.sum(g_h1, 0, out=self.b1.grad).mul_(inv_b)
        return torch.stack([recon, kl, recon + beta * kl])
