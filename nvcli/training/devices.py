"""Where and how reproducibly computation runs: the device, seeds, deterministic kernels, CPU threads."""
from __future__ import annotations

import random

import torch

from ..errors import NvError, choice_error
from .config import DEVICES


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NvError("device cuda was asked for but no CUDA GPU is available; use cpu or auto", param="device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise NvError("device mps was asked for but MPS is not available; use cpu or auto", param="device")
    if name not in DEVICES:
        raise choice_error("device", name, DEVICES, param="device")
    return torch.device(name)


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype:
    """What training computes in: float32, or with `amp` bfloat16 where supported, else float16 (with loss scaling)."""
    if not amp:
        return torch.float32
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def precision_name(dtype: torch.dtype) -> str:
    """'float32', 'bfloat16' or 'float16', as config.json records it."""
    return str(dtype).removeprefix("torch.")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python and torch; `deterministic` also forbids nondeterministic kernels."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def set_threads(threads: int | None) -> None:
    """Use `threads` CPU threads for torch's operators (None keeps torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise NvError(f"threads {threads} is not valid; give an integer >= 1", param="threads")
    torch.set_num_threads(threads)
