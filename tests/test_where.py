"""Where maps (nvcli/analysis/where.py): exact over every architecture, code, reduction and head, and on the object."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nvcli.analysis.head import Head, read_head, with_head
from nvcli.analysis.where import area_matrix, check_exact, where
from nvcli.errors import NvError
from nvcli.models.archs import build_network
from nvcli.models.build import build_model
from nvcli.models.multiview import MultiViewNeuroView
from nvcli.models.neuroview import NeuroView
from nvcli.models.spec import ModelSpec
from nvcli.plots.where import where_figure

ARCHS = {"smallcnn": 36, "alexnet": 32, "vgg11": 32, "resnet18": 32, "densenet121": 32}  # 36: cells of uneven area
CLASSES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def networks() -> dict[str, torch.nn.Module]:
    """One untrained network per architecture (built once: NeuroView traces it again for each code)."""
    torch.manual_seed(0)
    return {arch: build_network(arch, len(CLASSES), 3, size) for arch, size in ARCHS.items()}


def dense_head(model: torch.nn.Module) -> Head:
    return Head.from_tensors(model.head.weight, model.head.bias, model.units(), CLASSES)


def sparse_head(model: torch.nn.Module) -> Head:
    """A random head with 90% of its weights zero."""
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(model.head.weight.shape, generator=generator)
    weight[torch.rand(weight.shape, generator=generator) < 0.9] = 0
    return Head.from_tensors(weight, torch.randn(len(CLASSES), generator=generator), model.units(), CLASSES, "sparse")


def assert_exact(model: torch.nn.Module, head: Head, x: torch.Tensor) -> None:
    """The maps of every class add up to the model's logit minus the bias; each layer's to its units' terms."""
    result = where(model, head, x, classes=range(len(CLASSES)))
    with torch.no_grad():
        logits = model(x).double().numpy()
        z = model.features(x).double().numpy()
    assert np.allclose(result.logit, logits, atol=1e-6)
    assert np.array_equal(result.bias, np.broadcast_to(head.bias, logits.shape))
    tolerance = 1e-4 * np.maximum(1, np.abs(logits))
    assert (np.abs(logits - result.bias - result.map_sum) <= tolerance).all(), np.abs(logits - result.bias
                                                                                      - result.map_sum).max()
    layers = result.maps.reshape(*result.maps.shape[:2], -1, *result.maps.shape[-2:]).sum(axis=(-2, -1))
    terms = np.stack([(head.weight[:, layer.units] * z[:, None, layer.units]).sum(-1) for layer in model.layers], -1)
    assert np.allclose(layers, terms, atol=1e-5)
    assert result.maps.shape[-2:] == x.shape[-2:] and result.maps.dtype == np.float64


