"""One decision explained: the contribution `W[c, u] * z_u(x)` of every unit to a class's logit.

The logit of class c is exactly `sum_u W[c, u] * z_u(x) + b[c]`, so the contributions (plus the bias)
account for the whole decision. Products of two float32 numbers are exact in float64, so the table's
contributions are the exact terms of that sum.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from .engine import resolve_device
from .errors import NvError
from .imagefolder import image_transforms
from .runs import Run
from .weights import (DEFAULT_TOP, Head, extremes, layer_colours, layer_groups, layer_keys, layer_labels,
                      ranks)

UNIT_VALUES = ["z", "weight", "contribution", "rank"]
LAYER_VALUES = ["units", "contribution", "positive", "negative"]
CLASS_COLUMNS = ["class", "logit", "probability"]


@dataclass
class Explanation:
    """Why a model gave its logits for one input, decomposed over units and layers for one class."""

    summary: dict[str, object]  # source, true, predicted, probability, class, logit, bias
    classes: pd.DataFrame  # CLASS_COLUMNS, every class
    units: pd.DataFrame  # unit, [view,] layer, node, channel, z, weight, contribution, rank
    layers: pd.DataFrame  # [view,] layer, node, units, contribution, positive, negative
    input: Tensor  # the pixel-space input


def load_image(path: str | Path, run: Run) -> Tensor:
    """An image file as the run's validation transform makes it: resized, centre-cropped, in [0, 1]."""
    spec = run.spec
    kind = run.config["data"].get("kind", "image")
    if spec.multiview or kind not in ("image", None) or spec.input_shape[0] != 3:
        raise NvError(f"--input reads an RGB image, but run '{run.name}' takes {kind} inputs of shape "
                      f"{spec.input_shape}{' per view' if spec.multiview else ''}; use --index N instead")
    path = Path(path)
    if not path.is_file():
        raise NvError(f"--input '{path}' is not a file")
    try:
        with Image.open(path) as image:
            return image_transforms(int(spec.input_shape[-1]), train=False)(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise NvError(f"cannot read --input '{path}' as an image ({type(exc).__name__})") from exc


def validation_sample(run: Run, index: int) -> tuple[Tensor, int]:
    """Sample `index` of the run's validation split."""
    val = run.data().val
    if not 0 <= index < len(val):
        raise NvError(f"--index {index} is out of range; the validation split has samples 0..{len(val) - 1}")
    x, label = val[index]
    return x, int(label)


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
            source: str = "") -> Explanation:
    """Explain `model`'s decision on one pixel-space input `x` for class `target` (default: the predicted one)."""
    model.eval()
    device = next(model.parameters()).device
    z32 = model.features(x.unsqueeze(0).to(device))
    logits = model.head(z32)[0].double().cpu()
    z = z32[0].double().cpu().numpy()
    probs = torch.softmax(logits, 0).numpy()
    predicted = int(np.argmax(probs))
    c = predicted if target is None else head.class_index(target)
    contribution = head.weight[c] * z
    values = {"z": z, "weight": head.weight[c], "contribution": contribution, "rank": ranks(contribution)}
    units = head.units[head.unit_columns].assign(**{k: values[k] for k in UNIT_VALUES})
    classes = pd.DataFrame({"class": head.classes, "logit": logits.numpy(), "probability": probs},
                           columns=CLASS_COLUMNS)
    summary = {"source": source, "true": None if label is None else head.classes[label],
               "predicted": head.classes[predicted], "probability": float(probs[predicted]),
               "class": head.classes[c], "logit": float(logits[c]), "bias": float(head.bias[c]),
               "contributions": float(contribution.sum())}
    return Explanation(summary, classes, units, _per_layer(contribution, head.units), x.cpu())


def explain_run(run: Run, *, index: int | None = None, path: str | Path | None = None, target: str | None = None,
                device: str = "cpu") -> Explanation:
    """Explain a NeuroView run's decision on validation sample `index` or the image file at `path` (exactly one)."""
    run.require_neuroview("explain")
    if (index is None) == (path is None):
        raise NvError("give exactly one of --index N (a validation sample) or --input FILE (an image)")
    model = run.model(resolve_device(device))
    head = Head.from_model(model, run.units(), run.classes)
    if target is not None:
        head.class_index(target)  # fail on an unknown class before reading any data
    if path is not None:
        return explain(model, head, load_image(path, run), target=target, source=str(path))
    x, label = validation_sample(run, index)
    return explain(model, head, x, target=target, label=label, source=f"validation sample {index}")


def _show_input(ax, x: Tensor) -> None:
    """An image (first view of multi-view inputs) or a spectrogram."""
    image = x[0] if x.dim() == 4 else x
    if image.shape[0] == 3:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        ax.imshow(image[0].numpy(), origin="lower", aspect="auto", cmap="magma")
    ax.set_axis_off()


def explain_figure(explanation: Explanation, top: int = DEFAULT_TOP) -> Figure:
    """The input, its `top` most positive and negative unit contributions, and the contribution per layer."""
    s = explanation.summary
    units, layers = explanation.units, explanation.layers
    colours = layer_colours(int(units["layer"].max()) + 1)
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    ax_in, ax_units, ax_layers = fig.subplots(1, 3, width_ratios=[1, 1.6, 1.4])
    _show_input(ax_in, explanation.input)
    true = f"true {s['true']}, " if s["true"] is not None else ""
    ax_in.set_title(f"{true}predicted {s['predicted']} ({s['probability']:.0%})", fontsize=9)

    shown = extremes(units, "contribution", top).iloc[::-1]
    labels = [f"u{u} ({node}:{ch})" for u, node, ch in zip(shown["unit"], shown["node"], shown["channel"])]
    ax_units.barh(range(len(shown)), shown["contribution"], color=[colours[layer] for layer in shown["layer"]])
    ax_units.set_yticks(range(len(shown)), labels, fontsize=7)
    ax_units.axvline(0, color="black", linewidth=0.6)
    ax_units.tick_params(axis="x", labelsize=7)
    ax_units.set_xlabel("contribution W[c,u]·z_u")
    ax_units.set_title(f"units, class {s['class']}", fontsize=9)

    ax_layers.bar(range(len(layers)), layers["contribution"], color=[colours[layer] for layer in layers["layer"]])
    ax_layers.set_xticks(range(len(layers)), layer_labels(layers), rotation=45, ha="right", fontsize=7)
    ax_layers.axhline(0, color="black", linewidth=0.6)
    ax_layers.set_ylabel("summed contribution")
    ax_layers.set_title(f"per layer: logit {s['logit']:.3g} = sum {s['contributions']:.3g} + bias {s['bias']:.3g}",
                        fontsize=9)
    fig.suptitle(s["source"], fontsize=10)
    return fig
