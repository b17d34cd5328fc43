"""NeuroView's exact where maps against Captum's post-hoc attributions, under the field's faithfulness metrics.

Every method gives one map [H, W] per image, for the image's true class, at the input's resolution:
`neuroview` (the where maps summed over layers: they add up to logit - bias), `gradcam` (Captum's LayerGradCam on
the last convolution, bilinearly interpolated to the input), `ig` (Integrated Gradients, Captum's defaults: 50
steps from a zero baseline, summed over channels) and `occlusion` (a zero square of OCCLUSION_SHARE of the side,
sliding by half its side, summed over channels). The post-hoc methods and the metrics work in the model's
normalised input space, where zero is the dataset's mean colour: the one baseline of every method and metric.

Metrics (docs/attribute.md): `deletion` and `insertion` AUC (Petsiuk et al., RISE, 2018): the pixels are replaced
by the baseline (deletion) or put back onto it (insertion) in the map's order, most attributed first, in STEPS
equal steps; the area under the true class's probability curve over [0, 1] (deletion: lower is better, insertion:
higher). `pointing` (energy-based pointing game, Wang et al., Score-CAM, 2020): the share of the map's positive
mass inside the object's exact mask; only for the built-in worlds that render masks (shapes, cues).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import NvError, choice_error
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training.devices import resolve_device
from ..training.predict import ProgressFn
from .head import OVERALL, Head, read_head, with_head
from .settings import AttributionSettings, Compute
from .where import where

METHODS = ("neuroview", "gradcam", "ig", "occlusion")
POST_HOC = METHODS[1:]  # Captum's
METRICS = ("deletion", "insertion", "pointing")
COLUMNS = ["method", "metric", "class", "value"]
STEPS = 32  # equal steps of a deletion or insertion curve (STEPS + 1 points)
IG_STEPS = 50  # Captum's default
OCCLUSION_SHARE = 1 / 8  # the occluding square's side, as a share of the image's side
EXAMPLES = 4  # images whose maps the figure shows
CAPTUM_EXTRA = "pip install 'nvcli[captum]'"


def captum_attr() -> ModuleType | None:
    """Captum's attribution module, or None when Captum is not installed."""
    try:
        import captum.attr
    except ImportError:
        return None
    return captum.attr


def _choices(values: Sequence[str] | None, valid: tuple[str, ...], param: str) -> tuple[str, ...]:
    """`values` checked against `valid` (None: all of them), in `valid`'s order."""
    if values is None:
        return valid
    for value in values:
        if value not in valid:
            raise choice_error(f"{param} value", value, valid, param=param)
    if not values:
        raise NvError(f"{param} is empty; give one or more of {', '.join(valid)}", param=param)
    return tuple(v for v in valid if v in values)


