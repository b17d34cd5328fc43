"""Ground truth for the explanations (issue 11): on a small NeuroView model trained on `shapes`, whose classes are
defined by colour, texture or shape, (a) colour classes rest on colour units and on their channel, (b) each class's
top concept is of its cue's category, (c) removing a class's top 1% of units costs it far more than a random 1%.

The model: smallcnn, soft codes reduced by max, 32 px, 300 training and 100 validation images per class, 12 epochs
(about 25 s on one thread). (b) and (c) on the dense head are stated at the issue's bar and expected to fail on this
model, with the measured numbers: it has almost no units the dissection labels with a shape, and its dense head is
redundant; (c) holds for a sparse head refitted on the same codes, and (b) for the README's fully trained demo. The checks need a world whose validation images keep every colour channel (zeroing one
then gives a training-distribution image); on an older world they are skipped with that reason.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nvcli.analysis.ablation import AblationOptions, ablation_frame, ablation_summary
from nvcli.analysis.codes import split_codes
from nvcli.analysis.dissect.concepts import DEFAULT_AGGREGATE, ConceptMap, dissect_run
from nvcli.analysis.head import Head, read_head
from nvcli.analysis.importance import DEFAULT_RANK, CodeStats
from nvcli.analysis.perturb import perturb
from nvcli.analysis.sparse.solver import Standardizer, elastic_net_path, fold
from nvcli.data.shapes import COLOUR_CLASSES, SHAPE_CLASSES, TEXTURE_CLASSES, ShapesOptions
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import Run
from nvcli.training.config import TrainConfig
from nvcli.training.recipes import train

CUE_CATEGORY = {**{c: "color" for c in COLOUR_CLASSES}, **{t: "texture" for t in TEXTURE_CLASSES},
                **{s: "object" for s in SHAPE_CLASSES}}
OPTIONS = ShapesOptions(image_size=32, train_per_class=300, val_per_class=100)


def _validation_loses_channels(options: ShapesOptions) -> bool:
    from nvcli.data.shapes import load_shapes

    val = load_shapes(ShapesOptions(image_size=16, train_per_class=1, val_per_class=20, seed=options.seed)).val
    return any((val[i][0].amax(dim=(1, 2)) == 0).any() for i in range(len(val)))


pytestmark = pytest.mark.skipif(_validation_loses_channels(OPTIONS), reason="this shapes world removes colour channels "
                                "from validation images, so zeroing a channel leaves images never seen in training; "
                                "the ground truth needs the redesigned world (issue 11)")


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, ConceptMap]:
    """The model, trained once, and its concept map with nv dissect-map's defaults."""
    cfg = TrainConfig(epochs=12, batch_size=32, lr=3e-3, device="cpu")
    run = train(ModelChoice(arch="smallcnn", code="soft", reduce="max"), "shapes", OPTIONS, cfg, name="truth",
                runs_dir=tmp_path_factory.mktemp("truth"))
    return run, dissect_run(run, device="cpu")


def _stats(run: Run) -> tuple[np.ndarray, np.ndarray, CodeStats]:
    codes = split_codes(run, "val", device="cpu")
    mean, std = codes.mean_std()
    return np.asarray(codes.z, dtype=np.float64), codes.labels, CodeStats(mean, std, "val", len(codes.labels))


def test_a_colour_classes_rest_on_colour_units_and_their_channel(truth: tuple[Run, ConceptMap]) -> None:
    run, concepts = truth
    head = read_head(run, "test")
    units = concepts.units
    colour_unit = (units["category"] == "color").to_numpy() & units["interpretable"].to_numpy(bool)
    for name in COLOUR_CLASSES:
        top = np.argsort(-head.weight[head.class_index(name)], kind="stable")[:10]
        assert colour_unit[top].sum() >= 6, units.iloc[top][["concept", "category", "iou"]]
        # ... and more of them of its own colour than its share of the units would give (measured 7 / 4 / 5 of 10,
        # where the own-colour share of all units predicts 2-3)
        own = units["concept"].to_numpy()[top] == name
        assert own.sum() >= max(4, 1.5 * 10 * (units["concept"] == name).mean()), units.iloc[top][["concept", "iou"]]
    accuracy = perturb(run, device="cpu").accuracy.pivot(index="class", columns="condition", values="accuracy")
    for channel in COLOUR_CLASSES:
        assert accuracy.loc[channel, channel] <= 0.05, accuracy  # its cue is gone
        others = list(TEXTURE_CLASSES + SHAPE_CLASSES)
        kept = accuracy.loc[others, channel] / accuracy.loc[others, "none"]
        assert (kept >= 0.8).all(), kept


@pytest.mark.xfail(strict=True, reason="this small model has almost no shape units to find: the dissection labels 2 of "
                   "its 112 units `object` (both `triangle`), so the shape classes' top concepts are colours or textures; "
                   "6 of 9 with the default balanced aggregation (mean 7, sum 6; seeds 1 and 2: 6-7 of 9; smallcnn with "
                   "mean codes: 4-9). The demo's AlexNet meets the bar: 9 of 9 balanced, 8 mean, 7 sum "
                   "(docs/explanations.md)")
