"""Training throughput: Latent Explorer's loop against a reference loop and this machine's limit.

The reference is written the way the classic PyTorch VAE example is: a torchvision-style
dataset that makes a PIL image per sample and applies ToTensor, batched by a DataLoader,
with ``loss.item()`` every step. Both train the same 784-400-20 MLP VAE with batch 128 on
a seeded 8,000 / 2,000 split of the MNIST test set, in the same process.

The machine's limit is its peak float32 matrix-multiply rate (best of several large square
products) divided by the FLOPs one training image costs, counted two ways: as this loop
computes them (no gradient is taken with respect to the data) and by the usual "model FLOPs"
convention of 6 per weight. The last row is a ceiling: a step that did nothing but its five
large matrix products and the Adam update.

A second table measures the same loop on a busy machine: with other processes spinning
beside it, torch's default thread count (one per core) against the one the window and
``latent-train`` choose (``trainer.loop.threads``: all cores but one), each also on an idle
machine, alternated in the same run.

    uv run python bench/bench_train.py [--mnist DIR] [--epochs N] [--device cpu|cuda|mps]
    uv run python bench/bench_train.py --threads-only [--busy 2] [--repeats 3]
    uv run python bench/bench_train.py --conv [--device cpu|cuda] [--bf16]
    uv run python bench/bench_train.py --conv-options [--device cpu|cuda] [--repeats 3]
    uv run python bench/bench_train.py --smoke [--mnist DIR]

``--smoke`` runs every table at its smallest (a few hundred images, one image shape, one step
or epoch, one repeat, no torch.compile): seconds, to check that the script still runs; its
numbers mean nothing.

``--conv`` measures the convolutional VAE at 28 and 64 px, grey and colour (MNIST digits,
resized and tinted), this loop against a reference written the usual way (DataLoader over
a float dataset, autograd, torch.optim.Adam, ``loss.item()`` every step) on the same model
and data, with the % of the machine's limit (peak matmul rate over 3 forward passes' FLOPs,
``trainer.models.flops_per_image``, which counts the conv layers off their shapes).
``--bf16`` adds this loop in mixed precision (``--precision bf16``) where the device has
bfloat16 (a CUDA GPU from Ampere on, an x86 CPU with AVX-512 BF16 or AMX), with the % of
the bfloat16 matmul limit; the same flag adds a bf16 row to the MLP table.

``--conv-options`` times one conv training step under what else might speed it up:
channels-last weights and inputs, bf16 autocast, both, and ``torch.compile`` (with the
time its first step takes, and the images it takes to win that back).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from machine import cpu_name
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainer.config import ModelConfig, TrainConfig
from trainer.data import DataSpec, load_data
from trainer.loop import (
    Trainer,
    bf16_problem,
    make_adam,
    model_config_for,
    resolve_device,
    seed_everything,
)
from trainer.loop.threads import training_threads, usable_cores
from trainer.models import build_model, flops_per_image

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"
SMOKE_IMAGES = (512, 256)  # --smoke: training and test images


# -- the reference loop ----------------------------------------------------------------------
class PILDigits(Dataset):
    """Like torchvision.datasets.MNIST: one PIL image per __getitem__, then the transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i].numpy(), mode="L")
        return self.transform(img), int(self.labels[i])


class ReferenceVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def reference_throughput(images: torch.Tensor, labels: torch.Tensor, epochs: int, device) -> float:
    """``images`` (N, 1, 28, 28) uint8 in memory, as torchvision's MNIST holds them."""
    loader = DataLoader(
        PILDigits(images[:, 0], labels, transforms.ToTensor()), batch_size=128, shuffle=True
    )
    model = ReferenceVAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        train_loss = 0.0
        for data, _ in loader:
            data = data.to(device)
            opt.zero_grad()
            recon, mu, logvar = model(data)
            bce = F.binary_cross_entropy(recon, data.view(-1, 784), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
            loss.backward()
            train_loss += loss.item()
            opt.step()
            n += len(data)
    return n / (time.perf_counter() - t0)


# -- the machine's limit ---------------------------------------------------------------------
def peak_matmul_flops(
    device, sizes=(1024, 2048, 3072), reps=8, dtype=torch.float32, smoke: bool = False
) -> float:
    if smoke:
        sizes, reps = (256,), 2
    best = 0.0
    for s in sizes:
        a = torch.randn(s, s, device=device, dtype=dtype)
        b = torch.randn(s, s, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        for _ in range(3):
            _sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            _sync(device)
            best = max(best, reps * 2 * s**3 / (time.perf_counter() - t))
    return best


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


BENCH_MODEL = ModelConfig(latent_dim=20, hidden=400)  # the classic 784-400-20 MLP VAE


def model_flops_per_image() -> int:
    """The usual "model FLOPs" convention: 6 per weight per training example (forward 2,
    backward 4), i.e. three forward passes."""
    return 3 * flops_per_image(BENCH_MODEL)


def training_flops_per_image() -> int:
    """FLOPs one training image really costs: the 6N count less the input gradient of the
    first layer, as no gradient flows into the data."""
    c = BENCH_MODEL
    return model_flops_per_image() - 2 * c.n_pixels * c.hidden


def kernel_ceiling(device, reps: int = 300) -> float:
    """Images/s if a step were only its five large matrix products (784x400 layers, batch
    128) and the Adam update: what this PyTorch can reach on this machine at best."""
    seed_everything(0)
    model = build_model(BENCH_MODEL).to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = make_adam([p for p in model.parameters()], 1e-3)
    opt.step()
    w1, w4 = model.encoder.fc, model.decoder.out
    x = torch.rand(128, 784, device=device)
    h = torch.rand(128, 400, device=device)
    g = torch.rand(128, 784, device=device)

    def step():
        torch.addmm(w1.bias, x, w1.weight.t())
        torch.addmm(w4.bias, h, w4.weight.t())
        g.t().mm(h)
        g.mm(w4.weight)
        h.t().mm(x)
        opt.step()

    with torch.no_grad():
        for _ in range(20):
            step()
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            step()
        _sync(device)
    return 128 * reps / (time.perf_counter() - t)


def ours_throughput(data, epochs: int, device, fused: bool | None, precision="fp32") -> float:
    seed_everything(0)
    model = build_model(model_config_for(data, model="vae", latent_dim=20, hidden=400))
    cfg = TrainConfig(epochs=epochs, batch_size=128, precision=precision)
    trainer = Trainer(model, data, cfg, device=device, fused=fused)
    return trainer.fit().images_per_second


# -- convolutional bodies ----------------------------------------------------------------------
CONV_SHAPES = ((1, 28, 28), (3, 28, 28), (1, 64, 64), (3, 64, 64))


def conv_data(data, shape: tuple[int, int, int], n: int):
    """``n`` MNIST digits as images of ``shape``: resized, and tinted per channel for colour."""
    from trainer.data import ImageData

    c, size, _ = shape

    def make(x):
        x = x[:n].float()
        if size != x.shape[-1]:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        if c == 3:
            x = torch.cat([x * 1.0, x * 0.7, x * 0.4], dim=1)
        return x.round().clamp(0, 255).to(torch.uint8)

    return ImageData(
        f"MNIST as {c}x{size}x{size}",
        make(data.train_x),
        make(data.test_x[:500]),
        data.train_y[:n],
        data.test_y[:500],
        data.class_names,
    )


def conv_reference(data, cfg: ModelConfig, epochs: int, device) -> float:
    """The usual loop: DataLoader, autograd, torch.optim.Adam, loss.item() every step."""
    from torch.utils.data import TensorDataset

    seed_everything(0)
    x = data.train_x.float() / 255.0
    loader = DataLoader(TensorDataset(x), batch_size=128, shuffle=True)
    model = build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        total = 0.0
        for (xb,) in loader:
            xb = xb.to(device)
            opt.zero_grad()
            recon, kl = model.elbo_terms(xb)
            loss = (recon + kl).mean()
            loss.backward()
            total += loss.item()
            opt.step()
            n += len(xb)
    _sync(device)
    return n / (time.perf_counter() - t0)


def conv_ours(data, cfg: ModelConfig, epochs: int, device, precision="fp32") -> float:
    seed_everything(0)
    train = TrainConfig(epochs=epochs, batch_size=128, precision=precision)
    return Trainer(build_model(cfg), data, train, device=device).fit().images_per_second


def bf16_note(device, wanted: bool) -> str | None:
    """Why the bf16 rows are left out (None: they are measured)."""
    if not wanted:
        return "bf16 not asked for (--bf16)"
    why = bf16_problem(device)
    return f"bf16 left out: {why}" if why else None


def conv_table(data, device, epochs: int, bf16: bool, smoke: bool = False) -> None:
    peak = peak_matmul_flops(device, smoke=smoke)
    skip = bf16_note(device, bf16)
    peak16 = (
        peak_matmul_flops(device, dtype=torch.bfloat16, smoke=smoke) if skip is None else math.nan
    )
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}; peak matmul: float32 "
        f"{peak / 1e9:.0f} GFLOP/s, bfloat16 "
        f"{'-' if skip else f'{peak16 / 1e9:.0f} GFLOP/s'}"
    )
    print("conv VAE (latent 20, hidden 400), batch 128; limit = peak / (3 x forward FLOPs)")
    if skip:
        print(skip)
    print()
    print(
        "| images | train images | forward MFLOP | reference img/s | this loop img/s "
        "| x reference | % of limit | bf16 img/s | x fp32 | % of bf16 limit |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in ((3, 28, 28),) if smoke else CONV_SHAPES:
        n = 128 if smoke else 4000 if shape[1] <= 32 else 1500
        d = conv_data(data, shape, n)
        cfg = model_config_for(d, model="vae", arch="conv", latent_dim=20, hidden=400)
        fwd = flops_per_image(cfg)
        limit = peak / (3 * fwd)
        ref = conv_reference(d, cfg, 1, device)
        ours = conv_ours(d, cfg, epochs, device)
        half = "| - | - | -"
        if skip is None:
            h = conv_ours(d, cfg, epochs, device, "bf16")
            half = f"| {h:,.0f} | {h / ours:.2f}x | {100 * h / (peak16 / (3 * fwd)):.0f}%"
        name = f"{shape[0]} x {shape[1]} x {shape[2]}"
        print(
            f"| {name} | {n:,} | {fwd / 1e6:.1f} | {ref:,.0f} | {ours:,.0f} "
            f"| {ours / ref:.2f}x | {100 * ours / limit:.0f}% {half} |"
        )


# -- what else might speed a conv step up ------------------------------------------------------
CONV_OPTIONS = (
    "fp32",
    "channels-last",
    "bf16",
    "bf16 + channels-last",
    "compile",
    "compile + bf16",
)
PLAIN = {"compile": "fp32", "compile + bf16": "bf16"}  # the same step, not compiled


def conv_step(cfg: ModelConfig, option: str, device, x: torch.Tensor):
    """One training step of the conv VAE (autograd, the Adam the loop uses) with ``option``:
    channels-last weights and inputs, bf16 autocast, torch.compile of the ELBO, or none."""
    seed_everything(0)
    model = build_model(cfg).to(device)
    last = "channels-last" in option
    if last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = make_adam(list(model.parameters()), 1e-3)
    elbo = torch.compile(model.elbo_terms) if "compile" in option else model.elbo_terms
    bf16 = "bf16" in option

    def step(i: int) -> None:
        xb = x[(i % 4) * 128 : (i % 4 + 1) * 128]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            recon, kl = elbo(xb)
        opt.zero_grad(set_to_none=True)
        (recon + kl).mean().backward()
        opt.step()

    return step


def conv_options_table(device, repeats: int, steps: int, smoke: bool = False) -> None:
    """img/s of one conv step under each option, alternated ``repeats`` times; the first
    step's time (torch.compile compiles then) and, for compile, the images it takes to
    win back its compile time. ``smoke`` leaves torch.compile out (it takes a minute)."""
    # torch.compile from a cold cache, as on a user's first run (its later repeats are warm)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    options = [o for o in CONV_OPTIONS if "bf16" not in o or bf16_problem(device) is None]
    if smoke:
        options = [o for o in options if "compile" not in o]
    threads, warm = torch.get_num_threads(), 1 if smoke else 3
    print(
        f"\nconv VAE steps (autograd, batch 128), {repeats} alternated repeats of {steps} "
        f"steps after {warm} of warm-up; device {device}, {threads} threads"
    )
    if bf16_problem(device) is not None:
        print(f"bf16 left out: {bf16_problem(device)}")
    if smoke:
        print("torch.compile left out (--smoke)")
    print()
    print("| images | option | img/s (median) | runs | x fp32 | first step (s), cold cache |")
    print("|---|---|---:|---|---:|---:|")
    for shape in ((1, 28, 28),) if smoke else ((1, 28, 28), (3, 64, 64)):
        cfg = ModelConfig(arch="conv", latent_dim=20, hidden=400, image_shape=shape)
        x = torch.rand(4 * 128, *shape, device=device)
        speed: dict[str, list[float]] = {o: [] for o in options}
        first: dict[str, float] = {}
        n = steps if shape[1] <= 32 else max(2, steps // 4)
        for r in range(repeats):
            for option in options if r % 2 == 0 else options[::-1]:
                step = conv_step(cfg, option, device, x)
                t = time.perf_counter()
                step(0)
                _sync(device)
                first.setdefault(option, time.perf_counter() - t)
                for i in range(1, warm):
                    step(i)
                _sync(device)
                t = time.perf_counter()
                for i in range(n):
                    step(i)
                _sync(device)
                speed[option].append(128 * n / (time.perf_counter() - t))
        base = float(np.median(speed["fp32"]))
        for option in options:
            v = speed[option]
            med = float(np.median(v))
            runs = ", ".join(f"{s:,.0f}" for s in v)
            note = ""
            if "compile" in option:
                plain = float(np.median(speed[PLAIN[option]]))
                gain = 1 / plain - 1 / med  # seconds saved per image
                note = (
                    f" (wins back its compile after {first[option] / gain:,.0f} images)"
                    if gain > 0
                    else " (never wins back its compile)"
                )
            print(
                f"| {shape[0]} x {shape[1]} x {shape[2]} | {option} | {med:,.0f} | {runs} "
                f"| {med / base:.2f}x | {first[option]:.2f}{note} |"
            )


def busy_machine_table(data, busy: int, repeats: int, epochs: int) -> None:
    """Throughput with ``busy`` spinning processes beside the run: torch's default threads
    against the chosen ones, alternated so that both see the same machine."""
    default, chosen = torch.get_num_threads(), training_threads()
    print(
        f"\nbusy machine: {busy} other processes each spinning one core; {usable_cores()} "
        f"usable cores; {epochs} epoch(s) per measurement, {repeats} alternated repeats"
    )
    results: dict[tuple[str, int], list[float]] = {}
    for load in ("idle", "busy"):
        procs = []
        if load == "busy":
            procs = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)
            ]
            time.sleep(1.0)
        try:
            for _ in range(repeats):
                for n in (default, chosen):
                    torch.set_num_threads(n)
                    ips = ours_throughput(data, epochs, torch.device("cpu"), fused=None)
                    results.setdefault((load, n), []).append(ips)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    torch.set_num_threads(default)
    print("| beside the run | threads | images/s (median) | runs |")
    print("|---|---:|---:|---|")
    for (load, n), v in results.items():
        who = "torch default" if n == default else "chosen"
        who = "torch default = chosen" if default == chosen else who
        what = "nothing" if load == "idle" else f"{busy} busy process" + ("es" if busy != 1 else "")
        runs = ", ".join(f"{x:,.0f}" for x in v)
        print(f"| {what} | {n} ({who}) | {float(np.median(v)):,.0f} | {runs} |")


