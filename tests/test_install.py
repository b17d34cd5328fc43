"""The installed PyTorch set is a matched one: torchvision's and torchaudio's compiled ops load and compute.

A registry release can pair a torchaudio or torchvision build with a torch it was not made for
(torchaudio 2.11.1 on torch 2.11.0: `undefined symbol`). These tests fail with the versions and the fix
instead of a crash at collection.
"""
from __future__ import annotations

import importlib.metadata

import pytest
import torch

FIX = "reinstall the matched set from requirements.lock: rm -rf .venv && make install (docs/install.md)"


def _versions() -> str:
    found = []
    for name in ("torch", "torchvision", "torchaudio"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def _load(module: str):
    try:
        return importlib.import_module(module)
    except (ImportError, OSError, RuntimeError) as exc:  # a compiled library that does not fit torch
        pytest.fail(f"cannot load {module} ({type(exc).__name__}: {str(exc).splitlines()[0]}); installed: "
                    f"{_versions()}; {FIX}", pytrace=False)


def test_torchaudio_compiled_filter_and_mel_spectrogram_run() -> None:
    functional = _load("torchaudio.functional")
    transforms = _load("torchaudio.transforms")
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])
    # y[n] = 0.5 x[n] + 0.5 y[n-1]: the impulse response halves at every step (torchaudio's C++ loop).
    y = functional.lfilter(x, torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.0]), clamp=False)
    torch.testing.assert_close(y, torch.tensor([[0.5, 0.25, 0.125, 0.0625, 0.03125]]))
    t = torch.arange(8000) / 8000
    mel = transforms.MelSpectrogram(sample_rate=8000, n_fft=256, n_mels=16)(torch.sin(2 * torch.pi * 1000 * t))
    assert mel.shape[0] == 16 and torch.isfinite(mel).all()
    # A 1 kHz tone puts its energy in the band around 1 kHz, not at the edges.
    assert 3 <= int(mel.mean(dim=1).argmax()) <= 12


def test_torchvision_compiled_ops_run() -> None:
    ops = _load("torchvision.ops")
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    keep = ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
