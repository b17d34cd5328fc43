"""Figure 4 for one class: its strongest positive and negative concepts, and its concept distribution."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


def concept_figure(table: pd.DataFrame, class_name: str, top: int = 5) -> Figure:
    """Figure 4 for one class: top positive and negative concepts (bars) and its concept distribution."""
    rows = table[table["class"] == class_name]
    pos = rows[(rows["sign"] == "+") & (rows["rank"] <= top)]
    neg = rows[(rows["sign"] == "-") & (rows["rank"] <= top)]
    bars = pd.concat([pos, neg.iloc[::-1]])
    fig = Figure(figsize=(11, 0.45 * max(len(bars), 4) + 1.5), layout="constrained")
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
    left.set_title(f"{class_name}: top {top} positive and negative concepts")
    shares = rows.sort_values("percent", ascending=False)
    shown = shares.iloc[:15]
    other = shares["percent"].iloc[15:].sum()
    names = [f"{r.sign} {r.concept}" for r in shown.itertuples()] + ([f"other ({len(shares) - 15})"] if other else [])
    values = list(shown["percent"]) + ([other] if other else [])
    right.barh(range(len(values)), values, color="#6d6875")
    right.set_yticks(range(len(values)), names)
    right.invert_yaxis()
    right.set_xlabel("% of the class's |summed weight|")
    right.set_title("concept distribution")
    return fig
