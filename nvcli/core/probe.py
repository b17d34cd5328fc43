"""Concept probing of a run: the built-in Broden probe set and `dissect-map` end to end."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from .broden import BrodenProbe, write_broden
from .data import maker
from .dissect import DEFAULT_IOU_THRESHOLD, DEFAULT_QUANTILE, Progress, concepts_classes, concepts_units, dissect
from .engine import resolve_device
from .errors import NvError
from .runs import Run
from .synthetic import CONCEPTS, render

PROBE_SEED_OFFSET = 2_000_029  # probe images are never training or validation images


@maker("broden", "a Broden-layout probe set of shapes images with their exact color/texture/object masks")
def make_broden(out_dir: str, image_size: int = 64, seed: int = 0, count: int = 300) -> Path:
    """Write `count` shapes images and their pixel-exact concept masks as a Broden probe set."""
    if count < 1:
        raise NvError(f"probe image count {count} must be at least 1")
    rendered = render(count, image_size, seed + PROBE_SEED_OFFSET)
    return write_broden(out_dir, rendered.images, CONCEPTS, masks=rendered.masks)


@dataclass
class ConceptMap:
    """Every unit's concept and every class's concept weights."""

    units: pd.DataFrame
    classes: pd.DataFrame
    probe: str


def dissect_run(run: Run, probe_dir: str | Path | None = None, *, quantile: float = DEFAULT_QUANTILE,
                iou_threshold: float = DEFAULT_IOU_THRESHOLD, categories: Sequence[str] | None = None,
                image_size: int | None = None, probe_count: int = 300, batch_size: int = 16, workers: int = 0,
                device: str = "auto", progress: Progress | None = None) -> ConceptMap:
    """Dissect every unit of a NeuroView run on a probe set (default: a built-in one) and map concepts to classes."""
    run.require_neuroview("dissect-map")
    spec = run.spec
    if spec.multiview or spec.input_shape[0] != 3:
        raise NvError(f"dissect-map needs a single-view RGB image run; '{run.dir}' takes "
                      f"{spec.views} view(s) of {spec.input_shape[0]} channel(s)")
    if not 0 < quantile < 1:
        raise NvError(f"--quantile {quantile} must be inside (0, 1); NetDissect's default is 0.005")
    if not 0 <= iou_threshold <= 1:
        raise NvError(f"--iou-threshold {iou_threshold} must be in [0, 1]; NetDissect's default is 0.04")
    size = image_size or spec.input_shape[1]
    dev = resolve_device(device)
    model = run.model(dev)

    def maps_fn(images: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return model.unit_maps(images.to(dev))

    with tempfile.TemporaryDirectory(prefix="nv-probe-") as tmp:
        if probe_dir is None:
            probe_dir = make_broden(str(Path(tmp) / "probe"), image_size=size, count=probe_count)
            source = f"built-in shapes probe ({probe_count} images)"
        else:
            source = str(probe_dir)
        probe = BrodenProbe(probe_dir, categories=categories, image_size=size)
        table = dissect(maps_fn, probe, quantile, iou_threshold, batch_size=batch_size, workers=workers,
                        device=dev, progress=progress)
    units = concepts_units(table, run.units())
    return ConceptMap(units, concepts_classes(model.head.weight, units, run.classes), source)
