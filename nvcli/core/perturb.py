"""Colour-channel perturbation (paper case study 5, Table 2, Figure 7): per-class accuracy with one
channel of the validation images set to zero.

Channels are zeroed in pixel space, before the model's own normalisation, so a zeroed channel is what a
person would see with that channel removed. Every condition is predicted in one pass over the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from .engine import ProgressFn, predict, resolve_device
from .errors import NvError, choice_error
from .evaluate import network_label, per_class_accuracy
from .runs import Run
from .weights import OVERALL

CHANNELS = {"red": 0, "green": 1, "blue": 2}
NONE = "none"
CONDITIONS = (NONE, *CHANNELS)
COLUMNS = ["class", "condition", "support", "correct", "accuracy", "change"]
_BAR_COLOURS = {NONE: "0.55", "red": "#d62728", "green": "#2ca02c", "blue": "#1f77b4"}


@dataclass
class Perturbation:
    """One run's accuracy under each condition, and the validation sample shown in the examples figure."""

    accuracy: pd.DataFrame  # COLUMNS; per class, then an `overall` row, for each condition
    example: Tensor  # pixel-space input of the example sample
    example_class: str


def channels_for(choice: str) -> list[str]:
    """The channels named by `--channel`: one of red, green, blue, or all three."""
    if choice == "all":
        return list(CHANNELS)
    if choice not in CHANNELS:
        raise choice_error("channel", choice, [*CHANNELS, "all"])
    return [choice]


def zero_channel(x: Tensor, channel: str) -> Tensor:
    """A copy of pixel-space images [..., 3, H, W] with `channel` set to zero."""
    out = x.clone()
    out[..., CHANNELS[channel], :, :] = 0
    return out


def channel_transforms(channels: Sequence[str]) -> dict[str, Callable[[Tensor], Tensor]]:
    """`none` plus one input transform per zeroed channel, for `predict`."""
    transforms: dict[str, Callable[[Tensor], Tensor]] = {NONE: lambda x: x}
    for channel in channels:
        transforms[channel] = lambda x, c=channel: zero_channel(x, c)
    return transforms


def _accuracy(pred: Tensor, labels: Tensor, classes: list[str]) -> pd.DataFrame:
    """Per-class accuracy followed by an `overall` row."""
    correct = int((pred == labels).sum())
    overall = {"class": OVERALL, "support": len(labels), "correct": correct, "accuracy": correct / len(labels)}
    return pd.concat([per_class_accuracy(pred, labels, classes), pd.DataFrame([overall])], ignore_index=True)


def perturb(run: Run, channels: Sequence[str] = tuple(CHANNELS), *, example: int = 0, device: str = "auto",
            batch_size: int = 128, workers: int = 0, progress: ProgressFn | None = None) -> Perturbation:
    """Per-class and overall validation accuracy of `run` with each of `channels` zeroed (and unperturbed)."""
    bundle = run.data()
    if bundle.in_channels != 3:
        raise NvError(f"nv perturb zeroes colour channels of RGB images; run '{run.name}' has {bundle.kind} data "
                      f"with {bundle.in_channels} channel(s)")
    if not 0 <= example < len(bundle.val):
        raise NvError(f"--example {example} is out of range; the validation split has samples 0..{len(bundle.val) - 1}")
    dev = resolve_device(device)
    logits, labels = predict(run.model(dev), bundle.val, batch_size=batch_size, device=dev, workers=workers,
                             transforms=channel_transforms(channels), progress=progress)
    frames = {condition: _accuracy(out.argmax(1), labels, run.classes) for condition, out in logits.items()}
    for condition, frame in frames.items():
        frame["change"] = frame["accuracy"] - frames[NONE]["accuracy"]
        frame.insert(1, "condition", condition)
    x, label = bundle.val[example]
    return Perturbation(pd.concat(frames.values(), ignore_index=True)[COLUMNS], x, run.classes[int(label)])


def side_by_side(results: Sequence[tuple[Run, pd.DataFrame]]) -> pd.DataFrame:
    """Table 2: one row per (run, class) with the accuracy under each condition as columns."""
    rows = []
    for run, frame in results:
        wide = frame.pivot(index="class", columns="condition", values="accuracy")
        conditions = [c for c in CONDITIONS if c in wide.columns]
        order = list(dict.fromkeys(frame["class"]))
        wide = wide.loc[order, conditions].reset_index()
        wide.insert(0, "network", network_label(run))
        wide.insert(0, "run", run.name)
        rows.append(wide)
    table = pd.concat(rows, ignore_index=True)
    table.columns.name = None
    return table


def perturb_figure(frame: pd.DataFrame, title: str) -> Figure:
    """Grouped bars: per class (and overall), the accuracy under each condition."""
    classes = list(dict.fromkeys(frame["class"]))
    conditions = list(dict.fromkeys(frame["condition"]))
    width = 0.8 / len(conditions)
    x = np.arange(len(classes))
    fig = Figure(figsize=(max(6.0, 0.2 * len(classes) * len(conditions) + 2), 3.4), layout="constrained")
    ax = fig.subplots()
    for i, condition in enumerate(conditions):
        part = frame[frame["condition"] == condition].set_index("class").loc[classes]
        label = "no perturbation" if condition == NONE else f"{condition} = 0"
        ax.bar(x + (i - (len(conditions) - 1) / 2) * width, part["accuracy"], width, label=label,
               color=_BAR_COLOURS[condition])
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7, ncols=len(conditions), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.set_title(title, pad=22)
    return fig


def examples_figure(x: Tensor, conditions: Sequence[str], title: str) -> Figure:
    """Figure 7: one validation image as the model sees it under each condition (the first view of multi-view data)."""
    image = x[0] if x.dim() == 4 else x
    fig = Figure(figsize=(2.2 * len(conditions), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(conditions), squeeze=False)).ravel()
    for ax, condition in zip(axes, conditions):
        shown = image if condition == NONE else zero_channel(image, condition)
        ax.imshow(shown.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title("original" if condition == NONE else f"{condition} = 0", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig

