"""Ground truth for the explanations (issue 11): on a small NeuroView model trained on `shapes`, whose classes are
defined by colour, texture or shape, (a) colour classes rest on units of their colour and on their channel, (b) each
class's top concept is of its cue's category, (c) removing a class's top 1% of units costs it far more than a random 1%.

The model: smallcnn, soft codes reduced by max, 32 px, 300 training and 100 validation images per class, 12 epochs
(about 25 s on one thread). (b) and (c) on the dense head are stated at the issue's bar and expected to fail on this
model, with the measured numbers: it has almost no units the dissection labels with a shape, and its dense head is
redundant; (c) holds for a sparse head refitted on the same codes, and (b) for the README's fully trained demo. The
checks need a world whose validation images keep every colour channel (zeroing one then gives a training-distribution
image); on an older world they are skipped with that reason.

Each assertion is a `Bound` on a statistic that does not hinge on a few units or images, set with a margin from
measurements across PyTorch's CPU kernels (ATEN_CPU_CAPABILITY=default and avx2) and seeds 0-2, because one
12-epoch training differs from CPU to CPU (issue 26): benchmarks/ground_truth_margins.py measures them, and
docs/testing.md has the table and what each bound replaced.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nvcli.analysis.ablation import AblationOptions, ablation_frame, ablation_summary
from nvcli.analysis.code_cache import split_codes
from nvcli.analysis.dissect.concepts import DEFAULT_AGGREGATE, ConceptMap, dissect_run
from nvcli.analysis.head import Head, read_head
from nvcli.analysis.importance import DEFAULT_RANK, CodeStats
from nvcli.analysis.perturb import perturb
from nvcli.analysis.settings import Compute
from nvcli.analysis.sparse.solver import Standardizer, elastic_net_path, fold
from nvcli.data.shapes import COLOUR_CLASSES, SHAPE_CLASSES, TEXTURE_CLASSES, ShapesOptions
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import Run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train

CUE_CATEGORY = {**{c: "color" for c in COLOUR_CLASSES}, **{t: "texture" for t in TEXTURE_CLASSES},
                **{s: "object" for s in SHAPE_CLASSES}}
OPTIONS = ShapesOptions(image_size=32, train_per_class=300, val_per_class=100)
# The bounds, set from the margins measured across CPU kernels and seeds (docs/testing.md)
OWN_COLOUR_OUTRANKS = 0.65  # chance 0.5
SPARSE_UNITS_PER_CLASS = 10
SPARSE_ACCURACY_RATIO = 3  # issue 11's "far more": three times
SPARSE_MARGIN_RATIO = 1.5


def _validation_loses_channels(options: ShapesOptions) -> bool:
    from nvcli.data.shapes import load_shapes

    val = load_shapes(ShapesOptions(image_size=16, train_per_class=1, val_per_class=20, seed=options.seed)).val
    return any((val[i][0].amax(dim=(1, 2)) == 0).any() for i in range(len(val)))


pytestmark = pytest.mark.skipif(_validation_loses_channels(OPTIONS), reason="this shapes world removes colour channels "
                                "from validation images, so zeroing a channel leaves images never seen in training; "
                                "the ground truth needs the redesigned world (issue 11)")


@dataclass(frozen=True)
class Bound:
    """One measured value of a ground-truth assertion and the bound it must meet (the benchmark prints the margin)."""

    name: str
    value: float
    bound: float
    at_least: bool = True

    @property
    def margin(self) -> float:
        return self.value - self.bound if self.at_least else self.bound - self.value

    @property
    def holds(self) -> bool:
        return self.margin >= 0


def truth_model(runs_dir: Path, seed: int = 0) -> tuple[Run, ConceptMap]:
    """The test model trained with `seed` (data and initialisation) and its concept map with dissect-map's defaults."""
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu", seed=seed)
    options = dataclasses.replace(OPTIONS, seed=seed)
    run = train(ModelChoice(arch="smallcnn", code="soft", reduce="max"), "shapes", options, cfg, name="truth",
                runs_dir=runs_dir)
    return run, dissect_run(run, compute=Compute(device="cpu"))


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, ConceptMap]:
    """The model, trained once, and its concept map."""
    return truth_model(tmp_path_factory.mktemp("truth"))


def _stats(run: Run) -> tuple[np.ndarray, np.ndarray, CodeStats]:
    codes = split_codes(run, "val", device="cpu")
    mean, std = codes.mean_std()
    return np.asarray(codes.z, dtype=np.float64), codes.labels, CodeStats(mean, std, "val", len(codes.labels))


def colour_unit_bounds(run: Run, concepts: ConceptMap) -> list[Bound]:
    """(a) Per colour class, how its head row ranks the units the dissection labels with its colour: the chance that
    one of them outweighs another unit, and one labelled with another of red, green and blue (0.5: no preference)."""
    head = read_head(run)
    units = concepts.units
    concept = np.where(units["interpretable"].to_numpy(bool), units["concept"].to_numpy(), "")
    bounds = []
    for name in COLOUR_CLASSES:
        weight = head.weight[head.class_index(name)]
        own, rival = concept == name, np.isin(concept, [c for c in COLOUR_CLASSES if c != name])
        bounds += [Bound(f"{name}: P({name} unit outweighs any other)", _outranks(weight[own], weight[~own]),
                         OWN_COLOUR_OUTRANKS),
                   Bound(f"{name}: P({name} unit outweighs another colour's)", _outranks(weight[own], weight[rival]),
                         OWN_COLOUR_OUTRANKS)]
    return bounds


def _outranks(a: np.ndarray, b: np.ndarray) -> float:
    """The chance that a weight drawn from `a` exceeds one drawn from `b` (ties count half): the ROC AUC."""
    return float(((a[:, None] > b[None, :]).mean() + (a[:, None] == b[None, :]).mean() / 2))


def channel_bounds(run: Run) -> list[Bound]:
    """(a) Zeroing a colour channel removes its class and keeps the others' accuracy."""
    result = perturb(run, compute=Compute(device="cpu"))
    accuracy = result.accuracy.pivot(index="class", columns="condition", values="accuracy")
    others = list(TEXTURE_CLASSES + SHAPE_CLASSES)
    bounds = []
    for channel in COLOUR_CLASSES:
        kept = accuracy.loc[others, channel] / accuracy.loc[others, "none"]
        bounds += [Bound(f"{channel} class accuracy without {channel}", accuracy.loc[channel, channel], 0.05, False),
                   Bound(f"others' least accuracy kept without {channel}", kept.min(), 0.8)]
    return bounds


def _positive_concepts(concepts: ConceptMap) -> pd.DataFrame:
    table = concepts.classes
    return table[table["sign"] == "+"]


def cue_concept_bounds(concepts: ConceptMap) -> list[Bound]:
    """(b) Colour and texture classes: the heaviest concept of their cue's category over the heaviest of any other
    (> 1: the top concept is of the cue's category); colour classes: their own colour over any other concept."""
    positive = _positive_concepts(concepts)
    bounds = []
    for name in COLOUR_CLASSES + TEXTURE_CLASSES:
        rows = positive[positive["class"] == name]
        cue = rows["category"] == CUE_CATEGORY[name]
        bounds.append(Bound(f"{name}: best {CUE_CATEGORY[name]} / best other concept",
                            _ratio(rows.loc[cue, "weight"], rows.loc[~cue, "weight"]), 1))
    for name in COLOUR_CLASSES:
        rows = positive[positive["class"] == name]
        own = rows["concept"] == name
        bounds.append(Bound(f"{name}: own colour / best other concept",
                            _ratio(rows.loc[own, "weight"], rows.loc[~own, "weight"]), 1))
    return bounds


def _ratio(weights: pd.Series, rivals: pd.Series) -> float:
    """The heaviest of `weights` over the heaviest of `rivals` (0 when no weight is positive, else infinite when no
    rival is)."""
    best, rival = weights.max() if len(weights) else 0.0, rivals.max() if len(rivals) else 0.0
    return 0.0 if best <= 0 else best / rival if rival > 0 else np.inf


def all_cue_bound(concepts: ConceptMap) -> Bound:
    """(b) at the issue's bar: classes (of 9) whose top concept is of their cue's category."""
    positive = _positive_concepts(concepts)
    top = positive[positive["rank"] == 1].set_index("class")
    hits = [c for c in CUE_CATEGORY if c in top.index and top.loc[c, "category"] == CUE_CATEGORY[c]]
    return Bound("classes whose top concept is of their cue", len(hits), 8)


def _ablation_costs(run: Run, head: Head, rank: str) -> pd.DataFrame:
    z, labels, stats = _stats(run)
    options = AblationOptions(rank=rank, draws=30, steps=1)
    summary = ablation_summary(ablation_frame(z, labels, head, stats, options), options.summary_k(z.shape[1]))
    return summary.assign(top_cost=summary["accuracy"] - summary["top_accuracy"],
                          random_cost=summary["accuracy"] - summary["random_accuracy"])


