import pytest
import torch

from trainer.config import ConfigError, ModelConfig, TrainConfig
from trainer.loop.fused import FusedStep
from trainer.models import build_model, count_parameters, flops_per_image

CASES = [
    ("mlp", (1, 28, 28)),
    ("conv", (1, 28, 28)),
    ("conv", (3, 32, 32)),
    ("conv", (1, 64, 64)),
    ("conv", (3, 64, 64)),
]


@pytest.mark.parametrize("arch,shape", CASES)
@pytest.mark.parametrize("kind", ["vae", "cvae", "ae"])
def test_shapes_and_gradients(arch, shape, kind):
    cfg = ModelConfig(
        model=kind, arch=arch, image_shape=shape, latent_dim=3, hidden=64, num_classes=4
    )
    model = build_model(cfg)
    x = torch.rand(5, *shape)
    y = torch.randint(0, 4, (5,))
    mu, logvar = model.encode(x, y)
    assert mu.shape == (5, 3)
    assert (logvar is None) == (kind == "ae")
    assert model.decode(mu, y).shape == (5, *shape)
    img = model(x, y)
    assert img.shape == x.shape and img.min() >= 0 and img.max() <= 1
    recon, kl = model.elbo_terms(x, y)
    assert recon.shape == kl.shape == (5,)
    (recon + kl).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if kind == "ae":
        assert torch.equal(kl, torch.zeros(5))


@pytest.mark.parametrize("d", [1, 2, 5, 10, 20, 256])
def test_any_latent_size(d):
    model = build_model(ModelConfig(latent_dim=d, hidden=32))
    assert model.decode_image(torch.randn(7, d)).shape == (7, 1, 28, 28)


def test_reparameterisation_is_differentiable_and_has_the_right_moments():
    mu = torch.full((20000, 1), 2.0, requires_grad=True)
    logvar = torch.full((20000, 1), 2 * torch.log(torch.tensor(0.5)).item(), requires_grad=True)
    torch.manual_seed(0)
    z = build_model(ModelConfig(latent_dim=1)).reparameterize(mu, logvar)
    assert abs(z.mean().item() - 2.0) < 0.02 and abs(z.std().item() - 0.5) < 0.02
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1


def test_gaussian_decoder_fixed_and_learned():
    learned = build_model(ModelConfig(likelihood="gaussian", latent_dim=2, hidden=16))
    fixed = build_model(
        ModelConfig(likelihood="gaussian", gaussian_std=0.2, latent_dim=2, hidden=16)
    )
    assert learned.log_std.requires_grad and not fixed.log_std.requires_grad
    x = torch.rand(3, 1, 28, 28)
    recon, _ = fixed.elbo_terms(x)
    assert torch.isfinite(recon).all()


def test_conditional_model_needs_a_label():
    model = build_model(ModelConfig(model="cvae", num_classes=3, latent_dim=2, hidden=16))
    with pytest.raises(ValueError, match="class label"):
        model.encode(torch.rand(2, 1, 28, 28))


def test_class_changes_the_decoded_image():
    torch.manual_seed(0)
    model = build_model(ModelConfig(model="cvae", num_classes=3, latent_dim=2, hidden=16))
    z = torch.zeros(1, 2)
    a = model.decode_image(z, torch.tensor([0]))
    b = model.decode_image(z, torch.tensor([2]))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(model="gan"), "model must be one of"),
        (dict(latent_dim=0), "latent size must be 1 to 256"),
        (dict(latent_dim=257), "latent size"),
        (dict(arch="conv", image_shape=(1, 30, 30)), "conv body takes square images"),
        (dict(model="cvae", num_classes=0), "needs labelled data"),
        (dict(image_shape=(2, 28, 28)), "1 or 3 channels"),
        (dict(likelihood="poisson"), "likelihood"),
        (dict(gaussian_std=-1.0, likelihood="gaussian"), "std"),
    ],
)
def test_model_config_errors_are_clear(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(epochs=0), "epochs"),
        (dict(lr=0.0), "learning rate"),
        (dict(beta=-1.0), "beta"),
        (dict(batch_size=0), "batch size"),
        (dict(device="tpu"), "device"),
    ],
)
def test_train_config_errors_are_clear(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_configs_round_trip_through_json_dicts():
    cfg = ModelConfig(model="cvae", num_classes=10, image_shape=(3, 32, 32), arch="conv")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    t = TrainConfig(epochs=3, beta=0.5)
    assert TrainConfig.from_dict(t.to_dict()) == t
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "wings": 2})