def mlp_table(data, device, args) -> None:
    """The default table: the MLP VAE, the reference against this loop and the limit (and
    on the CPU, the busy-machine table)."""
    peak = peak_matmul_flops(device, smoke=args.smoke)
    fpi = training_flops_per_image()
    limit = peak / fpi
    limit6 = peak / model_flops_per_image()
    seed_everything(0)
    # the training split may be Rows of the memory-mapped cache: the reference gets it as
    # one tensor in memory, as torchvision's MNIST holds its images
    ref = reference_throughput(data.train_x.to("cpu"), data.train_y, args.ref_epochs, device)
    auto = ours_throughput(data, args.epochs, device, fused=None)
    autograd = ours_throughput(data, args.epochs, device, fused=False)
    ceiling = kernel_ceiling(device, reps=5 if args.smoke else 300)
    skip = bf16_note(device, args.bf16)
    half = ours_throughput(data, args.epochs, device, None, "bf16") if skip is None else None

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(
        f"data: MNIST test set, {len(data.train_x)} train / {len(data.test_x)} test, "
        f"MLP 784-400-20 VAE, batch 128"
    )
    print(
        f"peak float32 matmul: {peak / 1e9:.0f} GFLOP/s; a training image costs "
        f"{fpi / 1e6:.2f} MFLOP as computed, {model_flops_per_image() / 1e6:.2f} by the usual "
        f"6-per-weight count (6N); limit {limit:,.0f} images/s ({limit6:,.0f} by 6N)"
    )
    print()
    rows = [
        ("reference (DataLoader + ToTensor, .item() every step)", ref),
        ("latent-explorer loop, autograd step", autograd),
        ("latent-explorer loop, default (fused step)", auto),
        ("ceiling: the 5 large matmuls + Adam kernel alone", ceiling),
    ]
    if half is not None:
        rows.insert(3, ("latent-explorer loop, bf16 autocast (autograd)", half))
    else:
        print(skip)
    w = max(len(r[0]) for r in rows)
    print(f"| {'loop':<{w}} | images/s | x reference | % of limit | % of limit (6N) |")
    print(f"|{'-' * (w + 2)}|---------:|------------:|-----------:|----------------:|")
    for name, ips in rows:
        print(
            f"| {name:<{w}} | {ips:8,.0f} | {ips / ref:10.1f}x | {100 * ips / limit:9.0f}% "
            f"| {100 * ips / limit6:14.0f}% |"
        )
    if device.type == "cpu":
        busy_machine_table(data, args.busy, args.repeats, args.busy_epochs)