def _margin_costs(costs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    return costs["margin"] - costs["top_margin"], costs["margin"] - costs["random_margin"]


def dense_bar_bounds(run: Run) -> list[Bound]:
    """(c) at the issue's bar, on the dense head: the top 1% costs each class accuracy, and at least three times what
    a random 1% costs; the least margin over the classes of each."""
    costs = _ablation_costs(run, read_head(run), DEFAULT_RANK)
    excess = costs["top_cost"] - 3 * costs["random_cost"].clip(lower=0)
    return [Bound("dense: least accuracy cost of the top 1%", costs["top_cost"].min(), 1e-9),
            Bound("dense: least top cost - 3 x random cost", excess.min(), 0)]


def dense_margin_bound(run: Run) -> Bound:
    """(c) on the dense head: the top 1% costs the margin, on average, at least three times a random 1%."""
    top, random = _margin_costs(_ablation_costs(run, read_head(run), DEFAULT_RANK))
    return Bound("dense: mean margin cost, top 1% / random 1%", top.mean() / max(random.mean(), 1e-9), 3)


def sparse_head(run: Run) -> tuple[Head, float]:
    """An L1 head refitted on the same codes (nv sparsify's elastic-net solver): the sparsest on the path that is
    nearly as accurate as the dense head and gives every class a unit; and its mean units per class."""
    dense = read_head(run)
    train_codes, val_codes = split_codes(run, "train", device="cpu"), split_codes(run, "val", device="cpu")
    (x, y), (xv, yv) = train_codes.tensors(), val_codes.tensors()
    scale = Standardizer.fit(x.double())
    path = elastic_net_path(scale(x.double()), y, scale(xv.double()), yv, steps=30, patience=None)
    dense_accuracy = float(((xv.double().numpy() @ dense.weight.T + dense.bias).argmax(1) == yv.numpy()).mean())
    step = next(s for s in path.steps if s.val_acc >= dense_accuracy - 0.02 and bool(s.weight().any(dim=1).all()))
    weight, bias = fold(step.weight(), step.bias, scale.mean, scale.std)
    return Head(weight.numpy(), bias.numpy(), dense.units, dense.classes, "l1"), step.nonzero_mean


def sparse_bounds(run: Run, head: Head, rank: str) -> list[Bound]:
    """(c) on the sparse head: removing a class's top 1% costs the classes' accuracy, on average, far more than a
    random 1%, and costs every class's margin more than a random 1% does."""
    costs = _ablation_costs(run, head, rank)
    top, random = _margin_costs(costs)
    return [Bound(f"sparse by {rank}: mean accuracy cost, top 1% / random 1%",
                  costs["top_cost"].mean() / max(costs["random_cost"].mean(), 1e-9), SPARSE_ACCURACY_RATIO),
            Bound(f"sparse by {rank}: least margin cost, top 1% / random 1%",
                  (top / random.clip(lower=1e-9)).min(), SPARSE_MARGIN_RATIO)]


def _failed(bounds: list[Bound]) -> list[Bound]:
    return [b for b in bounds if not b.holds]


def test_a_colour_classes_rest_on_colour_units_and_their_channel(truth: tuple[Run, ConceptMap]) -> None:
    run, concepts = truth
    assert not _failed(colour_unit_bounds(run, concepts))
    assert not _failed(channel_bounds(run))


@pytest.mark.xfail(strict=True, reason="this small model has almost no shape units to find: the dissection labels 2 of "
                   "its 112 units `object` (both `triangle`), so the shape classes' top concepts are colours or "
                   "textures; 6 of 9 with the default balanced aggregation (mean 7, sum 6; seeds 1 and 2: 6-7 of 9; "
                   "smallcnn with "
                   "mean codes: 4-9). The demo's AlexNet meets the bar: 9 of 9 balanced, 8 mean, 7 sum "
                   "(docs/explanations.md)")
def test_b_each_class_top_concept_is_of_its_cue(truth: tuple[Run, ConceptMap]) -> None:
    assert all_cue_bound(truth[1]).holds, truth[1].classes


def test_b_colour_and_texture_classes_top_concept_is_of_their_cue(truth: tuple[Run, ConceptMap]) -> None:
    """The part of (b) this model supports: its colour and texture units are labelled, so all six classes whose cue is
    a colour or a texture get a top concept of that category (a concept with most units, `white`, does not win)."""
    assert not _failed(cue_concept_bounds(truth[1])), truth[1].classes


@pytest.mark.xfail(strict=True, reason="the jointly trained dense head is redundant: removing a class's top 1% (2 of "
                   "112 units) costs 0.00-0.13 accuracy (0 for 6 of 9 classes) against -0.005-0.003 for a random "
                   "1%, though the margin drops 5.6x more (measured on this model; docs/explanations.md)")
def test_c_dense_head_top_units_are_necessary(truth: tuple[Run, ConceptMap]) -> None:
    assert not _failed(dense_bar_bounds(truth[0]))


def test_c_dense_head_top_units_cost_the_margin_more_than_random(truth: tuple[Run, ConceptMap]) -> None:
    assert dense_margin_bound(truth[0]).holds


@pytest.fixture(scope="module")
def sparse(truth: tuple[Run, ConceptMap]) -> tuple[Head, float]:
    return sparse_head(truth[0])


def test_c_sparse_head_rests_on_few_units(sparse: tuple[Head, float]) -> None:
    assert sparse[1] <= SPARSE_UNITS_PER_CLASS


@pytest.mark.parametrize("rank", ["weight", "importance"])
def test_c_sparse_head_top_units_are_necessary(truth: tuple[Run, ConceptMap], sparse: tuple[Head, float],
                                               rank: str) -> None:
    assert not _failed(sparse_bounds(truth[0], sparse[0], rank))


def test_dissect_map_defaults_are_what_the_ground_truth_used(truth: tuple[Run, ConceptMap]) -> None:
    _, concepts = truth
    assert concepts.dissection.aggregate == DEFAULT_AGGREGATE and concepts.dissection.quantile == 0.005
    assert concepts.dissection.rank == DEFAULT_RANK and "on 64 px" in concepts.probe
