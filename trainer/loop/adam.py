"""Adam for one parameter group, without ``torch.optim``'s start-up cost or per-step overhead.

Why not ``torch.optim.Adam``: its ``__init__``, ``step``, ``zero_grad``, ``state_dict`` and
``load_state_dict`` are wrapped by ``torch._compile._disable_dynamo``, whose first call imports
the whole ``torch._dynamo`` / ``torch._inductor`` stack: 1.5 s with cached bytecode and ~6 s
without, all of it spent before a session's first training step. Its ``step`` also spends
~0.3 ms per call in Python bookkeeping around the fused kernel, as long as the matrix products
of a small model's step. This class calls the same kernel (``torch._fused_adam_``) directly on
cached lists of its state tensors and never touches ``torch._dynamo``.

Format: ``param_groups`` (one group, with the keys torch.optim.Adam keeps) and ``state``
(parameter -> ``step`` as a 0-d float32 tensor, ``exp_avg``, ``exp_avg_sq``) are laid out as in
torch.optim.Adam, and ``state_dict()`` / ``load_state_dict()`` use exactly its format (state
keyed by parameter index, ``params`` as index lists), so each can load the other's checkpoints.
Callers change the learning rate live with ``optimizer.param_groups[0]["lr"] = lr``.

Where the fused kernel is missing or fails for the parameters' device and dtype, ``step`` runs
the textbook update with ``torch._foreach_*`` ops: the same arithmetic as torch's single-tensor
Adam (bias corrections, eps added after dividing sqrt(v) by sqrt(1 - beta2^t)). The path is
chosen once, at construction. No weight decay, AMSGrad, maximize or complex parameters.
``tests/trainer/test_adam.py`` checks both paths against torch.optim.Adam.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterable
from typing import Any

import torch

# torch.optim.Adam's defaults, in its order: the keys of every group in its state_dict.
_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0,
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": None,
    "decoupled_weight_decay": False,
}


def fused_kernel_works(params: list[torch.Tensor]) -> bool:
    """Whether ``torch._fused_adam_`` exists and runs for these parameters' device and dtype."""
    kernel = getattr(torch, "_fused_adam_", None)
    if kernel is None or not params:
        return False
    p0 = params[0]
    if not p0.is_floating_point() or any(
        p.device != p0.device or p.dtype != p0.dtype for p in params
    ):
        return False
    try:
        with torch.no_grad():
            t = [torch.zeros(1, dtype=p0.dtype, device=p0.device) for _ in range(4)]
            step = torch.ones((), dtype=torch.float32, device=p0.device)
            kernel(
                [t[0]],
                [t[1]],
                [t[2]],
                [t[3]],
                [],
                [step],
                amsgrad=False,
                lr=1e-3,
                beta1=0.9,
                beta2=0.999,
                weight_decay=0.0,
                eps=1e-8,
                maximize=False,
            )
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return False
    return True


