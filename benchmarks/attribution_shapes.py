"""NeuroView's exact where maps against Captum's Grad-CAM, Integrated Gradients and Occlusion on the same model and
images of the built-in `shapes` world (exact object masks): the share of positive attribution inside the object
(energy pointing game), deletion AUC (lower is better) and insertion AUC (higher is better), per class and overall.

Needs Captum (pip install 'nvcli[captum]'). By default trains the test suite's run (smallcnn, soft codes, max reduce,
32 px shapes, 100 training images per class, 12 epochs) in a temporary folder; --run measures an existing shapes run.
Run: python benchmarks/attribution_shapes.py [--run RUN] [--per-class 20]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nvcli.analysis.attribution import METHODS, attribution_maps, deletion_insertion, inside_share
from nvcli.analysis.head import read_head
from nvcli.data.shapes import ShapesOptions
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import Run, load_run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train


def test_run(runs_dir: Path) -> Run:
    """The session run of tests/conftest.py."""
    data = ShapesOptions(image_size=32, train_per_class=100, val_per_class=20)
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu")
    return train(ModelChoice(arch="smallcnn", code="soft", reduce="max"), "shapes", data, cfg, name="nv",
                 runs_dir=runs_dir)


def measure(run: Run, per_class: int) -> pd.DataFrame:
    """One row per (method, class, metric): the mean over the class's first `per_class` validation images."""
    val = run.data().val
    labels = val.labels.numpy()
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(run.classes))])
    x = torch.stack([val[int(i)][0] for i in chosen])
    target = torch.from_numpy(labels[chosen])
    masks = val.renderer().masks["object"][chosen] > 0
    model, head = run.model(), read_head(run)
    rows = []
    for method in METHODS:
        maps = attribution_maps(model, head, x, target, method)
        deletion, insertion = deletion_insertion(model, x, target, maps)
        values = {"inside": inside_share(maps, masks), "deletion": deletion, "insertion": insertion}
        for metric, per_image in values.items():
            for c, name in enumerate(run.classes):
                rows.append({"method": method, "class": name, "metric": metric,
                             "value": float(np.nanmean(per_image[target.numpy() == c]))})
            rows.append({"method": method, "class": "overall", "metric": metric, "value": float(np.nanmean(per_image))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained NeuroView shapes run (default: train the test run)")
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="nv-attribution-") as tmp:
        run = load_run(args.run) if args.run else test_run(Path(tmp))
        frame = measure(run, args.per_class)
    table = frame.pivot_table(index=["metric", "class"], columns="method", values="value", sort=False)[list(METHODS)]
    print(f"area share of the object: see inside; {args.per_class} validation images per class")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
