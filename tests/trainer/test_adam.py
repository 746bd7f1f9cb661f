"""trainer.loop.adam.Adam against torch.optim.Adam: same updates, same state_dict format."""

import copy
import subprocess
import sys

import pytest
import torch

from trainer.config import ModelConfig
from trainer.loop.adam import Adam, fused_kernel_works
from trainer.models import build_model

needs_fused = pytest.mark.skipif(
    not fused_kernel_works([torch.zeros(1)]), reason="no fused Adam kernel for CPU float32"
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(latent_dim=3, hidden=32))


def _train(model, opt, steps: int, seed: int = 1, lr_at: dict | None = None):
    """``steps`` optimizer steps on seeded random gradients; ``lr_at``: {step: new lr}."""
    g = torch.Generator().manual_seed(seed)
    for i in range(steps):
        if lr_at and i in lr_at:
            opt.param_groups[0]["lr"] = lr_at[i]
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _assert_all(check, xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        check(x, y)


def _equal(x, y):
    assert torch.equal(x, y)


def _close(x, y):
    torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@needs_fused
def test_matches_torch_fused_adam_exactly_and_unfused_closely():
    ours = Adam(list((m := _model()).parameters()), lr=1e-2)
    assert ours.fused and ours.param_groups[0]["fused"] is True
    got = _train(m, ours, 20)
    want_fused = _train(m2 := _model(), torch.optim.Adam(m2.parameters(), lr=1e-2, fused=True), 20)
    want_plain = _train(m3 := _model(), torch.optim.Adam(m3.parameters(), lr=1e-2), 20)
    _assert_all(_equal, got, want_fused)
    _assert_all(_close, got, want_plain)
    assert got[0].sub(_model().encoder.fc.weight).abs().max() > 1e-2  # it did move


def test_forced_fallback_matches_torch_unfused_adam():
    ours = Adam(list((m := _model()).parameters()), lr=1e-2, fused=False)
    assert not ours.fused and ours.param_groups[0]["fused"] is None
    got = _train(m, ours, 20)
    want = _train(m2 := _model(), torch.optim.Adam(m2.parameters(), lr=1e-2), 20)
    _assert_all(lambda x, y: torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7), got, want)
    st = ours.state[m.encoder.fc.weight]
    assert st["step"].device.type == "cpu" and float(st["step"]) == 20


@pytest.mark.parametrize("fused", [None, False])
def test_state_dict_has_torch_format(fused):
    m, m2 = _model(), _model()
    ours = Adam(list(m.parameters()), lr=1e-2, fused=fused)
    theirs = torch.optim.Adam(m2.parameters(), lr=1e-2, fused=ours.fused or None)
    _train(m, ours, 3)
    _train(m2, theirs, 3)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert list(a["state"]) == list(b["state"]) == list(range(len(list(m.parameters()))))
    for i, sa in a["state"].items():
        sb = b["state"][i]
        assert sa.keys() == sb.keys() == {"step", "exp_avg", "exp_avg_sq"}
        assert sa["step"].shape == () and sa["step"].dtype == torch.float32
        assert sa["step"].device == sb["step"].device
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=1e-5, atol=1e-7)


@needs_fused
@pytest.mark.parametrize("torch_fused", [True, None])
def test_state_dict_round_trips_with_torch_adam(torch_fused):
    check = _equal if torch_fused else _close
    # uninterrupted reference: torch's Adam for 10 steps
    ref = _model()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-2, fused=torch_fused)
    _train(ref, ref_opt, 5, seed=1)
    want = _train(ref, ref_opt, 5, seed=2)

    # ours for 5 steps, then torch's loads our state and goes on
    m = _model()
    ours = Adam(list(m.parameters()), lr=1e-2)
    _train(m, ours, 5, seed=1)
    m2 = _model()
    m2.load_state_dict(m.state_dict())
    theirs = torch.optim.Adam(m2.parameters(), lr=1e-2, fused=torch_fused)
    theirs.load_state_dict(copy.deepcopy(ours.state_dict()))
    theirs.param_groups[0]["fused"] = torch_fused  # run as the reference does
    _assert_all(check, _train(m2, theirs, 5, seed=2), want)

    # torch's for 5 steps, then ours loads its state and goes on
    t = _model()
    t_opt = torch.optim.Adam(t.parameters(), lr=1e-2, fused=torch_fused)
    _train(t, t_opt, 5, seed=1)
    m3 = _model()
    m3.load_state_dict(t.state_dict())
    ours3 = Adam(list(m3.parameters()), lr=0.5)  # the loaded lr wins, as in torch
    ours3.load_state_dict(copy.deepcopy(t_opt.state_dict()))
    assert ours3.param_groups[0]["lr"] == 1e-2 and ours3.param_groups[0]["fused"] is True
    _assert_all(check, _train(m3, ours3, 5, seed=2), want)