def test_flop_count_of_the_classic_mlp():
    cfg = ModelConfig(latent_dim=20, hidden=400)
    assert flops_per_image(cfg) == 2 * (784 * 400 + 400 * 40 + 20 * 400 + 400 * 784)
    assert count_parameters(build_model(cfg)) == (784 * 400 + 400) + (400 * 40 + 40) + (
        20 * 400 + 400
    ) + (400 * 784 + 784)


@pytest.mark.parametrize("kind", ["vae", "cvae", "ae"])
def test_fused_step_matches_autograd(kind):
    torch.manual_seed(0)
    cfg = ModelConfig(model=kind, latent_dim=4, hidden=32, num_classes=3)
    model = build_model(cfg).double()
    x = (torch.rand(9, 1, 28, 28, dtype=torch.float64) > 0.6).double()
    y = torch.randint(0, 3, (9,)) if kind == "cvae" else None
    step = FusedStep(model)
    torch.manual_seed(1)
    sums = step(x, y, 0.7)
    fused_grads = [p.grad.clone() for p in step.params]
    for p in model.parameters():
        p.grad = None
    torch.manual_seed(1)  # the same noise eps for the reparameterisation
    recon, kl = model.elbo_terms(x, y)
    (recon + 0.7 * kl).mean().backward()
    for got, p in zip(fused_grads, step.params):
        torch.testing.assert_close(got, p.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sums[0], recon.sum().detach())
    torch.testing.assert_close(sums[1], kl.sum().detach())


def test_fused_step_refuses_other_models():
    with pytest.raises(ValueError, match="MLP models with a Bernoulli"):
        FusedStep(build_model(ModelConfig(arch="conv", latent_dim=2, hidden=16)))


def test_a_model_too_large_to_train_is_refused_before_anything_is_allocated():
    cfg = ModelConfig(image_shape=(3, 1024, 1024), hidden=8192)  # 51 billion parameters
    with pytest.raises(ConfigError, match="51,543,261,224 parameters is too large") as e:
        build_model(cfg)
    assert "Hidden size" in e.value.gui


@pytest.mark.parametrize("kind", ["vae", "cvae", "ae"])
def test_counted_flops_agree_with_the_closed_form_for_the_mlp(kind):
    from trainer.models import counted_flops_per_image

    cfg = ModelConfig(model=kind, latent_dim=7, hidden=64, num_classes=4)
    assert counted_flops_per_image(cfg) == flops_per_image(cfg)


def test_conv_flops_by_hand():
    """A 28 px grey conv VAE, latent 20, hidden 400, counted by hand layer by layer."""
    cfg = ModelConfig(arch="conv", latent_dim=20, hidden=400)
    enc = (
        32 * 14 * 14 * (1 * 16)  # conv 1 -> 32, 4x4, stride 2: 28 -> 14
        + 64 * 7 * 7 * (32 * 16)  # conv 32 -> 64: 14 -> 7
        + 64 * 7 * 7 * 400  # fc
        + 400 * 40  # mean and log-variance
    )
    dec = (
        20 * 400  # fc
        + 400 * 64 * 7 * 7  # fc to the first feature map
        + (64 * 7 * 7) * (32 * 16)  # transposed conv 64 -> 32: 7 -> 14 (per input element)
        + (32 * 14 * 14) * (1 * 16)  # transposed conv 32 -> 1: 14 -> 28
    )
    assert flops_per_image(cfg) == 2 * (enc + dec)
    # colour at 64 px costs more than grey at 28 px, and the count follows the channels
    big = flops_per_image(ModelConfig(arch="conv", image_shape=(3, 64, 64)))
    assert (
        big > flops_per_image(ModelConfig(arch="conv", image_shape=(1, 64, 64))) > 4 * (enc + dec)
    )