def test_b_each_class_top_concept_is_of_its_cue(truth: tuple[Run, ConceptMap]) -> None:
    _, concepts = truth
    table = concepts.classes
    top = table[(table["sign"] == "+") & (table["rank"] == 1)].set_index("class")
    hits = [c for c in CUE_CATEGORY if c in top.index and top.loc[c, "category"] == CUE_CATEGORY[c]]
    assert len(hits) >= 8, top[["concept", "category", "weight", "units"]]


def test_b_colour_and_texture_classes_top_concept_is_of_their_cue(truth: tuple[Run, ConceptMap]) -> None:
    """The part of (b) this model supports: its colour and texture units are labelled, so all six classes whose cue is
    a colour or a texture get a top concept of that category (a concept with most units, `white`, does not win)."""
    _, concepts = truth
    table = concepts.classes
    top = table[(table["sign"] == "+") & (table["rank"] == 1)].set_index("class")
    for name in COLOUR_CLASSES + TEXTURE_CLASSES:
        assert top.loc[name, "category"] == CUE_CATEGORY[name], top[["concept", "category", "weight", "units"]]
    assert top.loc[list(COLOUR_CLASSES), "concept"].tolist() == list(COLOUR_CLASSES)  # each its own colour


def _ablation_costs(run: Run, head: Head, rank: str) -> pd.DataFrame:
    z, labels, stats = _stats(run)
    options = AblationOptions(rank=rank, draws=30, steps=1)
    summary = ablation_summary(ablation_frame(z, labels, head, stats, options), options.summary_k(z.shape[1]))
    return summary.assign(top_cost=summary["accuracy"] - summary["top_accuracy"],
                          random_cost=summary["accuracy"] - summary["random_accuracy"])


def _meets_the_bar(costs: pd.DataFrame) -> pd.Series:
    """Issue 11 (c): the top 1% costs the class accuracy, at least three times what a random 1% costs."""
    return (costs["top_cost"] > 0) & (costs["top_cost"] >= 3 * costs["random_cost"].clip(lower=0))


@pytest.mark.xfail(strict=True, reason="the jointly trained dense head is redundant: removing a class's top 1% (2 of "
                   "112 units) costs 0.00-0.13 accuracy (0 for 6 of 9 classes) against -0.005-0.003 for a random "
                   "1%, though the margin drops 5.6x more (measured on this model; docs/explanations.md)")
def test_c_dense_head_top_units_are_necessary(truth: tuple[Run, ConceptMap]) -> None:
    run, _ = truth
    costs = _ablation_costs(run, read_head(run, "test"), DEFAULT_RANK)
    assert _meets_the_bar(costs).all(), costs


def test_c_dense_head_top_units_cost_the_margin_more_than_random(truth: tuple[Run, ConceptMap]) -> None:
    run, _ = truth
    costs = _ablation_costs(run, read_head(run, "test"), DEFAULT_RANK)
    top, random = costs["margin"] - costs["top_margin"], costs["margin"] - costs["random_margin"]
    assert top.mean() >= 3 * random.mean(), costs


@pytest.mark.parametrize("rank", ["weight", "importance"])
def test_c_sparse_head_top_units_are_necessary(truth: tuple[Run, ConceptMap], rank: str) -> None:
    """An L1 head refitted on the same codes (the elastic-net solver of nv sparsify): each class rests on a few units."""
    run, _ = truth
    dense = read_head(run, "test")
    train_codes, val_codes = split_codes(run, "train", device="cpu"), split_codes(run, "val", device="cpu")
    (x, y), (xv, yv) = train_codes.tensors(), val_codes.tensors()
    scale = Standardizer.fit(x.double())
    path = elastic_net_path(scale(x.double()), y, scale(xv.double()), yv, steps=30, patience=None)
    dense_accuracy = float(((xv.double().numpy() @ dense.weight.T + dense.bias).argmax(1) == yv.numpy()).mean())
    step = next(s for s in path.steps if s.val_acc >= dense_accuracy - 0.02)  # the sparsest nearly as accurate
    weight, bias = fold(step.weight(), step.bias, scale.mean, scale.std)
    sparse = Head(weight.numpy(), bias.numpy(), dense.units, dense.classes, "l1")
    costs = _ablation_costs(run, sparse, rank)
    assert step.nonzero_mean <= 10 and _meets_the_bar(costs).all(), (step.nonzero_mean, costs)


def test_dissect_map_defaults_are_what_the_ground_truth_used(truth: tuple[Run, ConceptMap]) -> None:
    _, concepts = truth
    assert concepts.dissection["aggregate"] == DEFAULT_AGGREGATE and concepts.dissection["quantile"] == 0.005
    assert concepts.dissection["rank"] == DEFAULT_RANK and "on 64 px" in concepts.probe
