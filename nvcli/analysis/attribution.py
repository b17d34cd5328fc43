"""Attribution maps side by side: NeuroView's exact where maps against Captum's post-hoc methods, under the
faithfulness metrics of the field (docs/where.md#against-post-hoc-attribution).

Methods give one map [H, W] per image and target class: `neuroview` (the where maps summed over layers),
`gradcam` (Grad-CAM on the last convolution, upsampled bilinearly), `ig` (Integrated Gradients from a black
image, Captum's default 50 steps, summed over channels), `occlusion` (a black square slid over the image,
summed over channels). Captum is an optional extra (`nvcli[captum]`); `neuroview` needs nothing more.

Metrics: `deletion` and `insertion` AUC (Petsiuk et al., RISE, 2018): pixels are removed from the image
(set to black) or inserted into a blurred copy, in the order of the map, and the area under the target
class's probability curve is taken (deletion: lower is better; insertion: higher); `inside` (energy-based
pointing game): the share of a map's positive mass that lies inside the object's mask.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import NvError, choice_error
from .head import Head
from .where import where

METHODS = ("neuroview", "gradcam", "ig", "occlusion")
CURVE_STEPS = 32  # points of a deletion or insertion curve after the first
BLUR_SIGMA = 0.1  # insertion's start: the image blurred with this sigma, as a share of its side


def _captum() -> object:
    """The captum.attr module, or one line naming the extra that brings it."""
    try:
        import captum.attr
    except ImportError as exc:
        raise NvError("the post-hoc methods (gradcam, ig, occlusion) need Captum: pip install 'nvcli[captum]'; "
                      "the neuroview method needs nothing more", param="methods") from exc
    return captum.attr


def _last_conv(model: nn.Module) -> nn.Conv2d:
    convs = [m for m in model.codes.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise NvError(f"{type(model).__name__} has no 2-d convolution for Grad-CAM", param="methods")
    return convs[-1]


def attribution_maps(model: nn.Module, head: Head, x: Tensor, target: Tensor, method: str) -> np.ndarray:
    """float64 [B, H, W]: `method`'s map of each image of `x` [B, C, H, W] for its class in `target` [B]."""
    if method not in METHODS:
        raise choice_error("attribution method", method, METHODS, param="methods")
    model.eval()
    if method == "neuroview":
        out = np.zeros((len(x), *x.shape[-2:]))
        for c in target.unique().tolist():
            chosen = (target == c).nonzero().flatten()
            out[chosen.numpy()] = where(model, head, x[chosen], [c]).summed[:, 0]
        return out
    attr = _captum()
    if method == "gradcam":
        cam = attr.LayerGradCam(model, _last_conv(model)).attribute(x, target=target)
        return F.interpolate(cam.detach(), size=x.shape[-2:], mode="bilinear")[:, 0].double().numpy()
    if method == "ig":
        return attr.IntegratedGradients(model).attribute(x, target=target).detach().sum(1).double().numpy()
    side = max(2, x.shape[-1] // 8)
    found = attr.Occlusion(model).attribute(x, sliding_window_shapes=(x.shape[1], side, side),
                                            strides=(x.shape[1], side // 2, side // 2), target=target)
    return found.detach().sum(1).double().numpy()


def _blurred(x: Tensor) -> Tensor:
    """`x` [B, C, H, W] under a Gaussian blur of sigma BLUR_SIGMA x its side (insertion's canvas)."""
    sigma = BLUR_SIGMA * x.shape[-1]
    radius = max(1, math.ceil(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    flat = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(flat, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def _curve_auc(probability: Callable[[Tensor], Tensor], start: Tensor, end: Tensor, order: Tensor) -> Tensor:
    """[B]: the mean of the target's probability (trapezoids over [0, 1]) as pixels go from `start` to `end`
    in `order` [B, H*W] (the pixels' ranks), CURVE_STEPS + 1 points."""
    pixels = order.shape[1]
    points = []
    for step in range(CURVE_STEPS + 1):
        changed = (order < round(step * pixels / CURVE_STEPS)).view(len(order), 1, *start.shape[-2:])
        points.append(probability(torch.where(changed, end, start)))
    curve = torch.stack(points, dim=1)
    return ((curve[:, 1:] + curve[:, :-1]) / 2).mean(dim=1)


@torch.no_grad()
def deletion_insertion(model: nn.Module, x: Tensor, target: Tensor, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the deletion AUC (pixels set to black, most attributed first) and the insertion AUC (pixels of
    the image put into its blurred copy, most attributed first) of the target class's probability."""
    model.eval()
    values = torch.from_numpy(maps.reshape(len(maps), -1))
    # Equal values (a sparse map's zeros) go in one fixed random order, the same for every method, not row by row.
    shuffle = torch.randperm(values.shape[1], generator=torch.Generator().manual_seed(0))
    order = shuffle[values[:, shuffle].argsort(dim=1, descending=True, stable=True)]
    ranks = order.argsort(dim=1)

    def probability(images: Tensor) -> Tensor:
        return torch.softmax(model(images).double(), dim=1).gather(1, target[:, None])[:, 0]

    black = torch.zeros_like(x)
    deletion = _curve_auc(probability, x, black, ranks)
    insertion = _curve_auc(probability, _blurred(x), x, ranks)
    return deletion.numpy(), insertion.numpy()


def inside_share(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: the share of the map's positive mass inside the mask [B, H, W] (NaN for a map with none)."""
    positive = maps.clip(min=0)
    total = positive.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (positive * masks).sum(axis=(1, 2)) / total, np.nan)