def test_load_state_dict_rewinds_the_state_the_step_uses():
    # Trainer._restore reloads an earlier state after a divergence: the step must use the
    # loaded tensors, not the ones it cached before.
    for fused in (None, False):
        m = _model()
        opt = Adam(list(m.parameters()), lr=1e-2, fused=fused)
        _train(m, opt, 5)
        saved_w, saved_opt = copy.deepcopy(m.state_dict()), copy.deepcopy(opt.state_dict())
        first = _train(m, opt, 5, seed=7)
        m.load_state_dict(saved_w)
        opt.load_state_dict(saved_opt)
        _assert_all(_equal, _train(m, opt, 5, seed=7), first)
        opt.load_state_dict({"state": {}, "param_groups": saved_opt["param_groups"]})
        assert opt.state == {}  # an empty state, as saved before the first step
        _train(m, opt, 1)
        assert float(opt.state[m.encoder.fc.weight]["step"]) == 1
    with pytest.raises(ValueError, match="size"):
        bad = copy.deepcopy(saved_opt)
        bad["param_groups"][0]["params"].pop()
        opt.load_state_dict(bad)


@pytest.mark.parametrize("fused", [None, False])
def test_live_learning_rate_change_takes_effect(fused):
    if fused is None and not fused_kernel_works([torch.zeros(1)]):
        pytest.skip("no fused Adam kernel for CPU float32")
    runs = {}
    for lr_at in (None, {10: 1e-4}):
        m = _model()
        runs[bool(lr_at)] = _train(
            m, Adam(list(m.parameters()), lr=1e-2, fused=fused), 20, lr_at=lr_at
        )
    m = _model()
    ref = torch.optim.Adam(m.parameters(), lr=1e-2, fused=True if fused is None else None)
    want = _train(m, ref, 20, lr_at={10: 1e-4})
    _assert_all(_equal if fused is None else _close, runs[True], want)
    assert any(not torch.equal(a, b) for a, b in zip(runs[True], runs[False]))


def test_zero_grad():
    m = _model()
    opt = Adam(list(m.parameters()), lr=1e-2)
    _train(m, opt, 1)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in m.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    before = [p.detach().clone() for p in m.parameters()]
    opt.step()  # no gradients: nothing moves
    _assert_all(_equal, [p.detach() for p in m.parameters()], before)


def test_training_never_imports_dynamo():
    # torch.optim's Optimizer methods import torch._dynamo (seconds) on their first call.
    code = (
        "import sys, torch\n"
        "torch.set_num_threads(2)\n"
        "from trainer.config import TrainConfig\n"
        "from trainer.data import DataSpec, load_data\n"
        "from trainer.loop import Trainer, model_config_for\n"
        "from trainer.models import build_model\n"
        "data = load_data(DataSpec('shapes', shapes_count=200))\n"
        "for fused in (None, False):\n"
        "    mc = model_config_for(data, latent_dim=2, hidden=32)\n"
        "    cfg = TrainConfig(epochs=1, batch_size=64, device='cpu')\n"
        "    trainer = Trainer(build_model(mc), data, cfg, fused=fused)\n"
        "    trainer.fit()\n"
        "    sd = trainer.optimizer.state_dict()\n"
        "    assert sd['state'], 'no optimizer state'\n"
        "    trainer.optimizer.load_state_dict(sd)\n"
        "bad = [m for m in sys.modules if m.startswith(('torch._dynamo', 'torch._inductor'))]\n"
        "assert not bad, bad[:5]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
