"""One decision explained: the contribution `W[c, u] * z_u(x)` of every unit to a class's logit.

The logit of class c is exactly `sum_u W[c, u] * z_u(x) + b[c]`, so the contributions (plus the bias)
account for the whole decision. Products of two float32 numbers are exact in float64, so the table's
contributions are the exact terms of that sum. With rank `importance` a contribution is read relative to
the unit's mean code over the validation split, `W[c, u] * (z_u(x) - mean z_u)`, and the bias becomes
`b[c] + sum_u W[c, u] * mean z_u`: the sum is still the logit, and a unit whose code sits at its usual
value contributes nothing, whatever its weight.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..data.imagefile import read_rgb
from ..data.images import image_transforms
from ..errors import NvError
from ..models.unit_table import layer_groups, layer_keys
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training.devices import resolve_device
from .head import DEFAULT_TOP, Head, extremes, ranks, read_head, with_head
from .importance import DEFAULT_RANK, code_stats, needs_codes
from .settings import ExplainSettings

if TYPE_CHECKING:
    from ..data.sound.spectrogram import SpecParams

LAYER_VALUES = ["units", "contribution", "positive", "negative"]
CLASS_COLUMNS = ["class", "logit", "probability"]
VALIDATION_SOURCE = "validation sample"  # an explained input's source when it is one of the validation split's


@dataclass(frozen=True)
class ExplainSummary:
    """One input's explanation in a line: its source and true class (None when unknown), the predicted class and its
    probability, the class explained with its logit = contributions + bias, and the reference codes contributions
    are measured from (`zero`, or `validation mean` with rank importance)."""

    source: str
    true: str | None
    predicted: str
    probability: float
    class_: str
    logit: float
    bias: float
    contributions: float
    reference: str

    @property
    def relative(self) -> bool:
        """Whether contributions are relative to the validation mean codes (whose part is in the bias)."""
        return self.reference == "validation mean"


@dataclass
class Explanation(RunResult):
    """Why a model gave its logits for one input, decomposed over units and layers for one class.

    Files are named after the input (`explain_index0.csv`, `explain_<image stem>.csv`).
    """

    kind = "explain"
    main_table = "units"
    summary: ExplainSummary
    classes: pd.DataFrame  # CLASS_COLUMNS, every class
    units: pd.DataFrame  # unit, [view,] layer, node, channel, z, weight, contribution, rank
    layers: pd.DataFrame  # [view,] layer, node, units, contribution, positive, negative
    input: Tensor  # the pixel-space input
    name: str = "input"  # what the input is called in file names
    head: str = files.DENSE_HEAD
    top: int = DEFAULT_TOP
    spectrogram: SpecParams | None = None  # a sound run's spectrogram settings, for the figure's axes

    def key(self) -> files.ResultKey:
        return files.ResultKey(self.kind, files.file_stem(self.name), self.head)

    def settings(self) -> ExplainSettings:
        s = self.summary
        return ExplainSettings(s.source, s.class_, self.head, self.top, "importance" if s.relative else DEFAULT_RANK)

    def data_splits(self) -> tuple[str, ...]:
        """The validation split when the input is one of its samples or the reference is its mean code."""
        from_val = self.summary.source.startswith(VALIDATION_SOURCE)
        return ("val",) if from_val or self.summary.relative else ()

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.explain import explain_figure

        h, n = self.head, self.name
        out = {files.EXPLAIN.name(h, input=n): table(self.units),
               files.EXPLAIN_LAYERS.name(h, input=n): table(self.layers),
               files.EXPLAIN_CLASSES.name(h, input=n): table(self.classes)}
        steps = None
        if "step" in self.units.columns:
            from .timesteps import step_contributions

            steps = step_contributions(self.units)
            out[files.EXPLAIN_STEPS.name(h, input=n)] = table(steps)
        if figures:
            out[files.EXPLAIN_PNG.name(h, input=n)] = figure(
                explain_figure, self.summary, extremes(self.units, "contribution", self.top), self.layers, self.input,
                self.top, self.spectrogram, steps)
        return out


def load_image(path: str | Path, run: Run) -> Tensor:
    """An image file as the run's validation transform makes it: resized, centre-cropped, in [0, 1]."""
    spec = run.spec
    kind = run.kind
    if spec.multiview or kind != "image" or spec.input_shape[0] != 3:
        raise NvError(f"path reads an RGB image, but run '{run.name}' takes {kind} inputs of shape "
                      f"{spec.input_shape}{' per view' if spec.multiview else ''}; use index instead",
                      param=("path", "index"))
    path = Path(path)
    if not path.is_file():
        raise NvError(f"path '{path}' is not a file", param="path")
    return image_transforms(int(spec.input_shape[-1]), train=False)(read_rgb(path, param="path"))


def validation_sample(run: Run, index: int) -> tuple[Tensor, int]:
    """Sample `index` of the run's validation split."""
    val = run.data().val
    if not 0 <= index < len(val):
        raise NvError(f"index {index} is out of range; the validation split has samples 0..{len(val) - 1}",
                      param="index")
    x, label = val[index]
    return x, int(label)


