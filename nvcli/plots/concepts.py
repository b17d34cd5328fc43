"""Figure 4 for one class: its strongest positive and negative concepts, and its concept distribution."""
from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .canvas import canvas

MIN_PERCENT = 1.0  # concepts below this share of a class's |summed weight| are not among its top concepts
SHOWN = 15  # concepts listed in the distribution panel; the rest are summed into "other"


def concept_figure(table: pd.DataFrame, class_name: str, top: int = 5,
                   into: FigureBase | Axes | None = None) -> FigureBase:
    """Figure 4 for one class: top positive and negative concepts (bars) and its concept distribution.

    Only concepts holding at least MIN_PERCENT of the class's |summed weight| count as top concepts or get a
    bar of their own in the distribution, so a near-zero share is never shown as if it mattered.
    """
    rows = table[table["class"] == class_name]
    strong = rows[rows["percent"] >= MIN_PERCENT]
    pos = strong[(strong["sign"] == "+") & (strong["rank"] <= top)]
    neg = strong[(strong["sign"] == "-") & (strong["rank"] <= top)]
    bars = pd.concat([pos, neg.iloc[::-1]])
    fig = canvas(into, figsize=(11, 0.45 * max(len(bars), 4) + 1.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    labels = [f"{r.concept} ({r.category})" for r in bars.itertuples()]
    left.barh(range(len(bars)), bars["weight"], color=["#2a9d8f" if s == "+" else "#e76f51" for s in bars["sign"]])
    left.set_yticks(range(len(bars)), labels)
    left.invert_yaxis()
    left.axvline(0, color="black", linewidth=0.8)
    for i, r in enumerate(bars.itertuples()):
        left.annotate(f"{r.sign}{r.percent:.1f}%", (r.weight, i), xytext=(3 if r.weight >= 0 else -3, 0),
                      textcoords="offset points", va="center", ha="left" if r.weight >= 0 else "right", fontsize=8)
    left.margins(x=0.18)  # room for the percent labels beside the longest bars
    left.set_xlabel("summed head weight")
    left.set_title(f"'{class_name}': top {top} positive and negative concepts\n(each >= {MIN_PERCENT:g}% of "
                   f"|summed weight|: {len(pos)} positive, {len(neg)} negative)", fontsize=10)
    shares = rows.sort_values("percent", ascending=False)
    shown = shares[shares["percent"] >= MIN_PERCENT].iloc[:SHOWN]
    rest = shares.iloc[len(shown):]
    other = rest["percent"].sum()
    names = [f"{r.sign} {r.concept}" for r in shown.itertuples()] + ([f"other ({len(rest)} concepts)"] if other else [])
    values = list(shown["percent"]) + ([other] if other else [])
    right.barh(range(len(values)), values, color=["#6d6875"] * len(shown) + ["#c9c5cb"] * bool(other))
    right.bar_label(right.containers[0], labels=[f"{v:.1f}%" for v in values], fontsize=8, padding=2)
    right.margins(x=0.12)
    right.set_yticks(range(len(values)), names)
    right.invert_yaxis()
    right.set_xlabel("% of the class's |summed weight|")
    right.set_title(f"'{class_name}': concept distribution (+ raises, - lowers its logit)", fontsize=10)
    return fig