def stratified(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` indices of `labels`, the classes taking turns (each class's images in a seeded random order)."""
    if count < 1:
        raise NvError(f"count must be at least 1; it is {count}", param="count")
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < min(count, len(labels)):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return np.array(chosen, dtype=np.int64)


def occlusion_window(side: int) -> tuple[int, int]:
    """The occluding square's side (OCCLUSION_SHARE of the image's, at least 2) and its stride (half of it)."""
    window = max(2, round(side * OCCLUSION_SHARE))
    return window, max(1, window // 2)


class FromNormalised(nn.Module):
    """A NeuroView model read from its normalised input (where zero is the baseline of every method)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, xn: Tensor) -> Tensor:
        return self.model.head(self.model.codes(xn))


def _last_conv(model: nn.Module) -> nn.Conv2d:
    """The network's last 2-d convolution (Grad-CAM's layer)."""
    convs = [m for m in model.codes.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise NvError(f"{type(model).__name__} has no 2-d convolution for Grad-CAM; choose other methods",
                      param="methods")
    return convs[-1]


def attribution_maps(method: str, model: nn.Module, head: Head, x: Tensor, target: Tensor,
                     batch_size: int = 128) -> np.ndarray:
    """float64 [B, H, W]: `method`'s map of each pixel-space image of `x` [B, C, H, W] for its class in `target`."""
    model.eval()
    if method == "neuroview":
        out = np.zeros((len(x), *x.shape[-2:]))
        for c in target.unique().tolist():
            rows = (target == c).nonzero().flatten()
            out[rows.cpu().numpy()] = where(model, head, x[rows], [c]).summed[:, 0]
        return out
    attr = captum_attr()
    if attr is None:
        raise NvError(f"method {method} needs Captum: {CAPTUM_EXTRA} (neuroview alone does not)", param="methods")
    net = FromNormalised(model)
    xn = model.normalize(x).detach()
    if method == "gradcam":
        cam = attr.LayerGradCam(net, _last_conv(model)).attribute(xn, target=target)
        found = F.interpolate(cam.detach(), size=x.shape[-2:], mode="bilinear", align_corners=False)
    elif method == "ig":
        found = attr.IntegratedGradients(net).attribute(xn, target=target, n_steps=IG_STEPS,
                                                        internal_batch_size=batch_size)
    elif method == "occlusion":
        window, stride = occlusion_window(x.shape[-1])
        found = attr.Occlusion(net).attribute(xn, sliding_window_shapes=(x.shape[1], window, window),
                                              strides=(x.shape[1], stride, stride), target=target,
                                              perturbations_per_eval=max(1, batch_size // len(x)))
    else:
        raise choice_error("methods value", method, METHODS, param="methods")
    return found.detach().sum(dim=1).double().cpu().numpy()


def pixel_order(maps: np.ndarray, seed: int = 0) -> Tensor:
    """long [B, H*W]: each pixel's rank in its map, most attributed first; equal values (a sparse map's zeros) in one
    seeded random order, the same for every method."""
    values = torch.from_numpy(np.ascontiguousarray(maps.reshape(len(maps), -1)))
    shuffle = torch.randperm(values.shape[1], generator=torch.Generator().manual_seed(seed))
    order = shuffle[values[:, shuffle].argsort(dim=1, descending=True, stable=True)]
    return order.argsort(dim=1)


@torch.no_grad()
def curve_auc(model: nn.Module, start: Tensor, end: Tensor, target: Tensor, ranks: Tensor,
              steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """The true class's probability as the pixels of `start` [B, C, H, W] (normalised) turn into `end`'s, `ranks`
    [B, H*W] first, in `steps` equal steps: (the area under it over [0, 1] [B], the curve [B, steps + 1])."""
    pixels = ranks.shape[1]
    ranks = ranks.to(start.device).view(len(start), 1, *start.shape[-2:])
    points = []
    for step in range(steps + 1):
        changed = ranks < round(step * pixels / steps)
        logits = model(torch.where(changed, end, start))
        points.append(torch.softmax(logits.double(), dim=1).gather(1, target[:, None])[:, 0])
    curve = torch.stack(points, dim=1).cpu()
    return ((curve[:, 1:] + curve[:, :-1]) / 2).mean(dim=1).numpy(), curve.numpy()


def deletion_insertion(net: nn.Module, xn: Tensor, target: Tensor, maps: np.ndarray,
                       steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the deletion AUC (pixels of normalised `xn` set to the zero baseline, most attributed first) and
    the insertion AUC (the pixels put back onto the baseline in the same order)."""
    ranks = pixel_order(maps)
    baseline = torch.zeros_like(xn)
    return (curve_auc(net, xn, baseline, target, ranks, steps)[0],
            curve_auc(net, baseline, xn, target, ranks, steps)[0])


def pointing(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: the share of the map's positive mass inside the mask [B, H, W] (NaN for a map with none)."""
    positive = maps.clip(min=0)
    total = positive.sum(axis=(1, 2))
    inside = (positive * (masks > 0)).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def object_masks(run: Run, indices: np.ndarray) -> np.ndarray | None:
    """bool [n, H, W]: the exact object masks of validation images `indices`, for worlds that render them (shapes,
    cues); None for any other data."""
    from ..data.shapes import ShapesSplit

    val = run.data().val
    if not isinstance(val, ShapesSplit):
        return None
    return val.renderer().masks["object"][indices] > 0


@dataclass
class Attribution(RunResult):
    """Methods against metrics on one run's validation images: attribution.csv and attribution.png."""

    kind = "attribution"
    main_table = "frame"
    run: str
    head: str
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    count: int
    seed: int
    frame: pd.DataFrame  # COLUMNS: per method and metric, the mean over images (`overall`) and per true class
    images: pd.DataFrame  # per method, metric and image: `image` (validation index), `class`, `value`
    examples: Tensor | None = None  # pixel-space inputs of the figure's example images [E, C, H, W]
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> its maps of the examples [E, H, W]

    def settings(self) -> AttributionSettings:
        return AttributionSettings(tuple(self.methods), tuple(self.metrics), self.count, self.seed, self.head, STEPS)

    def data_splits(self) -> tuple[str, ...]:
        return ("val",)

    def check(self) -> None:
        """Every score in [0, 1]: an area under a probability curve, or a share of positive mass (NaN only for the
        pointing game of images whose map has no positive mass)."""
        value = self.frame["value"]
        unscored = value.isna() & (self.frame["metric"] == "pointing")
        wrong = self.frame[~(value.between(0.0, 1.0) | unscored)]
        if len(wrong):
            row = wrong.iloc[0]
            raise NvError(f"attribution score {row['value']!r} of {row['method']} ({row['metric']}, {row['class']}) "
                          "is not in [0, 1]; nothing was saved")

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.attribution import attribution_figure

        out = {files.ATTRIBUTION.name(self.head): table(self.frame)}
        if figures:
            title = (f"{self.run}{files.head_mark(self.head)}: {self.images['image'].nunique()} validation images, "
                     "maps of the true class")
            out[files.ATTRIBUTION_PNG.name(self.head)] = figure(attribution_figure, self.images, self.examples,
                                                                self.maps, title)
        return out


def summarise(images: pd.DataFrame) -> pd.DataFrame:
    """COLUMNS: per method and metric, the mean over images (`overall`, NaN values left out), then per class."""
    keys = ["method", "metric"]
    overall = images.groupby(keys, sort=False)["value"].mean().reset_index().assign(**{"class": OVERALL})
    per_class = images.groupby([*keys, "class"], sort=False)["value"].mean().reset_index()
    frame = pd.concat([overall, per_class], ignore_index=True)[COLUMNS]
    order = {m: i for i, m in enumerate(dict.fromkeys(images["method"]))}
    return frame.sort_values("method", key=lambda s: s.map(order), kind="stable", ignore_index=True)


def _check_attributable(run: Run, methods: Sequence[str]) -> None:
    """Refuse what cannot be attributed: post-hoc methods without Captum, a baseline, recurrent or multi-view run."""
    missing = [m for m in methods if m in POST_HOC]
    if missing and captum_attr() is None:
        raise NvError(f"methods {', '.join(missing)} need Captum: {CAPTUM_EXTRA} (neuroview alone does not)",
                      param="methods")
    run.require_neuroview()
    if run.spec.recurrent or run.kind == "views":
        raise NvError(f"run '{run.name}' is a {'recurrent' if run.spec.recurrent else 'multi-view'} run; attribution "
                      "maps compare single images (or spectrograms)")


def _with_masks(run: Run, wanted: tuple[str, ...], indices: np.ndarray,
                asked: bool) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The metrics to score and the images' object masks for pointing (None without it); pointing is left out of the
    default metrics for data without masks, and refused where `asked` for."""
    masks = object_masks(run, indices) if "pointing" in wanted else None
    if masks is None and "pointing" in wanted:
        if asked:
            raise NvError(f"metric pointing needs exact object masks; run '{run.name}' has {run.config.data.name} "
                          "data, which has none (the built-in worlds shapes and cues do)", param="metrics")
        wanted = tuple(m for m in wanted if m != "pointing")
    return wanted, masks


def _scores(net: nn.Module, xn: Tensor, target: Tensor, maps: np.ndarray, wanted: Sequence[str],
            masks: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per metric, each image's score of one batch's maps: deletion and insertion AUC, pointing (with `masks`)."""
    scores: dict[str, np.ndarray] = {}
    if {"deletion", "insertion"} & set(wanted):
        scores["deletion"], scores["insertion"] = deletion_insertion(net, xn, target, maps)
    if masks is not None:
        scores["pointing"] = pointing(maps, masks)
    return scores


def attribute(run: Run, *, methods: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
              count: int = 90, seed: int = 0, head: str = files.DENSE_HEAD, compute: Compute = Compute(),
              trust_code: bool = False, progress: ProgressFn | None = None) -> Attribution:
    """NeuroView's exact maps and Captum's attributions of `count` validation images, scored by the metrics.

    Args:
        run: a trained NeuroView image or sound run (one view).
        methods: of METHODS (default: all); the post-hoc ones need Captum.
        metrics: of METRICS (default: all that the data allows; `pointing` needs exact object masks).
        count: validation images, the classes taking turns (stratified), chosen by `seed`.
        seed: which images.
        head: `dense` or a sparse head's name.
        compute: device and batch size.
        trust_code: allow importing the run's `package.module:function` architecture.
        progress: called as `progress(phase, done, total)` after each batch.

    Returns:
        An `Attribution`; `.frame` holds `method,metric,class,value`, `.save(run)` writes attribution.csv and .png.
    """
    methods, wanted = _choices(methods, METHODS, "methods"), _choices(metrics, METRICS, "metrics")
    _check_attributable(run, methods)
    val = run.data().val
    labels = np.asarray(val.labels if hasattr(val, "labels") else [int(y) for _, y in val])
    indices = stratified(labels, count, seed)
    wanted, masks = _with_masks(run, wanted, indices, asked=metrics is not None)
    dev = resolve_device(compute.device)
    chosen = read_head(run, head)
    model = with_head(run.model(dev, trust_code=trust_code), chosen).eval()
    net = FromNormalised(model)
    rows, maps_shown = [], {m: [] for m in methods}
    batches = range(0, len(indices), compute.batch_size)
    for b, start in enumerate(batches):
        part = indices[start:start + compute.batch_size]
        x = torch.stack([val[int(i)][0] for i in part]).to(dev)
        target = torch.from_numpy(labels[part]).long().to(dev)
        xn = model.normalize(x).detach()
        for method in methods:
            maps = attribution_maps(method, model, chosen, x, target, compute.batch_size)
            scores = _scores(net, xn, target, maps, wanted, None if masks is None else masks[start:start + len(part)])
            rows += [{"method": method, "metric": metric, "image": int(i), "class": run.classes[int(labels[i])],
                      "value": float(v)} for metric in wanted for i, v in zip(part, scores[metric])]
            maps_shown[method].append(maps[:max(0, EXAMPLES - start)])
        if progress is not None:
            progress("attribute", b + 1, len(batches))
    images = pd.DataFrame(rows, columns=["method", "metric", "image", "class", "value"])
    examples = torch.stack([val[int(i)][0] for i in indices[:EXAMPLES]])
    return Attribution(run.name, chosen.name, methods, wanted, count, seed, summarise(images), images, examples,
                       {m: np.concatenate(v) for m, v in maps_shown.items()})