@dataclass(frozen=True)
class ExplainedInput:
    """One input to explain: the pixel-space tensor, its label (validation samples only), and how results name it."""

    x: Tensor
    label: int | None
    source: str  # e.g. 'validation sample 3' or the file's path
    name: str  # in file names: index3, or the file's stem


def explained_input(run: Run, index: int | None, path: str | Path | None) -> ExplainedInput:
    """Validation sample `index` or the image file `path` (exactly one of them), named for results."""
    if (index is None) == (path is None):
        raise NvError("give exactly one of index (a validation sample) or path (an image file)",
                      param=("index", "path"))
    if path is None:
        x, label = validation_sample(run, index)
        return ExplainedInput(x, label, f"{VALIDATION_SOURCE} {index}", f"index{index}")
    x = load_image(path, run)
    # A file name need not be valid UTF-8; the results (CSV, figure title) must be text.
    shown = os.fsencode(path).decode("utf-8", "replace")
    return ExplainedInput(x, None, shown, Path(shown).stem)


def _per_layer(contribution: np.ndarray, units: pd.DataFrame) -> pd.DataFrame:
    """Contributions summed per layer: total, positive part, negative part."""
    rows = []
    for key, idx in layer_groups(units):
        part = contribution[idx]
        rows.append({**key, "units": len(idx), "contribution": part.sum(), "positive": part[part > 0].sum(),
                     "negative": part[part < 0].sum()})
    return pd.DataFrame(rows, columns=[*layer_keys(units), *LAYER_VALUES])


@torch.no_grad()
def explain(model: nn.Module, head: Head, x: Tensor, *, target: str | None = None, label: int | None = None,
            source: str = "", name: str = "input", top: int = DEFAULT_TOP,
            mean: np.ndarray | None = None) -> Explanation:
    """Explain `model`'s decision on one pixel-space input `x` for class `target` (default: the predicted one);
    with `mean` (every unit's mean code), contributions are relative to it and its part is folded into the bias."""
    model.eval()
    device = next(model.parameters()).device
    z32 = model.features(x.unsqueeze(0).to(device))
    logits = model.head(z32)[0].double().cpu()
    z = z32[0].double().cpu().numpy()
    probs = torch.softmax(logits, 0).numpy()
    predicted = int(np.argmax(probs))
    c = predicted if target is None else head.class_index(target)
    reference = np.zeros_like(z) if mean is None else mean
    contribution = head.weight[c] * (z - reference)
    bias = float(head.bias[c] + float(head.weight[c] @ reference))
    values = {"z": z, "weight": head.weight[c], **({} if mean is None else {"mean_z": mean}),
              "contribution": contribution, "rank": ranks(contribution)}
    units = head.units[head.unit_columns].assign(**values)
    classes = pd.DataFrame({"class": head.classes, "logit": logits.numpy(), "probability": probs},
                           columns=CLASS_COLUMNS)
    summary = ExplainSummary(source, None if label is None else head.classes[label], head.classes[predicted],
                             float(probs[predicted]), head.classes[c], float(logits[c]), bias,
                             float(contribution.sum()), "zero" if mean is None else "validation mean")
    return Explanation(summary, classes, units, _per_layer(contribution, head.units), x.cpu(), name, head.name, top)


def explain_run(run: Run, *, index: int | None = None, path: str | Path | None = None, target: str | None = None,
                head: str = files.DENSE_HEAD, top: int = DEFAULT_TOP, rank: str = DEFAULT_RANK, device: str = "cpu",
                trust_code: bool = False) -> Explanation:
    """Explain a NeuroView run's decision on one input, unit by unit: contribution `W[c,u] * z_u(x)`.

    Args:
        run: a trained NeuroView run.
        index: a sample of the validation split (give this or `path`).
        path: an image file (RGB runs only).
        target: the class whose logit to explain (default: the predicted class).
        head: `dense` or a sparse head's name.
        top: units listed per sign in the summary figure.
        rank: `weight` (the paper's) or `importance`, which reads contributions relative to the mean codes of the
            validation split (their part folded into the bias, so the logit still adds up).
        device: where to compute.
        trust_code: allow importing the run's `package.module:function` architecture.

    Returns:
        An `Explanation`: `summary` (predicted class, probability, logit = contributions + bias), `units`,
        `layers` and `classes` tables; `.save(run.dir)` writes explain_<input>.csv/_layers/_classes/.png.
    """
    run.require_neuroview()
    chosen = read_head(run, head)
    if target is not None:
        chosen.class_index(target)  # fail on an unknown class before reading any data
    item = explained_input(run, index, path)  # a bad index or file fails before the codes are computed
    mean = code_stats(run, device=device, trust_code=trust_code).mean if needs_codes(rank) else None
    model = with_head(run.model(resolve_device(device), trust_code=trust_code), chosen)
    result = explain(model, chosen, item.x, target=target, label=item.label, source=item.source, name=item.name,
                     top=top, mean=mean)
    if run.kind == "sound":
        from ..data.sound.spectrogram import SpecParams

        result.spectrogram = SpecParams.from_info(run.config.data.info or {})
    return result
