"""Multi-view data (synthetic solids, the ModelNet40/MVCNN layout on disk), models and view analysis."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from nvcli.analysis.head import Head
from nvcli.analysis.views import positive_views, views_frame
from nvcli.data.registry import load_data, make_dataset, readable
from nvcli.data.views.render import separating_views
from nvcli.data.views.solids import CLASSES
from nvcli.errors import NvError
from nvcli.fs.atomic import save_figure
from nvcli.models.archs import SmallCNN, build_network
from nvcli.models.multiview import MVCNN, MultiViewNeuroView
from nvcli.models.units import network_trunk
from nvcli.plots.views import views_figure
from nvcli.training.config import TrainConfig
from nvcli.training.engine import Trainer

SIZE = 32
PAIRS = [("cube", "cube_pocket"), ("cylinder", "cylinder_notch")]


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory):
    """The synthetic set written in the MVCNN layout (2 train + 1 test objects per class)."""
    root = tmp_path_factory.mktemp("mv") / "views"
    make_dataset("views", root, {"seed": 3, "train_per_class": 2, "val_per_class": 1, "image_size": SIZE})
    return root


@pytest.fixture
def copy(disk, tmp_path):
    """A private copy of `disk` that a test may damage."""
    import shutil

    return shutil.copytree(disk, tmp_path / "views")


def test_registered() -> None:
    assert {"views", "modelnet40"} <= {e.name for e in readable()}


def test_make_views_round_trip(disk) -> None:
    loaded = load_data("modelnet40", {"data_dir": str(disk), "image_size": SIZE})
    memory = load_data("views", {"image_size": SIZE, "seed": 3, "train_per_class": 2, "val_per_class": 1})
    assert loaded.kind == memory.kind == "views"
    assert loaded.classes == memory.classes == list(CLASSES)
    assert (len(loaded.train), len(loaded.val)) == (12, 6)
    assert loaded.info["views"] == 12 and loaded.info["skipped"] == 0
    x, label = loaded.train[3]
    assert x.shape == (12, 3, SIZE, SIZE) and x.dtype == torch.float32 and label == 1
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.3
    for split in ("train", "val"):
        for (a, la), (b, lb) in zip(getattr(loaded, split), getattr(memory, split)):
            assert la == lb and torch.equal(a, b)  # PNG round trip is exact; train from train/, val from test/
    assert loaded.cues == memory.cues
    assert loaded.info["separating_views"] == memory.info["separating_views"]


def test_view_subset(disk) -> None:
    every = load_data("modelnet40", {"data_dir": str(disk), "image_size": SIZE}).train[0][0]
    four = load_data("modelnet40", {"data_dir": str(disk), "image_size": SIZE, "views": 4})
    assert four.info["view_numbers"] == [1, 4, 7, 10]
    assert torch.equal(four.train[0][0], every[[0, 3, 6, 9]])
    assert four.info["separating_views"]["cube|cube_pocket"] == [0]  # of azimuths 0, 90, 180, 270 only 0 sees it
    with pytest.raises(NvError, match=r"views 5 .*valid: 1, 2, 3, 4, 6, 12"):
        load_data("modelnet40", {"data_dir": str(disk), "views": 5})


def test_resize_and_classes(disk) -> None:
    bundle = load_data("modelnet40", {"data_dir": str(disk), "image_size": 16, "classes": ["sphere", "cube"]})
    assert bundle.classes == ["cube", "sphere"]  # the dataset's own (folder) order
    assert bundle.train[0][0].shape == (12, 3, 16, 16)
    assert sorted({label for _, label in bundle.train}) == [0, 1]
    with pytest.raises(NvError, match="cubes"):
        load_data("modelnet40", {"data_dir": str(disk), "classes": ["cubes"]})


def test_missing_view_names_object(copy, caplog) -> None:
    (copy / "cube_pocket" / "train" / "cube_pocket_0002.obj.shaded_v007.png").unlink()
    with pytest.raises(NvError, match=r"cube_pocket/train/cube_pocket_0002.* v007"):
        load_data("modelnet40", {"data_dir": str(copy)})
    with caplog.at_level(logging.WARNING, logger="nvcli"):
        bundle = load_data("modelnet40", {"data_dir": str(copy), "on_error": "skip"})
    assert bundle.info["skipped"] == 1 and len(bundle.train) == 11 and len(bundle.val) == 6
    assert "cube_pocket/train/cube_pocket_0002" in caplog.text
    with pytest.raises(NvError, match="on_error"):
        load_data("modelnet40", {"data_dir": str(copy), "on_error": "ignore"})


def test_grouping_ignores_unrelated_files(copy, disk) -> None:
    folder = copy / "cube" / "train"
    for name in ("notes.txt", ".DS_Store", "thumbnail.png", "cube_0001.obj.shaded_v001.png.bak"):
        (folder / name).write_bytes(b"not an image")
    (folder / "renders_old").mkdir()
    (copy / ".cache").mkdir()
    (copy / "README").write_text("the dataset")
    damaged, clean = load_data("modelnet40", {"data_dir": str(copy)}), load_data("modelnet40", {"data_dir": str(disk)})
    assert damaged.classes == clean.classes and len(damaged.train) == len(clean.train)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(damaged.train, clean.train))


def test_loader_errors(copy, tmp_path) -> None:
    with pytest.raises(NvError, match="data_dir"):
        load_data("modelnet40", {"data_dir": None})
    with pytest.raises(NvError, match="not a directory"):
        load_data("modelnet40", {"data_dir": str(tmp_path / "absent")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(NvError, match="no class folders"):
        load_data("modelnet40", {"data_dir": str(tmp_path / "empty")})
    for old in (copy / "cone" / "test").iterdir():
        old.unlink()
    with pytest.raises(NvError, match=r"class 'cone' has no objects in .*cone/test"):
        load_data("modelnet40", {"data_dir": str(copy)})


def test_make_views_refuses_non_empty(copy) -> None:
    with pytest.raises(NvError, match="not empty"):
        make_dataset("views", copy, {"train_per_class": 1, "val_per_class": 1, "image_size": SIZE})
    make_dataset("views", copy, {"train_per_class": 1, "val_per_class": 1, "image_size": SIZE}, force=True)
    bundle = load_data("modelnet40", {"data_dir": str(copy), "image_size": SIZE})
    assert (len(bundle.train), len(bundle.val)) == (6, 6)  # the forced rewrite left no stale objects


def test_ground_truth_views() -> None:
    truth, differ = separating_views(), separating_views(min_fraction=0.0)
    assert truth[("cube", "cube_pocket")] == [0, 1, 2, 10, 11]
    assert truth[("cylinder", "cylinder_notch")] == [4, 5, 6, 7, 8]
    assert differ[("cube", "cube_pocket")] == [0, 1, 2, 10, 11]  # the other views show no difference at all
    assert differ[("cylinder", "cylinder_notch")] == [3, 4, 5, 6, 7, 8, 9]  # side-on views: a sliver only
    assert all(truth[(a, b)] == list(range(12)) for a, b in truth if {a, b} & {"cone", "sphere"})
    bundle = load_data("views", {"image_size": SIZE, "train_per_class": 1, "val_per_class": 1, "views": 6})
    assert bundle.info["azimuths"] == [0, 60, 120, 180, 240, 300]
    assert bundle.info["separating_views"]["cube|cube_pocket"] == [0, 1, 5]
    assert set(bundle.cues) == set(CLASSES)


# --- models ---------------------------------------------------------------------------------------

def _model(shared: bool, views: int = 4, **kwargs) -> MultiViewNeuroView:
    torch.manual_seed(0)
    return MultiViewNeuroView(lambda: SmallCNN(5, 3, 8), 5, views=views, shared_backbone=shared,
                              input_shape=(3, SIZE, SIZE), **kwargs).eval()


@pytest.mark.parametrize("shared", [False, True])
def test_each_view_reaches_only_its_units(shared: bool) -> None:
    model = _model(shared)
    per_view = model.num_units // 4
    x = torch.rand(3, 4, 3, SIZE, SIZE)
    with torch.no_grad():
        z = model.features(x)
        for view in range(4):
            moved = x.clone()
            moved[:, view] = torch.rand(3, 3, SIZE, SIZE)
            z2 = model.features(moved)
            for other in range(4):
                part = slice(other * per_view, (other + 1) * per_view)
                assert torch.equal(z[:, part], z2[:, part]) == (other != view), (view, other)
            assert not torch.equal(model(x), model(moved))


@pytest.mark.parametrize("shared", [False, True])
def test_head_is_one_linear_over_all_views(shared: bool) -> None:
    model = _model(shared)
    per_view = sum(layer.channels for layer in model.codes[0].layers)
    assert len(model.codes) == (1 if shared else 4)
    assert model.head.in_features == model.num_units == 4 * per_view == 4 * (8 + 16 + 32)
    x = torch.rand(2, 4, 3, SIZE, SIZE)
    with torch.no_grad():
        z = model.features(x)
        assert torch.allclose(model(x), z @ model.head.weight.T + model.head.bias, atol=1e-6)
    units = model.units()
    assert list(units.columns) == ["unit", "view", "layer", "node", "label", "channel"]
    assert units["unit"].tolist() == list(range(model.num_units))
    assert units["view"].tolist() == [v for v in range(4) for _ in range(per_view)]
    for i, layer in enumerate(model.layers):
        assert set(units.loc[list(layer.units), "view"]) == {i // 3}
    maps = model.unit_maps(x)
    assert [m.shape[1] for m in maps] == [layer.channels for layer in model.layers]
    backbones = {k.split(".")[1] for k in model.state_dict() if k.startswith("codes.")}
    assert len(backbones) == len(model.codes)


def test_shared_backbone_is_one_network_applied_per_view() -> None:
    shared, single = _model(True), SmallCNN(5, 3, 8)
    assert sum(p.numel() for p in shared.codes.parameters()) == sum(
        p.numel() for n, p in single.named_parameters() if not n.startswith("classifier"))
    x = torch.rand(2, 4, 3, SIZE, SIZE)
    with torch.no_grad():
        z = shared.features(x)
        alone = torch.cat([shared.codes[0](shared.normalize(x[:, v])) for v in range(4)], dim=1)
    assert torch.allclose(z, alone, atol=1e-6)


def test_networks_argument_forms() -> None:
    nets = [SmallCNN(5, 3, 8) for _ in range(3)]
    assert len(MultiViewNeuroView(nets, 5, views=3, input_shape=(3, SIZE, SIZE)).codes) == 3
    one = MultiViewNeuroView(nets[:1], 5, views=3, input_shape=(3, SIZE, SIZE))
    assert one.shared_backbone and one.head.in_features == 3 * 56
    with pytest.raises(ValueError):
        MultiViewNeuroView(nets[:2], 5, views=3, input_shape=(3, SIZE, SIZE))
    with pytest.raises(NvError, match=r"\[batch, 3, channels, height, width\]"):
        one(torch.rand(2, 3, SIZE, SIZE))


def test_mvcnn_pools_views() -> None:
    torch.manual_seed(0)
    model = MVCNN(SmallCNN(5, 3, 8), 5, input_shape=(3, SIZE, SIZE)).eval()
    assert model.classifier.in_features == 32
    x = torch.rand(2, 6, 3, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 5)
        assert torch.allclose(out, model(x[:, torch.randperm(6)]), atol=1e-6)  # max over views ignores order
        pooled = torch.stack([model.trunk(model.normalize(x[:, v])) for v in range(6)]).amax(0).flatten(1)
        assert torch.allclose(out, model.classifier(pooled), atol=1e-6)
    resnet = network_trunk(build_network("resnet18", 5, 3, SIZE)).eval()
    assert resnet(torch.rand(1, 3, SIZE, SIZE)).shape == (1, 512, 1, 1)


def test_views_frame_and_figure(tmp_path) -> None:
    model = _model(False)
    with torch.no_grad():
        model.head.weight.normal_()
    names = ["a", "b", "c", "d", "e"]
    frame = views_frame(Head.from_tensors(model.head.weight, model.head.bias, model.units(), names))
    assert list(frame.columns) == ["class", "view", "mean_weight", "pos_weight", "neg_weight"]
    assert len(frame) == 5 * 4
    w = model.head.weight[2, 3 * 56:4 * 56]
    row = frame[(frame["class"] == "c") & (frame["view"] == 3)].iloc[0]
    assert row["mean_weight"] == pytest.approx(w.mean().item(), abs=1e-6)
    assert row["pos_weight"] == pytest.approx(w.clamp(min=0).sum().item(), rel=1e-5)
    assert row["neg_weight"] == pytest.approx(w.clamp(max=0).sum().item(), rel=1e-5)
    positive = positive_views(frame)
    assert list(positive) == names
    assert positive["c"] == [v for v in range(4) if model.head.weight[2, v * 56:(v + 1) * 56].mean() > 0]
    fig = views_figure(frame)
    assert sum(ax.get_visible() for ax in fig.axes) == 5
    save_figure(tmp_path / "views.png", fig)
    assert (tmp_path / "views.png").stat().st_size > 1000
    with pytest.raises(NvError, match="3 class names"):
        views_frame(Head.from_tensors(model.head.weight, model.head.bias, model.units(), names[:3]))


# --- ground truth: what the head learns follows which views can tell classes apart ---------------------

@pytest.fixture(scope="module")
def trained():
    """NeuroView and MVCNN trained briefly on the synthetic set (single-threaded: stable and fast on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load_data("views", {"image_size": SIZE, "seed": 0, "train_per_class": 30, "val_per_class": 10})
        cfg = TrainConfig(epochs=15, batch_size=16, lr=1e-2, optimizer="adam", weight_decay=0.0,
                          scheduler="cosine", device="cpu", seed=0)
        torch.manual_seed(0)
        model = MultiViewNeuroView(lambda: SmallCNN(6, 3, 8), 6, views=12, reduce="mean",
                                   input_shape=(3, SIZE, SIZE), mean=data.mean, std=data.std)
        nn.init.zeros_(model.head.weight)  # so the head holds only what training put there
        neuroview = Trainer(model, data.train, data.val, cfg, None, device=torch.device("cpu")).fit()
        torch.manual_seed(0)
        baseline = MVCNN(SmallCNN(6, 3, 8), 6, input_shape=(3, SIZE, SIZE), mean=data.mean, std=data.std)
        mvcnn = Trainer(baseline, data.train, data.val, cfg, None, device=torch.device("cpu")).fit()
    finally:
        torch.set_num_threads(threads)
    return model, neuroview, mvcnn


def test_both_models_learn_the_task(trained) -> None:
    _, neuroview, mvcnn = trained
    assert neuroview["val_acc"].iloc[-1] > 0.7  # chance is 1/6
    assert mvcnn["val_acc"].iloc[-1] > 0.7


@pytest.mark.parametrize("pair", PAIRS)
def test_separating_views_carry_the_pair(trained, pair) -> None:
    model = trained[0]
    a, b = (CLASSES.index(c) for c in pair)
    contrast = (model.head.weight[a] - model.head.weight[b]).abs().detach().numpy()
    view_of = model.units()["view"].to_numpy()
    per_view = np.array([contrast[view_of == v].mean() for v in range(12)])
    separating = separating_views()[pair]
    blind = [v for v in range(12) if v not in separating_views(min_fraction=0.0)[pair]]
    assert int(per_view.argmax()) in separating, per_view.round(3)
    assert per_view[separating].mean() > 1.5 * per_view[blind].mean(), per_view.round(3)