@pytest.mark.parametrize("reduce", ["max", "mean"])
@pytest.mark.parametrize("code", ["soft", "hard", "raw"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_maps_add_up_to_the_logit_for_every_architecture_code_reduction_and_head(networks, arch, code, reduce):
    size = ARCHS[arch]
    model = NeuroView(networks[arch], len(CLASSES), code=code, reduce=reduce, input_shape=(3, size, size)).eval()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    assert_exact(model, dense_head(model), x)
    head = sparse_head(model)
    assert_exact(with_head(model, head), head, x)


@pytest.mark.parametrize("shared", [False, True])
def test_multiview_maps_one_stack_per_view(shared):
    spec = ModelSpec(arch="smallcnn", reduce="mean", num_classes=len(CLASSES), input_shape=(3, 32, 32), views=3,
                     shared_backbone=shared)
    model = build_model(spec).eval()
    assert isinstance(model, MultiViewNeuroView)
    x = torch.rand(2, 3, 3, 32, 32)
    assert_exact(model, dense_head(model), x)
    result = where(model, dense_head(model), x, classes=[0])
    assert result.maps.shape == (2, 1, 3, 3, 32, 32) and result.views == 3
    changed = x.clone()
    changed[:, 1] = torch.rand(2, 3, 32, 32)  # another image in view 1: only view 1's maps change
    other = where(model, dense_head(model), changed, classes=[0]).maps
    assert np.array_equal(other[:, :, [0, 2]], result.maps[:, :, [0, 2]])
    assert not np.allclose(other[:, :, 1], result.maps[:, :, 1])


def test_a_sound_like_input_one_channel_not_square():
    model = build_model(ModelSpec(arch="smallcnn", num_classes=len(CLASSES), input_shape=(1, 20, 44),
                                  mean=(0.0,), std=(1.0,))).eval()
    assert_exact(model, dense_head(model), torch.rand(3, 1, 20, 44))


def test_max_reduce_ties_split_evenly():
    """A layer whose maps are constant (zero convolution weights): every position ties for the max, so each unit's
    term is spread evenly over the whole input instead of sitting on one position."""
    model = build_model(ModelSpec(arch="smallcnn", reduce="max", num_classes=len(CLASSES),
                                  input_shape=(3, 32, 32))).eval()
    with torch.no_grad():
        model.codes.__dict__["_network"].features[0].weight.zero_()
    result = where(model, dense_head(model), torch.rand(2, 3, 32, 32), classes=[1])
    first = result.maps[:, 0, 0]
    assert np.allclose(first, first.mean(axis=(1, 2), keepdims=True), rtol=1e-12, atol=0)
    assert np.abs(first).sum() > 0


def test_area_matrix_keeps_every_cell_whole():
    for cells, pixels in [(8, 32), (9, 36), (5, 32), (1, 20), (7, 3)]:
        matrix = area_matrix(cells, pixels).numpy()
        assert matrix.shape == (pixels, cells) and np.allclose(matrix.sum(axis=0), 1, atol=1e-12)
        assert (matrix >= 0).all()
    assert np.array_equal(area_matrix(2, 4).numpy(), [[0.5, 0], [0.5, 0], [0, 0.5], [0, 0.5]])


def test_where_refuses_a_model_without_that_head_and_bad_classes(networks):
    model = NeuroView(networks["smallcnn"], len(CLASSES), input_shape=(3, 36, 36)).eval()
    x = torch.rand(1, 3, 36, 36)
    with pytest.raises(NvError, match="not head 'sparse'.*with_head") as refused:
        where(model, sparse_head(model), x)
    assert refused.value.params == ("head",)
    with pytest.raises(NvError, match="class index 4 is out of range.*0..3"):
        where(model, dense_head(model), x, classes=[4])
    with pytest.raises(NvError, match="NeuroView image or sound model"):
        where(torch.nn.Linear(2, 2), dense_head(model), x)


def test_predicted_class_by_default(networks):
    model = NeuroView(networks["smallcnn"], len(CLASSES), input_shape=(3, 36, 36)).eval()
    x = torch.rand(4, 3, 36, 36)
    result = where(model, dense_head(model), x)
    with torch.no_grad():
        logits = model(x)  # the model's own forward pass, not the maps' path to it
    assert np.array_equal(result.target[:, 0], logits.argmax(1).numpy()) and result.maps.shape[1] == 1


def test_maps_that_break_their_promise_are_never_saved(networks):
    model = NeuroView(networks["smallcnn"], len(CLASSES), input_shape=(3, 36, 36)).eval()
    maps = where(model, dense_head(model), torch.rand(1, 3, 36, 36))
    identity = pd.DataFrame({"logit": maps.logit[0], "bias": maps.bias[0], "map_sum": maps.map_sum[0]})
    check_exact(identity, maps.maps, "where/x")  # the genuine maps keep it
    with pytest.raises(NvError, match="do not add up to logit - bias"):
        check_exact(identity.assign(map_sum=identity["map_sum"] + 0.01 * (1 + identity["logit"].abs())),
                    maps.maps, "where/x")
    with pytest.raises(NvError, match="NaN or infinite"):
        check_exact(identity, np.where(maps.maps == maps.maps.max(), np.nan, maps.maps), "where/x")


def test_positive_mass_lies_on_the_object(shapes_runs):
    """Ground truth: shapes draws one object per image with an exact mask, and every class's cue (colour, texture,
    shape) is on the object. The positive part of the explained class's summed map lies inside the object far more
    than the object's share of the image (measured: 82-97% inside for 16-38% of the area, 2.5-5.2x)."""
    run = shapes_runs["nv"]
    val = run.data().val
    masks = val.renderer().masks["object"] > 0
    x = torch.stack([val[i][0] for i in range(len(val))])
    labels = val.labels.numpy()
    model, head = run.model(), read_head(run)
    for c, name in enumerate(run.classes):
        chosen = np.flatnonzero(labels == c)
        positive = where(model, head, x[chosen], classes=[c]).summed[:, 0].clip(min=0)
        inside = (positive * masks[chosen]).sum(axis=(1, 2)) / positive.sum(axis=(1, 2))
        area = masks[chosen].mean()
        assert inside.mean() >= 2 * area, (name, inside.mean(), area)


# --- attribution metrics (nvcli/analysis/attribution.py) ----------------------------------------------------------

def test_figure_draws_every_view_and_layer_on_one_symmetric_scale():
    maps = np.zeros((2, 3, 8, 10))
    maps[0, 1, 2, 3], maps[1, 2, 5, 5] = 0.5, -2.0
    fig = where_figure(maps, torch.rand(2, 1, 8, 10), ["a", "b", "c"], "title", origin="lower")
    images = [ax.images for ax in fig.axes if ax.images]
    drawn = [image for stack in images for image in stack if image.get_cmap().name == "RdBu_r"]
    assert len(drawn) == 2 * (1 + 3)  # per view: the summed map and three layers
    assert {image.get_clim() for image in drawn} == {(-2.0, 2.0)}
    assert all(image.origin == "lower" for stack in images for image in stack)
    titles = [ax.get_title() for ax in fig.axes]
    assert "view 1" in titles and "c: -2" in titles
