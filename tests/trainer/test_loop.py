import math
import threading
import time
from dataclasses import replace as dataclasses_replace

import numpy as np
import pytest
import torch

from trainer.config import TrainConfig
from trainer.loop import (
    TrainControl,
    Trainer,
    TrainingDiverged,
    model_config_for,
    resolve_device,
    train,
)


def test_training_on_shapes_lowers_the_test_loss(shapes):
    cfg = TrainConfig(epochs=4, batch_size=64, lr=2e-3, device="cpu")
    trainer, result = train(model_config_for(shapes, latent_dim=4, hidden=128), shapes, cfg)
    test = [e["test_nelbo"] for e in result.history.epochs]
    assert len(test) == 4 and result.epochs_done == 4 and not result.stopped
    assert test[-1] < test[0] - 20  # nats per image
    assert all(math.isfinite(v) for v in test)
    assert result.images_per_second > 0


@pytest.mark.parametrize("fused", [True, False])
def test_same_seed_same_run(shapes, fast_cfg, fused):
    mc = model_config_for(shapes, latent_dim=2, hidden=64)
    runs = []
    for _ in range(2):
        torch.manual_seed(fast_cfg.seed)
        from trainer.models import build_model

        t = Trainer(build_model(mc), shapes, fast_cfg, fused=fused)
        runs.append([e["test_nelbo"] for e in t.fit().history.epochs])
    assert runs[0] == runs[1]


def test_snapshots_are_bounded_plain_and_detached(shapes):
    cfg = TrainConfig(epochs=2, batch_size=16, device="cpu", snapshot_hz=20, weights_hz=5)
    snaps = []
    trainer, result = train(
        model_config_for(shapes, latent_dim=3, hidden=64), shapes, cfg, on_snapshot=snaps.append
    )
    assert snaps, "no snapshot arrived"
    tests = [s for s in snaps if s.test is not None]
    assert [s.test.epoch for s in tests] == [1, 2]
    assert tests[-1].final and tests[-1].step == result.step
    assert isinstance(tests[-1].test.kl_per_dim, np.ndarray) and tests[
        -1
    ].test.kl_per_dim.shape == (3,)
    # bounded rate: no more than ~snapshot_hz per second of training, plus epoch ends
    assert len(snaps) <= cfg.snapshot_hz * result.seconds + 2 + 3
    w = tests[-1].weights
    assert w is not None and all(v.device.type == "cpu" and not v.requires_grad for v in w.values())
    before = w["decoder.out.bias"].clone()
    with torch.no_grad():
        trainer.model.decoder.out.bias.add_(1.0)
    assert torch.equal(w["decoder.out.bias"], before)  # a copy, not the live tensor
    for s in snaps:
        assert all(isinstance(getattr(s, k), float) for k in ("nelbo", "recon", "kl", "eta"))


def test_stop_pause_and_live_learning_rate(shapes):
    control = TrainControl()
    cfg = TrainConfig(epochs=50, batch_size=8, device="cpu", snapshot_hz=50)
    seen = []

    def on_snapshot(s):
        seen.append(s)

    mc = model_config_for(shapes, latent_dim=2, hidden=32)
    out = {}
    th = threading.Thread(target=lambda: out.update(r=train(mc, shapes, cfg, control, on_snapshot)))
    th.start()
    deadline = time.time() + 20
    while len(seen) < 3 and time.time() < deadline:
        time.sleep(0.01)
    control.set_lr(1e-4)
    control.set_beta(0.25)
    control.pause()
    deadline = time.time() + 10
    while not any(s.paused for s in seen) and time.time() < deadline:
        time.sleep(0.01)
    paused_at = [s for s in seen if s.paused][-1].step
    time.sleep(0.3)
    assert max(s.step for s in seen) == paused_at  # held while paused
    control.resume()
    deadline = time.time() + 10
    while max(s.step for s in seen) <= paused_at and time.time() < deadline:
        time.sleep(0.01)
    control.stop()
    th.join(10)
    assert not th.is_alive()
    trainer, result = out["r"]
    assert result.stopped and result.epochs_done < 50
    assert trainer.optimizer.param_groups[0]["lr"] == 1e-4
    later = [s for s in seen if s.step > paused_at]
    assert later and later[-1].lr == 1e-4 and later[-1].beta == 0.25
    with pytest.raises(ValueError, match="learning rate"):
        control.set_lr(5.0)


