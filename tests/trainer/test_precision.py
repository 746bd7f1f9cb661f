"""--precision bf16: the layers in bfloat16 under autocast, the rest in float32; refused
where the device would only emulate it."""

import pytest
import torch

import trainer.loop as loop
import trainer.loop.fit as fit
from trainer.__main__ import main
from trainer.checkpoint import load_checkpoint, save_trainer
from trainer.config import ConfigError, TrainConfig
from trainer.loop import Trainer, bf16_problem, model_config_for
from trainer.models import build_model

NATIVE = bf16_problem(torch.device("cpu")) is None


def _run(data, precision, **model):
    torch.manual_seed(0)
    mc = model_config_for(data, latent_dim=4, hidden=64, **model)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu", precision=precision)
    t = Trainer(build_model(mc), data, cfg)
    dtypes = set()
    first = next(m for m in t.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))

    def seen(module, inputs, out):  # the training steps' layers (evaluation is float32)
        if module.training:
            dtypes.add(out.dtype)

    hook = first.register_forward_hook(seen)
    t.fit()
    hook.remove()
    return t, dtypes


def test_the_precision_option_is_checked():
    with pytest.raises(ConfigError, match='precision must be one of fp32, bf16, not "fp16"'):
        TrainConfig(precision="fp16")
    assert TrainConfig().precision == "fp32"


@pytest.mark.skipif(not NATIVE, reason="this CPU has no bfloat16 instructions")
@pytest.mark.parametrize("model", [{"arch": "conv"}, {"model": "cvae"}], ids=["conv", "cvae"])
def test_bf16_trains_the_layers_in_bfloat16_and_ends_where_fp32_does(shapes, model, tmp_path):
    full, full_dtypes = _run(shapes, "fp32", **model)
    half, half_dtypes = _run(shapes, "bf16", **model)
    assert full_dtypes <= {torch.float32} and half_dtypes == {torch.bfloat16}  # (fused: none)
    assert half.bf16 and half.fused_step is None  # the fused step is float32 only
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    a, b = full.history.epochs[-1]["test_nelbo"], half.history.epochs[-1]["test_nelbo"]
    assert b < full.history.epochs[0]["test_nelbo"]  # it learns
    assert abs(a - b) < 0.02 * a, (a, b)  # and ends within 2% of float32
    path = save_trainer(tmp_path / "bf16.safetensors", half, None, shapes.class_names)
    assert load_checkpoint(path).train_config.precision == "bf16"


def test_bf16_where_it_would_be_emulated_is_refused_or_trains_in_fp32(
    shapes, monkeypatch, tmp_path, capsys
):
    no_bf16 = lambda d: "this CPU has no bfloat16 instructions"  # noqa: E731
    monkeypatch.setattr(loop, "bf16_problem", no_bf16)  # where the command line finds it
    monkeypatch.setattr(fit, "bf16_problem", no_bf16)  # where the Trainer does
    # asked for on the command line: refused before anything is trained
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--dataset",
            "shapes",
            "--epochs",
            "1",
            "--precision",
            "bf16",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and "--precision bf16: this CPU has no bfloat16 instructions, so it "
        "would be emulated and train slower than fp32"
        in err
    )
    assert not out.exists()
    # a run saved in bf16 elsewhere, continued here: float32
    mc = model_config_for(shapes, latent_dim=2, hidden=32)
    t = Trainer(build_model(mc), shapes, TrainConfig(epochs=1, device="cpu", precision="bf16"))
    assert not t.bf16 and t.fused_step is not None


def test_a_conv_body_trains_channels_last_and_goes_on_exactly(shapes, tmp_path):
    """Channels-last weights (and Adam's moments laid out as they are) on the CPU: a run saved
    inside an epoch and continued ends with the weights of a run that never stopped."""
    from trainer.loop import TrainControl

    mc = model_config_for(shapes, arch="conv", latent_dim=3, hidden=32)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu")
    torch.manual_seed(0)
    straight = Trainer(build_model(mc), shapes, cfg)
    conv = next(m for m in straight.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert straight.channels_last
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    straight.fit()
    moments = straight.optimizer.state[conv.weight]["exp_avg"]
    assert moments.is_contiguous(memory_format=torch.channels_last)

    class StopAt(TrainControl):
        @property
        def stop_requested(self):
            return half.step >= half.steps_per_epoch + 3

    torch.manual_seed(0)
    half = Trainer(build_model(mc), shapes, cfg)
    assert half.fit(control=StopAt()).stopped
    ck = load_checkpoint(save_trainer(tmp_path / "mid.safetensors", half, None, []))
    on = Trainer(
        ck.model,
        shapes,
        ck.train_config,
        history=ck.history,
        optimizer_state=ck.optimizer_state,
        epochs_done=ck.epochs_done,
        step=ck.step,
        position=ck.position,
    )
    w = next(m for m in on.model.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert on.optimizer.state[w]["exp_avg"].stride() == w.stride()
    on.fit(epochs=1)
    assert on.step == straight.step
    for (k, a), b in zip(straight.model.state_dict().items(), on.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
