"""Where a run trains (the device, bfloat16 or not) and its seeds."""

from __future__ import annotations

import numpy as np
import torch

from ..config import ConfigError


def available_devices() -> list[str]:
    """Devices this machine can train on, best first."""
    devs = []
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs + ["cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU; a named device must exist here."""
    if name == "auto":
        return torch.device(available_devices()[0])
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    if name != "cpu" and name not in available_devices():
        raise ConfigError(
            f"device {name!r} was asked for but is not available on this machine "
            f"(available: {', '.join(available_devices())})"
        )
    return torch.device(name)


def bf16_problem(device: torch.device) -> str | None:
    """Why ``device`` cannot train in bfloat16 at speed (it would be emulated, slower than
    float32), or None when it can: a CUDA GPU with bfloat16 arithmetic (Ampere and later),
    or an x86 CPU with bfloat16 instructions (AVX-512 BF16 or AMX). AVX-512 alone is not
    enough: oneDNN then converts every operand and a step took 2.2 times as long as in
    float32."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 arithmetic"
    if device.type == "cpu":
        cpu = torch.cpu
        try:
            if cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported():
                return None
        except (AttributeError, RuntimeError):
            pass
        return "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX)"
    return f"bfloat16 training is offered on CUDA and on CPUs, not on {device.type}"


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use the global RNG)
