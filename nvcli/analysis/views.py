"""Which camera views drive each class (case study 3, Figure 5): a multi-view head's weights per view."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import NvError
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from .head import Head
from .settings import HeadSettings

COLUMNS = ["class", "view", "mean_weight", "pos_weight", "neg_weight"]


def views_frame(head: Head) -> pd.DataFrame:
    """Per class and view: mean, positive sum and negative sum of the class's head weights on that view's units."""
    if "view" not in head.units.columns:
        raise NvError("the run's units have no views; per-view weights need a multi-view run")
    view_of = head.units["view"].to_numpy()
    weight = head.weight
    rows = []
    for k, name in enumerate(head.classes):
        for v in range(int(view_of.max()) + 1):
            w = weight[k, view_of == v]
            rows.append({"class": name, "view": v, "mean_weight": float(w.mean()),
                         "pos_weight": float(w[w > 0].sum()), "neg_weight": float(w[w < 0].sum())})
    return pd.DataFrame(rows, columns=COLUMNS)


def positive_views(frame: pd.DataFrame) -> dict[str, list[int]]:
    """For each class (in frame order), the views whose mean weight is positive."""
    return {name: [int(v) for v in group.loc[group["mean_weight"] > 0, "view"]]
            for name, group in frame.groupby("class", sort=False)}


@dataclass
class ViewWeights(RunResult):
    """views.csv and views.png of a multi-view NeuroView head."""

    kind = "views"
    main_table = "frame"
    run: str
    head: str
    frame: pd.DataFrame  # COLUMNS
    accuracy: float | None = None


    def settings(self) -> HeadSettings:
        return HeadSettings(self.head)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.views import views_figure

        out = {files.VIEWS.name(self.head): table(self.frame)}
        if figures:
            acc = "" if self.accuracy is None else f", validation accuracy {self.accuracy:.1%}"
            out[files.VIEWS_PNG.name(self.head)] = figure(views_figure, self.frame,
                                                         f"{self.run}: mean head weight per view{acc}")
        return out

    @classmethod
    def load(cls, run_dir: Path, head: str = files.DENSE_HEAD) -> "ViewWeights | None":
        """The saved views table of `head` in `run_dir` (accuracy from eval.csv when saved), or None."""
        from .evaluate import Evaluation

        frame = files.VIEWS.read(run_dir, head)
        if frame is None:
            return None
        evaluation = Evaluation.load(run_dir, head)
        accuracy = None if evaluation is None else float(evaluation.summary.accuracy)
        return cls(Path(run_dir).name, head, frame, accuracy)


def view_weights(run_name: str, head: Head, accuracy: float | None = None) -> ViewWeights:
    """Which camera views drive each class: the mean weight of each view's units per class (Figure 5).

    Args:
        run_name: the run's name, for titles.
        head: a multi-view NeuroView run's head (`read_head`).
        accuracy: the run's validation accuracy, shown in the figure's title.

    Returns:
        A `ViewWeights` result: `frame` (class x view mean weights); `.save(run.dir)` writes views.csv/.png.
    """
    return ViewWeights(run_name, head.name, views_frame(head), accuracy)
