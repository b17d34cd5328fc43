"""Evaluation of a run on its validation split: accuracy, per-class accuracy, confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from .engine import ProgressFn, predict, resolve_device  # noqa: E402
from .runs import Run  # noqa: E402


@dataclass
class Evaluation:
    """One run's validation results."""

    summary: dict[str, object]
    per_class: pd.DataFrame
    confusion: pd.DataFrame


def network_label(run: Run) -> str:
    """'NeuroView vgg11' or 'vgg11' (the network column of Table 1)."""
    spec = run.spec
    prefix = "" if spec.baseline else "NeuroView "
    views = f" MV{spec.views}" if spec.multiview else ""
    return f"{prefix}{spec.arch}{views}"


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> pd.DataFrame:
    """`class,support,correct,accuracy` for every class."""
    rows = []
    for k, name in enumerate(classes):
        mask = labels == k
        support = int(mask.sum())
        correct = int((pred[mask] == k).sum())
        rows.append({"class": name, "support": support, "correct": correct,
                     "accuracy": correct / support if support else float("nan")})
    return pd.DataFrame(rows)


def evaluate(run: Run, *, device: str = "auto", batch_size: int = 128, workers: int = 0,
             progress: ProgressFn | None = None) -> Evaluation:
    """Predict the validation split of `run` and summarise it."""
    dev = resolve_device(device)
    model = run.model(dev)
    bundle = run.data()
    logits, labels = predict(model, bundle.val, batch_size=batch_size, device=dev, workers=workers, progress=progress)
    logits = logits["none"]
    pred = logits.argmax(1)
    classes = run.classes
    k = len(classes)
    counts = torch.bincount(labels * k + pred, minlength=k * k).view(k, k)
    confusion = pd.DataFrame(counts.numpy(), columns=classes)
    confusion.insert(0, "true", classes)
    summary = {"run": run.name, "network": network_label(run),
               "activation": "-" if run.spec.baseline else f"{run.spec.code}/{run.spec.reduce}",
               "dataset": run.config["data"]["name"], "samples": len(labels),
               "loss": F.cross_entropy(logits, labels).item(), "accuracy": (pred == labels).float().mean().item()}
    return Evaluation(summary, per_class_accuracy(pred, labels, classes), confusion)


def confusion_figure(confusion: pd.DataFrame, title: str = "") -> plt.Figure:
    """A heat map of the confusion matrix, rows normalised to per-class recall."""
    counts = confusion.drop(columns="true").to_numpy(dtype=float)
    share = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    n = len(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n, 1.0 + 0.45 * n))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), confusion.columns[1:], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), confusion["true"], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title)
    return fig