class Adam:
    """Adam over one parameter group; see the module docstring.

    ``fused``: None (default) uses the fused kernel where it works, False always uses the
    plain tensor update, True requires the kernel (ValueError where it does not work).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool | None = None,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("Adam got some parameter more than once")
        if not 0.0 <= lr:
            raise ValueError(f"invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"invalid epsilon: {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas: {betas}")
        works = fused is not False and fused_kernel_works(params)
        if fused and not works:
            raise ValueError("the fused Adam kernel does not work for these parameters")
        self._fused = works
        group = dict(_DEFAULTS, lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps)
        group["fused"] = True if works else None
        self.param_groups: list[dict[str, Any]] = [{"params": params, **group}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._params = params
        self._grads_seen: list[torch.Tensor | None] | None = None
        self._lists: tuple[list[torch.Tensor], ...] | None = None

    @property
    def fused(self) -> bool:
        """Whether ``step`` runs the fused kernel."""
        return self._fused

    # -- state ------------------------------------------------------------------------------
    def _new_step(self, value: float, p: torch.Tensor) -> torch.Tensor:
        # As in torch: the fused kernel wants the step on the parameter's device; the plain
        # update reads it on the CPU.
        device = p.device if self._fused else "cpu"
        return torch.tensor(float(value), dtype=torch.float32, device=device)

    def _state_for(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        st = self.state.get(p)
        if not st:
            st = {
                "step": self._new_step(0.0, p),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
            self.state[p] = st
        return st

    def _build_lists(self, seen: list[torch.Tensor | None]) -> tuple[list[torch.Tensor], ...]:
        params = [p for p, g in zip(self._params, seen) if g is not None]
        grads = [g for g in seen if g is not None]
        if any(g.is_sparse for g in grads):
            raise RuntimeError("Adam does not support sparse gradients")
        states = [self._state_for(p) for p in params]
        self._grads_seen = seen
        self._lists = (
            params,
            grads,
            [st["exp_avg"] for st in states],
            [st["exp_avg_sq"] for st in states],
            [st["step"] for st in states],
        )
        return self._lists

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's format; the state tensors are the live ones, as in torch."""
        index = {id(p): i for i, p in enumerate(self._params)}
        groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": list(range(len(g["params"]))),
            }
            for g in self.param_groups
        ]
        state = {index[id(p)]: dict(st) for p, st in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state_dict of this class or of torch.optim.Adam (copying its tensors)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        saved = saved_groups[0]
        if len(saved["params"]) != len(self._params):
            raise ValueError(
                "loaded state dict contains a parameter group "
                "that doesn't match the size of optimizer's group"
            )
        group = dict(_DEFAULTS)
        group.update(copy.deepcopy({k: v for k, v in saved.items() if k != "params"}))
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError("this Adam supports no weight decay, AMSGrad or maximize")
        group["betas"] = tuple(float(b) for b in group["betas"])
        # How torch.optim.Adam ran is no concern of this class: these describe how it runs.
        group.update(foreach=None, capturable=False, differentiable=False)
        group["fused"] = True if self._fused else None
        id_map = dict(zip(saved["params"], self._params))
        state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for k, v in state_dict["state"].items():
            p = id_map.get(k)
            if p is None:
                raise ValueError(f"loaded state dict has state for an unknown parameter {k!r}")
            st = {}
            for key, val in v.items():
                if key == "step":  # a tensor, or a number in very old torch checkpoints
                    st[key] = self._new_step(float(val), p)
                elif torch.is_tensor(val) and val.shape == p.shape and p.is_floating_point():
                    # laid out as the parameter is (a channels-last one's moments are too):
                    # the fused kernel steps their memory element by element
                    st[key] = torch.empty_like(p).copy_(val.detach())
                elif torch.is_tensor(val):
                    dtype = p.dtype if p.is_floating_point() else val.dtype
                    st[key] = val.detach().to(device=p.device, dtype=dtype, copy=True)
                else:
                    st[key] = copy.deepcopy(val)
            if {"step", "exp_avg", "exp_avg_sq"} - st.keys():
                raise ValueError(f"loaded state dict lacks Adam's state for parameter {k!r}")
            state[p] = st
        self.param_groups = [{"params": self._params, **group}]
        self.state = state
        self._grads_seen = self._lists = None

    # -- stepping ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                p.grad.zero_()

    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        seen = [p.grad for p in self._params]
        lists = self._lists
        if lists is None or not all(map(operator.is_, seen, self._grads_seen)):
            lists = self._build_lists(seen)
        if not lists[0]:
            return
        # as torch.no_grad(), at a third of its cost: the steps of a small model are short
        grad_was_enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            if self._fused:
                self._fused_step(*lists)
            else:
                self._plain_step(*lists)
        finally:
            torch._C._set_grad_enabled(grad_was_enabled)

    def _fused_step(self, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
        g = self.param_groups[0]
        beta1, beta2 = g["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=g["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=g["eps"],
            maximize=False,
        )

    def _plain_step(self, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
        # torch's unfused Adam: the same operations in the same order
        g = self.param_groups[0]
        beta1, beta2 = g["betas"]
        lr = float(g["lr"])
        torch._foreach_add_(steps, 1)
        ts = [s.item() for s in steps]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        step_size = [-(lr / (1 - beta1**t)) for t in ts]
        bias_correction2_sqrt = [(1 - beta2**t) ** 0.5 for t in ts]
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, g["eps"])
        torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)