def test_divergence_is_reported_and_the_model_restored(shapes):
    cfg = TrainConfig(epochs=3, batch_size=32, device="cpu", snapshot_hz=1000)
    mc = model_config_for(shapes, latent_dim=2, hidden=32)
    state = {}

    def poison(s):
        if s.epoch == 2 and "done" not in state:
            state["done"] = True
            with torch.no_grad():
                for p in state["trainer"].model.parameters():
                    p.fill_(float("nan"))

    from trainer.models import build_model

    trainer = Trainer(build_model(mc), shapes, cfg)
    state["trainer"] = trainer
    with pytest.raises(TrainingDiverged, match="diverged.*lower learning rate"):
        trainer.fit(on_snapshot=poison)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_continuing_training_keeps_history_and_step(shapes, fast_cfg):
    trainer, r1 = train(model_config_for(shapes, latent_dim=2, hidden=32), shapes, fast_cfg)
    r2 = trainer.fit(epochs=1)
    assert r2.epochs_done == 3 and len(r2.history.epochs) == 3
    assert r2.step == r1.step + trainer.steps_per_epoch


def test_mismatched_data_and_missing_device_are_clear(shapes):
    from trainer.config import ConfigError, ModelConfig
    from trainer.models import build_model

    with pytest.raises(
        ConfigError,
        match="the model takes 32 x 32 greyscale images, and those of .* are 28 x 28 greyscale",
    ):
        Trainer(
            build_model(ModelConfig(image_shape=(1, 32, 32))), shapes, TrainConfig(device="cpu")
        )
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available on this machine"):
            resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_conditional_and_conv_models_train(shapes):
    cfg = TrainConfig(epochs=1, batch_size=64, device="cpu")
    for kw in (dict(model="cvae"), dict(arch="conv", hidden=64), dict(likelihood="gaussian")):
        _, r = train(model_config_for(shapes, latent_dim=2, **kw), shapes, cfg)
        assert math.isfinite(r.history.epochs[-1]["test_nelbo"])


def _fresh(mc, seed=0):
    from trainer.models import build_model

    torch.manual_seed(seed)
    return build_model(mc)


@pytest.mark.parametrize("fused", [True, False])
def test_two_epochs_equal_one_saved_opened_and_one_more(shapes, tmp_path, fused):
    """A checkpoint holds everything a run needs (weights, optimiser state, step, epoch):
    continuing from it gives the weights of a run that never stopped."""
    from trainer.checkpoint import load_checkpoint, save_trainer

    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu")
    mc = model_config_for(shapes, latent_dim=3, hidden=64)
    straight = Trainer(_fresh(mc), shapes, cfg, fused=fused)
    straight.fit(epochs=2)
    half = Trainer(_fresh(mc), shapes, cfg, fused=fused)
    half.fit(epochs=1)
    path = save_trainer(tmp_path / "half.safetensors", half, None, shapes.class_names)
    ck = load_checkpoint(path)
    assert ck.step == half.step and ck.epochs_done == 1
    resumed = Trainer(
        ck.model,
        shapes,
        ck.train_config,
        history=ck.history,
        fused=fused,
        optimizer_state=ck.optimizer_state,
        epochs_done=ck.epochs_done,
        step=ck.step,
    )
    resumed.fit(epochs=1)
    assert resumed.step == straight.step
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=k)
    assert resumed.history.epochs[-1]["test_nelbo"] == pytest.approx(
        straight.history.epochs[-1]["test_nelbo"], rel=1e-6
    )


def test_other_threads_drawing_random_numbers_do_not_change_a_seeded_run(shapes, fast_cfg):
    """The window draws from torch's global generator while a run trains (samples, KL):
    a seeded run must not notice."""
    mc = model_config_for(shapes, latent_dim=2, hidden=64)
    quiet = Trainer(_fresh(mc), shapes, fast_cfg)
    quiet.fit()
    busy = Trainer(_fresh(mc), shapes, fast_cfg)
    busy.fit(on_snapshot=lambda s: torch.randn(1000))  # draws between steps
    for a, b in zip(quiet.model.state_dict().values(), busy.model.state_dict().values()):
        assert torch.equal(a, b)


def test_control_calls_run_between_steps_with_the_trainer(shapes, fast_cfg):
    mc = model_config_for(shapes, latent_dim=2, hidden=64)
    t = Trainer(_fresh(mc), shapes, dataclasses_replace(fast_cfg, epochs=50))
    control = TrainControl()
    seen = []

    def on_snapshot(s):
        if s.step > 3 and not seen:
            control.call_soon(lambda tr: seen.append((tr.step, len(tr.optimizer.state))))
        if seen:
            control.stop()

    t.fit(control=control, on_snapshot=on_snapshot)
    assert seen and seen[0][0] > 3 and seen[0][1] > 0


