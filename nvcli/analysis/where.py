"""Where in the input a decision rests: exact spatial maps of a class's logit (docs/where.md).

A NeuroView logit is `b[c] + sum_u W[c, u] * z_u`, and each code `z_u` reduces the unit's code map `s_u(y, x)`
over positions: with mean reduce `z_u = mean s_u`, so `W[c, u] * s_u(y, x) / n` splits the term over positions
with nothing left over; with max reduce the whole term sits at the arg-max position (ties split it evenly).
Summed per layer and spread to the input (each layer cell's value shared out over the input pixels its area
covers, so no mass is lost), the maps of one input and class add up to `logit - b[c]` to float rounding.
A unit whose pre-activation is not a 2-d map (after global pooling or flattening) puts its term evenly over
the whole input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..errors import NvError
from ..models.codes import apply_code, reduce_code
from ..models.multiview import MultiViewNeuroView
from ..models.neuroview import NeuroView, UnitCodes
from ..runs import files
from ..runs.results import RunResult, Writer, figure
from ..runs.run import Run
from ..training.devices import resolve_device
from ..training.loaders import make_loader
from .explain import VALIDATION_SOURCE, explained_input
from .head import Head, read_head, with_head
from .settings import ClassMapSettings, Compute, WhereSettings

IDENTITY_COLUMNS = ["class", "logit", "bias", "map_sum"]
EXACT = 1e-4  # relative: |logit - bias - map_sum| <= EXACT * max(1, |logit|), the maps' promise
MAP_BUDGET = 1 << 25  # float64 map values computed at once by class_where (256 MiB)


@dataclass(frozen=True)
class WhereMaps:
    """Exact spatial maps of a batch of decisions: per input and explained class, one map per layer (and view).

    `maps[i, k].sum()` is `logit[i, k] - bias[i, k]` to float rounding.
    """

    maps: np.ndarray  # float64 [inputs, classes, layers, H, W]; multi-view: [inputs, classes, views, layers, H, W]
    logit: np.ndarray  # float64 [inputs, classes]: the model's logit of each explained class
    bias: np.ndarray  # float64 [inputs, classes]: the head's bias of that class
    target: np.ndarray  # int [inputs, classes]: the class index explained
    layers: list[str]  # the layers' labels (one view's; every view has the same layers)
    views: int = 0  # camera views of a multi-view run; 0 for single inputs

    @property
    def map_sum(self) -> np.ndarray:
        """[inputs, classes]: the sum of all maps (every layer, view and position)."""
        return self.maps.reshape(*self.maps.shape[:2], -1).sum(axis=2)

    @property
    def summed(self) -> np.ndarray:
        """The maps summed over layers: [inputs, classes, H, W] (multi-view: [inputs, classes, views, H, W])."""
        return self.maps.sum(axis=-3)


def area_matrix(cells: int, pixels: int) -> Tensor:
    """[pixels, cells] float64: the share of each of `cells` equal intervals that each of `pixels` gets by area.

    Every column sums to 1, so spreading a layer's row (or column) of cells over the input keeps its total.
    """
    edges = torch.arange(cells + 1, dtype=torch.float64) * (pixels / cells)
    start = torch.arange(pixels, dtype=torch.float64)[:, None]
    overlap = torch.minimum(start + 1, edges[None, 1:]) - torch.maximum(start, edges[None, :-1])
    return overlap.clamp(min=0) * (cells / pixels)


def code_shares(pre: Tensor, code: str, reduce: str) -> Tensor:
    """float64 [B, C, h, w]: each unit's code `z_u` split over the positions of its pre-activation map [B, C, ...].

    Mean reduce: code(pre) / positions; max reduce: code(max) shared evenly by the positions holding the max.
    A map that is not 2-d gives one cell (its total), which the input receives evenly.
    """
    flat = (pre.flatten(2) if pre.dim() > 2 else pre.unsqueeze(-1)).to(_float64_device(pre))
    if reduce == "mean":
        shares = apply_code(flat.double(), code) / flat.shape[2]
    else:  # the ties of the float32 map the model reduced
        top = flat.max(dim=2, keepdim=True).values
        ties = (flat == top).double()
        shares = apply_code(top.double(), code) * ties / ties.sum(dim=2, keepdim=True)
    if pre.dim() == 4:
        return shares.view(pre.shape)
    return shares.sum(dim=2)[..., None, None]


def _float64_device(t: Tensor) -> torch.device:
    """Where float64 work on `t` runs: its own device, or the CPU for MPS (which has no float64)."""
    return torch.device("cpu") if t.device.type == "mps" else t.device


def _extractor(model: nn.Module) -> UnitCodes:
    """The unit-code extractor of a NeuroView model (the first view's for a multi-view one)."""
    if isinstance(model, NeuroView):
        return model.codes
    if isinstance(model, MultiViewNeuroView):
        return model.codes[0]
    raise NvError(f"where maps need a NeuroView image or sound model (single- or multi-view); got "
                  f"{type(model).__name__} (recurrent runs split a decision over time steps instead)", param="model")


def _check_head(model: nn.Module, head: Head) -> None:
    """Refuse a model whose classifier is not `head`: the maps would not add up to its logits."""
    weight = model.head.weight.detach().cpu().double().numpy()
    if weight.shape != head.weight.shape or not np.array_equal(weight, head.weight):
        raise NvError(f"the model's classifier is not head '{head.name}'; give the model with that head "
                      "(with_head(model, head))", param="head")


@torch.no_grad()
def where(model: nn.Module, head: Head, x: Tensor, classes: Sequence[int] | None = None) -> WhereMaps:
    """Exact spatial maps of `model`'s logits on a batch of pixel-space inputs `x` [B, C, H, W] (multi-view:
    [B, V, C, H, W]) for `classes` (indices, the same for every input; default: each input's predicted class).

    One forward pass keeps every layer's pre-activation map; `model`'s classifier must be `head`.
    """
    extractor = _extractor(model)
    _check_head(model, head)
    model.eval()
    device = model.head.weight.device
    pre_maps = model.unit_maps(x.to(device))
    z = torch.cat([reduce_code(m, extractor.code, extractor.reduce) for m in pre_maps], dim=1)
    logits = model.head(z).double().cpu()
    if classes is None:
        target = logits.argmax(dim=1, keepdim=True)
    else:
        for c in classes:
            if not 0 <= c < len(head.classes):
                raise NvError(f"class index {c} is out of range; the head has classes 0..{len(head.classes) - 1}",
                              param="classes")
        target = torch.tensor(list(classes), dtype=torch.long).expand(len(x), -1)
    views = model.views if isinstance(model, MultiViewNeuroView) else 0
    per_view = len(extractor.layers)
    height, width = x.shape[-2:]
    maps = torch.zeros(len(x), target.shape[1], max(views, 1), per_view, height, width, dtype=torch.float64)
    weight = torch.from_numpy(head.weight)[target]  # [B, K, units]
    for entry, (layer, pre) in enumerate(zip(model.layers, pre_maps)):
        shares = code_shares(pre, extractor.code, extractor.reduce)
        w = weight[:, :, layer.offset:layer.offset + layer.channels].to(shares.device)
        cells = torch.einsum("bkc,bchw->bkhw", w, shares)
        rows = area_matrix(cells.shape[2], height).to(shares.device)
        cols = area_matrix(cells.shape[3], width).to(shares.device)
        maps[:, :, entry // per_view, entry % per_view] = torch.einsum("yh,bkhw,xw->bkyx", rows, cells, cols).cpu()
    out = maps.numpy() if views else maps[:, :, 0].numpy()
    return WhereMaps(out, logits.gather(1, target).numpy(), head.bias[target.numpy()], target.numpy(),
                     [layer.label or layer.node for layer in extractor.layers], views)


def _array(values: np.ndarray) -> Writer:
    """A writer of `values` as a .npy file."""
    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, values)
    return write


def layer_totals(maps: np.ndarray, layers: list[str]) -> pd.DataFrame:
    """`layer,view,total`: each layer's map summed over the input ([layers, H, W], multi-view [views, layers, H, W])."""
    per_view = maps if maps.ndim == 4 else maps[None]
    return pd.DataFrame([{"layer": layer, "view": v, "total": float(per_view[v, i].sum())}
                         for v in range(len(per_view)) for i, layer in enumerate(layers)])


def check_exact(identity: pd.DataFrame, maps: np.ndarray, what: str) -> None:
    """Refuse maps that are not finite, or do not add up to their logit less its bias (the `identity` rows)."""
    if not np.isfinite(maps).all():
        raise NvError(f"the maps of {what} hold NaN or infinite values; nothing was saved")
    gap = (identity["logit"] - identity["bias"] - identity["map_sum"]).abs()
    if not (gap <= EXACT * np.maximum(1.0, identity["logit"].abs())).all():
        raise NvError(f"the maps of {what} do not add up to logit - bias (off by {gap.max():.3g}); nothing was saved")


@dataclass
class WhereExplanation(RunResult):
    """One decision's exact maps over its input: `where_<input>.npy` ([(views,) layers, H, W]) and its figure."""

    kind = "where"
    maps: WhereMaps  # one input, one class
    input: Tensor  # the pixel-space input [(views,) C, H, W]
    source: str  # e.g. 'validation sample 3'
    name: str  # what the input is called in file names
    head: str = files.DENSE_HEAD
    classes: tuple[str, ...] = ()  # the head's class names
    origin: str = "upper"  # 'lower' for spectrograms: low frequencies at the bottom of the figure

    def key(self) -> files.ResultKey:
        return files.ResultKey(self.kind, files.file_stem(self.name), self.head)

    @property
    def explained(self) -> str:
        """The class whose logit the maps add up to."""
        return self.classes[int(self.maps.target[0, 0])]

    def settings(self) -> WhereSettings:
        return WhereSettings(self.source, self.explained, self.head)

    def data_splits(self) -> tuple[str, ...]:
        return ("val",) if self.source.startswith(VALIDATION_SOURCE) else ()

    def to_frame(self) -> pd.DataFrame:
        """Each layer's share of the explained logit: its map's sum (they add up to `logit - bias`)."""
        return layer_totals(self.maps.maps[0, 0], self.maps.layers)

    def check(self) -> None:
        check_exact(self.identity(), self.maps.maps, str(self.key()))

    def identity(self) -> pd.DataFrame:
        """Per class explained: its logit, its bias and the sum of its maps (logit = bias + map_sum)."""
        return pd.DataFrame({"class": [self.classes[int(t)] for t in self.maps.target[0]], "logit": self.maps.logit[0],
                             "bias": self.maps.bias[0], "map_sum": self.maps.map_sum[0]}, columns=IDENTITY_COLUMNS)

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.where import where_figure

        out = {files.WHERE.name(self.head, input=self.name): _array(self.maps.maps[0, 0])}
        if figures:
            row = self.identity().iloc[0]
            title = (f"{self.source}: class {row['class']}, logit {row['logit']:.4g} = maps {row['map_sum']:.4g} "
                     f"+ bias {row['bias']:.4g}")
            out[files.WHERE_PNG.name(self.head, input=self.name)] = figure(
                where_figure, self.maps.maps[0, 0], self.input, self.maps.layers, title, self.origin)
        return out


def _mapped(run: Run, head: str, device: str, trust_code: bool) -> tuple[nn.Module, Head]:
    """The run's model with `head` as its classifier, and that head; a recurrent run is refused."""
    run.require_neuroview()
    if run.spec.recurrent:
        raise NvError(f"run '{run.name}' is a recurrent {run.spec.arch}: its decisions split over time steps "
                      "(explain's per-step contributions), not over positions of an image")
    chosen = read_head(run, head)
    return with_head(run.model(resolve_device(device), trust_code=trust_code), chosen), chosen


def _origin(run: Run) -> str:
    return "lower" if run.kind == "sound" else "upper"


def where_run(run: Run, *, index: int | None = None, path: str | Path | None = None, target: str | None = None,
              head: str = files.DENSE_HEAD, device: str = "cpu", trust_code: bool = False) -> WhereExplanation:
    """Exact maps of a NeuroView run's logit over one input: per layer, at the input's resolution.

    Args:
        run: a trained NeuroView image, sound or multi-view run.
        index: a sample of the validation split (give this or `path`).
        path: an image file (RGB runs only).
        target: the class whose logit to map (default: the predicted class).
        head: `dense` or a sparse head's name.
        device: where to compute.
        trust_code: allow importing the run's `package.module:function` architecture.

    Returns:
        A `WhereExplanation`; `.identity()` gives logit, bias and map_sum, `.save(run.dir)` writes
        where_<input>.npy and .png.
    """
    model, chosen = _mapped(run, head, device, trust_code)
    classes = None if target is None else [chosen.class_index(target)]
    item = explained_input(run, index, path)
    maps = where(model, chosen, item.x.unsqueeze(0), classes)
    return WhereExplanation(maps, item.x, item.source, item.name, chosen.name, tuple(chosen.classes), _origin(run))


@dataclass
class ClassWhere(RunResult):
    """A class's maps averaged over its validation images (where the class usually looks): class_where_<class>."""

    kind = "class_where"
    name: str  # the class
    stem: str  # its file stem (distinct among the run's classes)
    maps: np.ndarray  # float64 [(views,) layers, H, W]: the mean of the images' maps
    images: int  # validation images of the class
    logit: float  # the class's mean logit over them
    bias: float
    layers: list[str]
    input: Tensor  # the mean of the images, drawn under the maps
    head: str = files.DENSE_HEAD
    origin: str = "upper"

    def key(self) -> files.ResultKey:
        return files.ResultKey(self.kind, self.stem, self.head)

    def settings(self) -> ClassMapSettings:
        return ClassMapSettings(self.name, self.head)

    def data_splits(self) -> tuple[str, ...]:
        return ("val",)  # the class's validation images

    def check(self) -> None:
        check_exact(self.identity(), self.maps, str(self.key()))

    def to_frame(self) -> pd.DataFrame:
        """Each layer's share of the class's mean logit: its mean map's sum (they add up to `logit - bias`)."""
        return layer_totals(self.maps, self.layers)

    def identity(self) -> pd.DataFrame:
        """The class, its images, its mean logit, its bias and the sum of its mean maps (mean logit = bias + sum)."""
        return pd.DataFrame([{"class": self.name, "images": self.images, "logit": self.logit, "bias": self.bias,
                              "map_sum": float(self.maps.sum())}], columns=["class", "images", *IDENTITY_COLUMNS[1:]])

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.where import where_figure

        out = {files.CLASS_WHERE.name(self.head, cls=self.stem): _array(self.maps)}
        if figures:
            title = (f"class {self.name}, mean over its {self.images} validation images: logit {self.logit:.4g} = "
                     f"maps {self.maps.sum():.4g} + bias {self.bias:.4g}")
            out[files.CLASS_WHERE_PNG.name(self.head, cls=self.stem)] = figure(
                where_figure, self.maps, self.input, self.layers, title, self.origin)
        return out


def class_where(run: Run, target: str | None, *, head: str = files.DENSE_HEAD, compute: Compute = Compute(device="cpu"),
                trust_code: bool = False) -> ClassWhere:
    """A class's exact maps averaged over its validation images: where the class usually looks.

    The mean of the images' maps adds up to the class's mean logit minus its bias (the identity is linear).

    Args:
        run: a trained NeuroView image, sound or multi-view run.
        target: the class.
        head: `dense` or a sparse head's name.
        compute: device, batch size and loader workers for the pass over the validation split.
        trust_code: allow importing the run's `package.module:function` architecture.

    Returns:
        A `ClassWhere`; `.save(run.dir)` writes class_where_<class>.npy and .png.
    """
    if target is None:
        raise NvError("a class's mean maps need target (the class); give index or path to map one input",
                      param=("target", "index", "path"))
    model, chosen = _mapped(run, head, compute.device, trust_code)
    c = chosen.class_index(target)
    total: np.ndarray | None = None
    images, logit, pixels = 0, 0.0, None
    loader = make_loader(run.data().val, compute.batch_size, shuffle=False, workers=compute.workers)
    per_image = len(model.layers) * math.prod(run.spec.input_shape[1:])  # map values (every view's layers)
    for x, y in loader:
        for part in x[y == c].split(max(1, MAP_BUDGET // per_image)):  # every layer's map of every image is kept
            maps = where(model, chosen, part, [c])
            total = maps.maps[:, 0].sum(axis=0) + (0 if total is None else total)
            pixels = part.sum(dim=0) + (0 if pixels is None else pixels)
            images, logit = images + len(part), logit + float(maps.logit.sum())
    if total is None:
        raise NvError(f"the validation split of run '{run.name}' holds no image of class '{target}'", param="target")
    return ClassWhere(target, files.class_stems(chosen.classes)[target], total / images, images, logit / images,
                      float(chosen.bias[c]), maps.layers, pixels / images, chosen.name, _origin(run))