def smallest(data):
    """A few hundred of ``data``'s images (``--smoke``), the training split kept as it was
    loaded (Rows of the cache: what the benchmark itself gets)."""
    from trainer.data import ImageData, Rows

    n, m = SMOKE_IMAGES
    x = data.train_x
    x = Rows(x.base, x.index[:n]) if isinstance(x, Rows) else x[:n]
    return ImageData(
        f"{data.name}, {n} / {m} images",
        x,
        data.test_x[:m],
        data.train_y[:n],
        data.test_y[:m],
        data.class_names,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--mnist",
        type=Path,
        default=DEFAULT_MNIST,
        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    )
    ap.add_argument("--epochs", type=int, default=5, help="epochs for our loop (default 5)")
    ap.add_argument(
        "--ref-epochs", type=int, default=2, help="epochs for the reference (default 2)"
    )
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    ap.add_argument("--threads-only", action="store_true", help="only the busy-machine table")
    ap.add_argument("--conv", action="store_true", help="only the convolutional table")
    ap.add_argument(
        "--conv-options",
        action="store_true",
        help="only the table of what else might speed a conv step: channels-last, bf16, "
        "torch.compile",
    )
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="add mixed-precision (bfloat16 autocast) rows where the device has bfloat16",
    )
    ap.add_argument("--steps", type=int, default=20, help="conv-options steps (default 20)")
    ap.add_argument("--busy", type=int, default=2, help="busy processes beside it (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="busy table repeats (default 3)")
    ap.add_argument(
        "--busy-epochs", type=int, default=1, help="epochs per busy-table run (default 1)"
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="every table (or the one asked for) at its smallest: a few hundred images, one "
        "epoch, one repeat, no torch.compile; checks that the script runs, measures nothing",
    )
    args = ap.parse_args()
    device = resolve_device(args.device)
    if not (args.mnist / "t10k-images-idx3-ubyte.gz").is_file():
        sys.exit(
            f"{args.mnist}: no t10k-images-idx3-ubyte.gz (the MNIST test set) there; give the "
            "folder that holds it and t10k-labels-idx1-ubyte.gz with --mnist DIR"
        )
    spec = DataSpec(
        "idx",
        images=str(args.mnist / "t10k-images-idx3-ubyte.gz"),
        labels=str(args.mnist / "t10k-labels-idx1-ubyte.gz"),
        test_fraction=0.2,
        seed=0,
    )
    data = load_data(spec)
    if args.smoke:
        data = smallest(data)
        args.epochs = args.ref_epochs = args.busy_epochs = args.repeats = args.busy = 1
        args.steps = 1
    chosen = args.conv or args.conv_options or args.threads_only
    if not chosen:
        mlp_table(data, device, args)
    if args.conv or (args.smoke and not chosen):
        conv_table(data, device, max(1, min(args.epochs, 2)), args.bf16, args.smoke)
    if args.conv_options or (args.smoke and not chosen):
        conv_options_table(device, args.repeats, args.steps, args.smoke)
    if args.threads_only:
        busy_machine_table(data, args.busy, args.repeats, args.busy_epochs)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
