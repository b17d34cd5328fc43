"""Colour-channel perturbation (paper case study 5, Table 2, Figure 7): per-class accuracy with one
channel of the validation images set to zero.

Channels are zeroed in pixel space, before the model's own normalisation, so a zeroed channel is what a
person would see with that channel removed. Every condition is predicted in one pass over the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data.channels import CHANNELS, CONDITIONS, NONE, zero_channel
from ..errors import NvError
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training.devices import resolve_device
from ..training.predict import ProgressFn, Tally, tally
from .evaluate import per_class_accuracy
from .head import OVERALL, head_model
from .settings import Compute, PerturbSettings

COLUMNS = ["head", "class", "condition", "support", "correct", "accuracy", "change"]


@dataclass
class Perturbation(RunResult):
    """One run's accuracy under each condition (perturb.csv/.png), and one sample under each (perturb_examples.png)."""

    kind = "perturb"
    main_table = "accuracy"
    run: str
    head: str
    channels: list[str]
    accuracy: pd.DataFrame  # COLUMNS; per class, then an `overall` row, for each condition
    example_index: int
    example: Tensor | None  # pixel-space input of the example sample (None when loaded from perturb.csv)
    example_class: str


    def settings(self) -> PerturbSettings:
        return PerturbSettings(tuple(self.channels), self.example_index, self.head)

    def data_splits(self) -> tuple[str, ...]:
        return ("val",)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.perturb import examples_figure, perturb_figure

        out = {files.PERTURB.name(self.head): table(self.accuracy)}
        if figures:
            out[files.PERTURB_PNG.name(self.head)] = figure(
                perturb_figure, self.accuracy, f"{self.run}: accuracy, one channel zeroed{files.head_mark(self.head)}")
            if self.example is not None:
                out[files.PERTURB_EXAMPLES_PNG.name(self.head)] = figure(
                    examples_figure, self.example, [NONE, *self.channels],
                    f"validation sample {self.example_index} (class '{self.example_class}')")
        return out

    @classmethod
    def load(cls, run_dir: Path, head: str = files.DENSE_HEAD) -> "Perturbation | None":
        """The saved accuracies of `head` in `run_dir` (without the example image), or None if never saved."""
        frame = files.PERTURB.read(run_dir, head)
        if frame is None:
            return None
        channels = [c for c in dict.fromkeys(frame["condition"]) if c != NONE]
        return cls(Path(run_dir).name, head, channels, frame, -1, None, "")


def channel_transforms(channels: Sequence[str]) -> dict[str, Callable[[Tensor], Tensor]]:
    """`none` plus one input transform per zeroed channel, for `tally`."""
    transforms: dict[str, Callable[[Tensor], Tensor]] = {NONE: lambda x: x}
    for channel in channels:
        transforms[channel] = lambda x, c=channel: zero_channel(x, c)
    return transforms


def _accuracy(counted: Tally, classes: list[str]) -> pd.DataFrame:
    """Per-class accuracy followed by an `overall` row."""
    overall = {"class": OVERALL, "support": counted.samples, "correct": counted.correct, "accuracy": counted.accuracy}
    return pd.concat([per_class_accuracy(counted.confusion, classes), pd.DataFrame([overall])], ignore_index=True)


def perturb(run: Run, channels: Sequence[str] = tuple(CHANNELS), *, head: str = files.DENSE_HEAD, example: int = 0,
            compute: Compute = Compute(), trust_code: bool = False, progress: ProgressFn | None = None) -> Perturbation:
    """Per-class and overall validation accuracy of `run` with each of `channels` zeroed (and unperturbed).

    Args:
        run: a trained run on RGB images.
        channels: the colour channels to zero, each in turn (red, green, blue).
        head: `dense` or a sparse head's name.
        example: the validation sample drawn in perturb_examples.png.
        compute: where and how: device (auto: cuda > mps > cpu), inference batch size, loader workers.
        trust_code: allow importing the run's `package.module:function` architecture (runs its code).
        progress: called as `progress(phase, done, total)` while batches are computed.

    Returns:
        A `Perturbation`: `accuracy` (one row per class and condition, `none` = unperturbed); `.save(run.dir)`
        writes perturb.csv/.png and perturb_examples.png.
    """
    if run.spec.input_shape[0] != 3:
        raise NvError(f"perturbing colour channels needs RGB images; run '{run.dir}' has {run.kind} data with "
                      f"{run.spec.input_shape[0]} channel(s); choose an image run")
    val = run.data().val
    _check_example(example, val)
    model = head_model(run, head, resolve_device(compute.device), trust_code=trust_code)
    return perturbation(model, val, run.classes, channels, head=head, example=example, name=run.name,
                        compute=compute, progress=progress)


def _check_example(example: int, dataset: Dataset) -> None:
    if not 0 <= example < len(dataset):
        raise NvError(f"example {example} is out of range; the data has samples 0..{len(dataset) - 1}",
                      param="example")


def perturbation(model: nn.Module, dataset: Dataset, classes: Sequence[str], channels: Sequence[str] = tuple(CHANNELS),
                 *, head: str = files.DENSE_HEAD, example: int = 0, name: str = "model", compute: Compute = Compute(),
                 progress: ProgressFn | None = None) -> Perturbation:
    """Per-class and overall accuracy of `model` on `dataset` (pixel-space RGB images, labels indexing `classes`)
    with each of `channels` zeroed, and unperturbed; `head` and `name` label the result."""
    _check_example(example, dataset)
    dev = next(model.parameters()).device
    counted = tally(model, dataset, classes=len(classes), batch_size=compute.batch_size, device=dev,
                    workers=compute.workers, transforms=channel_transforms(channels), progress=progress)
    frames = {condition: _accuracy(counts, list(classes)) for condition, counts in counted.items()}
    for condition, frame in frames.items():
        frame["change"] = frame["accuracy"] - frames[NONE]["accuracy"]
        frame.insert(1, "condition", condition)
        frame.insert(0, "head", head)
    x, label = dataset[example]
    return Perturbation(name, head, list(channels), pd.concat(frames.values(), ignore_index=True)[COLUMNS],
                        example, x, classes[int(label)])


def side_by_side(results: Sequence[tuple[Run, pd.DataFrame]]) -> pd.DataFrame:
    """Table 2: one row per (run, class) with the accuracy under each condition as columns."""
    rows = []
    for run, frame in results:
        wide = frame.pivot(index="class", columns="condition", values="accuracy")
        conditions = [c for c in CONDITIONS if c in wide.columns]
        order = list(dict.fromkeys(frame["class"]))
        wide = wide.loc[order, conditions].reset_index()
        if "head" in frame.columns:  # perturb.csv of nv 0.2 has none
            wide.insert(0, "head", frame["head"].iloc[0])
        wide.insert(0, "network", run.spec.label)
        wide.insert(0, "run", run.name)
        rows.append(wide)
    table = pd.concat(rows, ignore_index=True)
    table.columns.name = None
    return table
