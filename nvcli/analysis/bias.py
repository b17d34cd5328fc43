"""Shape bias (`nv bias`, paper case study 2): which cue a run's decisions follow on cue-conflict images.

A cue-conflict image shows the shape of one class with the texture (and colour) of others; each of its cues names a
class. A decision follows the shape when the run predicts the shape's class, the texture when it predicts the
texture's, the colour when it predicts the colour's, and none of them otherwise. Geirhos et al. (ICLR 2019) define the
shape bias as shape / (shape + texture): among the decisions that follow either the shape or the texture, the share
that follow the shape (1: all shape, 0: all texture).

Two kinds of cue-conflict image: `style`, the texture and colour of one other class (Geirhos's conflict: a style brings
both), and `split`, the texture of one other class and the colour of a third (telling texture from colour). They come
from the built-in `cues` world (a run trained on it) or from a folder with a `conflicts.csv` or `stylize.csv`
(`image,shape,texture[,colour]`, image paths relative to the folder): what `nv data make cues` writes under
conflict/, and what `nv data stylize` writes
(shape = the content image's class, texture = the style's class when the styles are in class folders).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import NvError
from ..runs import files
from ..runs.results import RunResult, Writer, figure, table
from ..runs.run import Run
from ..training.devices import resolve_device
from ..training.predict import ProgressFn, predict
from .head import OVERALL, head_model
from .settings import BiasOptions, BiasSettings, Compute

CUES = ("shape", "texture", "colour")
STYLE, SPLIT = "style", "split"  # texture and colour of one other class (Geirhos's conflict), or of two


@dataclass(frozen=True)
class BiasRow:
    """A row of bias.csv: the kind of conflict and the shape class (or `overall`), its images, the share of
    decisions following each cue and none (`other`), and shape / (shape + texture) (NaN when neither is followed)."""

    kind: str
    class_: str
    images: int
    shape: float
    texture: float
    colour: float
    other: float
    shape_bias: float


COLUMNS = [f.name.removesuffix("_") for f in fields(BiasRow)]
CONFLICT_TABLES = ("conflicts.csv", "stylize.csv")  # what nv data make cues and nv data stylize write


@dataclass
class ConflictSet:
    """Cue-conflict samples (images in [0, 1], with the shape's class as label) and each cue's class index per
    sample (-1: the cue is not known)."""

    samples: torch.utils.data.Dataset
    cues: np.ndarray  # [N, 3]: shape, texture, colour class index
    source: str


def builtin_conflicts(run: Run, per_class: int) -> ConflictSet:
    """`per_class` cue-conflict images per shape class of the `cues` world, at the run's image size and seed."""
    from ..data.cues import CLASSES, CuesOptions, render_conflicts

    data = run.config.data
    if data.name != "cues":
        raise NvError(f"run '{run.dir}' was trained on '{data.name}', not on the built-in 'cues' world; give a folder "
                      "of cue-conflict images (conflicts, e.g. its validation images stylised)", param="conflicts")
    if list(run.classes) != list(CLASSES):
        raise NvError(f"run '{run.dir}' was trained on the cues classes {', '.join(run.classes)}; the built-in "
                      f"cue-conflict images need all of {', '.join(CLASSES)}")
    size = int(data.options.get("image_size", CuesOptions.image_size))
    seed = int(data.options.get("seed", CuesOptions.seed))
    rendered = render_conflicts(per_class, size, seed)
    images = torch.from_numpy(rendered.images).permute(0, 3, 1, 2).float().div_(255)
    samples = torch.utils.data.TensorDataset(images, torch.from_numpy(rendered.cues[:, 0]))
    return ConflictSet(samples, rendered.cues, f"built-in cues conflicts ({per_class} per class, seed {seed})")


def folder_conflicts(run: Run, folder: str | Path) -> ConflictSet:
    """The cue-conflict images listed in `folder`'s conflicts.csv or stylize.csv whose texture class differs from
    their shape class, resized and cropped to the run's input as its validation images are."""
    from ..data.images import FileImageDataset, image_transforms
    from ..fs.paths import contained_path, listed_path

    root = Path(folder).expanduser()
    listing = next((root / name for name in CONFLICT_TABLES if (root / name).is_file()), None)
    if listing is None:
        raise NvError(f"conflicts '{root}' holds neither {' nor '.join(CONFLICT_TABLES)}; make one by "
                      "stylizing with styles in class folders, or use the conflict/ folder of a written cues dataset",
                      param="conflicts")
    contained_path(root, listing, f"conflicts '{root}'")
    try:
        frame = pd.read_csv(listing, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise NvError(f"'{listing}' is not a readable CSV ({exc})", param="conflicts") from exc
    missing = [c for c in ("image", "shape", "texture") if c not in frame.columns]
    if missing:
        raise NvError(f"'{listing}' lacks column(s) {', '.join(missing)}; expected image,shape,texture[,colour]",
                      param="conflicts")
    index = {name: i for i, name in enumerate(run.classes)}
    frame = frame[(frame["texture"] != "") & (frame["texture"] != frame["shape"])]
    unknown = sorted({v for col in ("shape", "texture", "colour") if col in frame for v in frame[col] if v}
                     - set(index))
    if unknown:
        raise NvError(f"'{listing}' names class(es) {', '.join(unknown[:5])} that run '{run.dir}' does not have "
                      f"(its classes: {', '.join(run.classes)})", param="conflicts")
    if frame.empty:
        raise NvError(f"'{listing}' lists no cue-conflict image (one whose texture class is given and differs from its "
                      "shape class); stylize with styles in class folders", param="conflicts")
    paths = [contained_path(root, listed_path(root, name, f"'{listing}' row {row}"), f"'{listing}' row {row}")
             for row, name in zip(frame.index + 2, frame["image"])]
    cues = np.stack([frame[c].map(lambda v: index.get(v, -1)).to_numpy(np.int64) if c in frame
                     else np.full(len(frame), -1) for c in CUES], 1)
    samples = FileImageDataset(list(zip(paths, cues[:, 0].tolist())), image_transforms(run.spec.input_shape[-1], False))
    return ConflictSet(samples, cues, str(listing))


def conflict_kinds(cues: np.ndarray) -> np.ndarray:
    """Per image: STYLE when its texture and colour name one class (or the colour is unknown: a style brings both),
    SPLIT when they name two."""
    return np.where((cues[:, 2] < 0) | (cues[:, 2] == cues[:, 1]), STYLE, SPLIT)


def decision_table(pred: np.ndarray, cues: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per kind of conflict, per shape class and overall: images, the share of decisions that follow each cue and
    none (`other`), and shape_bias = shape / (shape + texture) (empty when no decision follows either); in a
    `style` image a decision for the style's class follows its texture and its colour. Columns: COLUMNS."""
    cues = cues.copy()
    cues[:, 2] = np.where(cues[:, 2] < 0, cues[:, 1], cues[:, 2])
    follows = pred[:, None] == cues  # [N, 3]; an unknown cue (-1) is never followed
    other = ~follows.any(1)
    kinds = conflict_kinds(cues)
    rows = []
    for kind in (STYLE, SPLIT):
        groups = [*((c, cues[:, 0] == k) for k, c in enumerate(classes)), (OVERALL, np.ones(len(pred), bool))]
        for name, keep in groups:
            keep = keep & (kinds == kind)
            n = int(keep.sum())
            if not n:
                continue
            share = follows[keep].mean(0)
            both = share[0] + share[1]
            rows.append(BiasRow(kind, name, n, share[0], share[1], share[2], float(other[keep].mean()),
                                share[0] / both if both > 0 else float("nan")))
    return pd.DataFrame([astuple(row) for row in rows], columns=COLUMNS)


@dataclass
class ShapeBias(RunResult):
    """bias.csv (per shape class and overall: the cues decisions follow, the shape bias) and bias.png."""

    kind = "bias"
    main_table = "frame"
    run: str
    head: str
    frame: pd.DataFrame  # COLUMNS
    source: str  # where the cue-conflict images came from
    options: BiasOptions

    def settings(self) -> BiasSettings:
        return BiasSettings(self.head, self.options.per_class, self.source)

    @property
    def overall(self) -> BiasRow:
        """The overall row of Geirhos's conflicts (kind `style`), else of the first kind measured."""
        rows = self.frame[self.frame["class"] == OVERALL]
        styled = rows[rows["kind"] == STYLE]
        return BiasRow(*(styled if len(styled) else rows).iloc[0][COLUMNS])

    def artifacts(self, figures: bool = True) -> dict[str, Writer]:
        from ..plots.bias import bias_figure

        out = {files.BIAS.name(self.head): table(self.frame)}
        if figures:
            title = f"{self.run}{files.head_mark(self.head)}: which cue decisions follow on cue-conflict images"
            out[files.BIAS_PNG.name(self.head)] = figure(bias_figure, self.frame, title)
        return out

    @classmethod
    def load(cls, run_dir: Path, settings: BiasSettings) -> "ShapeBias | None":
        """The shape bias saved in `run_dir` with `settings` (its results.json entry), or None if never saved."""
        frame = files.BIAS.read(run_dir, settings.head)
        if frame is None:
            return None
        return cls(Path(run_dir).name, settings.head, frame, settings.source, BiasOptions(settings.per_class))


def shape_bias(run: Run, options: BiasOptions = BiasOptions(), *, conflicts: str | Path | None = None,
               head: str = files.DENSE_HEAD, compute: Compute = Compute(), trust_code: bool = False,
               progress: ProgressFn | None = None) -> ShapeBias:
    """Which cue a run's decisions follow on cue-conflict images, and its shape bias (Geirhos et al. 2019).

    Args:
        run: a trained run, NeuroView or baseline.
        options: `per_class`: built-in cue-conflict images per shape class.
        conflicts: a folder with conflicts.csv or stylize.csv (None: the built-in `cues` world's images).
        head: `dense` or a sparse head's name (NeuroView runs).
        compute: device, batch size, loader workers.
        trust_code: allow importing the run's `package.module:function` architecture (runs its code).
        progress: called as `progress(phase, done, total)` while batches are computed.

    Returns:
        A `ShapeBias`: `frame` per shape class and overall; `.save(run.dir)` writes bias.csv and bias.png.
    """
    dev = resolve_device(compute.device)
    model = head_model(run, head, dev, trust_code=trust_code)  # an unknown head fails before any image is read
    found = builtin_conflicts(run, options.per_class) if conflicts is None else folder_conflicts(run, conflicts)
    logits, _ = predict(model, found.samples, batch_size=compute.batch_size, device=dev, workers=compute.workers,
                        progress=progress)
    frame = decision_table(logits["none"].argmax(1).numpy(), found.cues, run.classes)
    return ShapeBias(run.name, head, frame, found.source, options)

