"""Evaluation of a run on its validation split: accuracy, per-class accuracy, confusion matrix."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import torch

from ..runs import files
from ..runs.results import RunResult, Writer, current, figure, table
from ..runs.run import Run
from ..training.devices import resolve_device
from ..training.predict import ProgressFn, tally
from .head import head_model
from .settings import Compute, HeadSettings


@dataclass(frozen=True)
class EvalSummary:
    """eval.csv's row: the run, head, network, its activation and dataset, and the validation samples, mean loss and
    accuracy."""

    run: str
    head: str
    network: str
    activation: str
    dataset: str | None
    samples: int
    loss: float
    accuracy: float


SUMMARY_COLUMNS = [f.name for f in fields(EvalSummary)]


def per_class_accuracy(confusion: torch.Tensor, classes: list[str]) -> pd.DataFrame:
    """`class,support,correct,accuracy` for every class, from a confusion matrix [true, predicted]."""
    support, correct = confusion.sum(1).tolist(), confusion.diagonal().tolist()
    return pd.DataFrame({"class": classes, "support": support, "correct": correct,
                         "accuracy": [c / n if n else float("nan") for c, n in zip(correct, support)]},
                        columns=["class", "support", "correct", "accuracy"])


@dataclass
class Evaluation(RunResult):
    """One run's validation results with one head: eval.csv, per_class.csv, confusion.csv/.png."""

    kind = "eval"
    main_table = "per_class"
    summary: EvalSummary
    per_class: pd.DataFrame
    confusion: pd.DataFrame

    @property
    def head(self) -> str:
        return self.summary.head


    def settings(self) -> HeadSettings:
        return HeadSettings(self.head)

    def data_splits(self) -> tuple[str, ...]:
        return ("val",)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.confusion import confusion_figure

        h = self.head
        out = {files.EVAL.name(h): table(pd.DataFrame([asdict(self.summary)], columns=SUMMARY_COLUMNS)),
               files.PER_CLASS.name(h): table(self.per_class), files.CONFUSION.name(h): table(self.confusion)}
        if figures:
            title = f"{self.summary.run}: confusion" + files.head_mark(h)
            out[files.CONFUSION_PNG.name(h)] = figure(confusion_figure, self.confusion, title)
        return out

    @classmethod
    def load(cls, run_dir: Path, head: str = files.DENSE_HEAD) -> "Evaluation | None":
        """The saved evaluation of `head` in `run_dir`, or None when it was never saved (or is unreadable)."""
        paths = [a.path(run_dir, head) for a in (files.EVAL, files.PER_CLASS, files.CONFUSION)]
        if not all(p.is_file() for p in paths):
            return None
        try:
            summary, per_class, confusion = (pd.read_csv(p) for p in paths)
            row = summary.iloc[0].to_dict()
            if "accuracy" not in row:
                return None
        except (ValueError, IndexError, OSError, pd.errors.ParserError):
            return None
        return cls(EvalSummary(*(row.get(column) for column in SUMMARY_COLUMNS)), per_class, confusion)


def evaluate(run: Run, *, head: str = files.DENSE_HEAD, compute: Compute = Compute(), trust_code: bool = False,
             progress: ProgressFn | None = None) -> Evaluation:
    """Predict the validation split of `run` with one of its heads and summarise it.

    Args:
        run: a trained run (`load_run`).
        head: `dense` (trained with the network) or a sparse head's name (`sparse_head`).
        compute: where and how: device (auto: cuda > mps > cpu), inference batch size, loader workers.
        trust_code: allow importing the run's `package.module:function` architecture (runs its code).
        progress: called as `progress(phase, done, total)` while batches are computed.

    Returns:
        An `Evaluation`: `summary` (accuracy, loss, samples), `per_class` and `confusion` tables; `.save(run.dir)`
        writes eval.csv, per_class.csv and confusion.csv/.png.
    """
    dev = resolve_device(compute.device)
    model = head_model(run, head, dev, trust_code=trust_code)
    bundle = run.data()
    classes = run.classes
    counted = tally(model, bundle.val, classes=len(classes), batch_size=compute.batch_size, device=dev,
                    workers=compute.workers, progress=progress)["none"]
    confusion = pd.DataFrame(counted.confusion.numpy(), columns=classes)
    confusion.insert(0, "true", classes)
    summary = EvalSummary(run.name, head, run.spec.label, run.spec.activation, run.config.data.name, counted.samples,
                          counted.loss, counted.accuracy)
    return Evaluation(summary, per_class_accuracy(counted.confusion, classes), confusion)


def current_evaluation(run: Run, head: str = files.DENSE_HEAD) -> Evaluation | None:
    """The saved evaluation of `head` if it still describes the run (its weights, validation files and saved files are
    those recorded in results.json: `current`); None when there is none, or it is stale."""
    saved = Evaluation.load(run.dir, head)
    return saved if saved is not None and current(run, f"eval{files.head_mark(head)}") else None