@pytest.mark.parametrize("fused", [True, False])
def test_a_run_stopped_inside_an_epoch_goes_on_exactly(shapes, tmp_path, fused):
    """Stop in the middle of an epoch, save, open, continue: the same weights as a run that
    never stopped, and the epoch is finished, not started again."""
    from trainer.checkpoint import load_checkpoint, save_trainer

    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3, device="cpu")
    mc = model_config_for(shapes, latent_dim=3, hidden=64)
    straight = Trainer(_fresh(mc), shapes, cfg, fused=fused)
    straight.fit(epochs=2)

    half = Trainer(_fresh(mc), shapes, cfg, fused=fused)
    stop_at = half.steps_per_epoch + 5  # inside the second epoch

    class StopAt(TrainControl):
        @property
        def stop_requested(self):
            return half.step >= stop_at

    result = half.fit(epochs=2, control=StopAt())
    assert result.stopped and half.epochs_done == 1 and half.step == stop_at
    assert half.epoch_images == 5 * 64
    path = save_trainer(tmp_path / "mid.safetensors", half, None, shapes.class_names)
    ck = load_checkpoint(path)
    assert ck.position["epoch_images"] == 5 * 64 and ck.position["noise_state"] is not None
    resumed = Trainer(
        ck.model,
        shapes,
        ck.train_config,
        history=ck.history,
        fused=fused,
        optimizer_state=ck.optimizer_state,
        epochs_done=ck.epochs_done,
        step=ck.step,
        position=ck.position,
    )
    more = resumed.fit(epochs=1)
    assert resumed.step == straight.step and more.steps_run == straight.step - stop_at
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=k)
    s, r = straight.history.epochs[-1], resumed.history.epochs[-1]
    assert r["train_nelbo"] == pytest.approx(s["train_nelbo"], rel=1e-6)


def test_a_run_stopped_on_another_device_goes_on_with_fresh_noise(shapes):
    """A CUDA generator's state (16 bytes) cannot be set on a CPU generator (5056): the
    rest of the epoch draws noise from the epoch's seed instead of failing."""
    cfg = TrainConfig(epochs=1, batch_size=64, device="cpu")
    mc = model_config_for(shapes, latent_dim=3, hidden=64)
    position = {
        "epoch_images": 5 * 64,
        "epoch_sums": [0.0, 0.0, 0.0],
        "noise_state": torch.zeros(16, dtype=torch.uint8),
    }
    t = Trainer(_fresh(mc), shapes, cfg, step=5, position=position)
    result = t.fit(epochs=1)
    assert t.epochs_done == 1 and result.steps_run == t.steps_per_epoch - 5
    assert all(math.isfinite(v) for v in t.history.epochs[-1].values())


def test_a_continued_run_takes_its_configs_learning_rate(shapes, tmp_path):
    """A run whose rate was changed live, saved and continued, trains at its config's rate
    (the one it was started with, or a new one given for the continuation), not at the rate
    its saved optimiser state holds."""
    from trainer.checkpoint import load_checkpoint, save_trainer

    cfg = TrainConfig(epochs=1, batch_size=64, lr=2e-3, device="cpu")
    mc = model_config_for(shapes, latent_dim=2, hidden=32)
    first = Trainer(_fresh(mc), shapes, cfg)
    control = TrainControl()
    control.set_lr(5e-4)  # a live change: taken at the first step
    first.fit(control=control)
    assert first.lr == 5e-4 and first.optimizer.param_groups[0]["lr"] == 5e-4
    path = save_trainer(tmp_path / "m.safetensors", first, None, shapes.class_names)
    ck = load_checkpoint(path)
    assert ck.optimizer_state["param_groups"][0]["lr"] == 5e-4
    assert ck.train_config.lr == 2e-3

    def continued(config):
        t = Trainer(
            ck.model,
            shapes,
            config,
            history=ck.history,
            optimizer_state=ck.optimizer_state,
            epochs_done=ck.epochs_done,
        )
        snaps = []
        t.fit(epochs=1, on_snapshot=snaps.append)
        return t, snaps

    t, snaps = continued(ck.train_config)
    assert t.lr == 2e-3 and t.optimizer.param_groups[0]["lr"] == 2e-3
    assert snaps[-1].lr == 2e-3
    t, _ = continued(dataclasses_replace(ck.train_config, lr=1e-3))  # a new --lr
    assert t.optimizer.param_groups[0]["lr"] == 1e-3
