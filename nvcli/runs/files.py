"""The name of every file nv writes into a run directory: the one place that owns them.

A result that describes one thing among several (a class, an input, a head) carries it in its file
name: `weights_<class>.csv`, `explain_<input>.csv`; results of a sparse head end in `@<head>`
(`eval@sparse.csv`), the dense head's have no mark. Names come from `Artifact`
patterns, so a reader (nv report, a shell pipeline) finds files by the same rule the writer used.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

RUNS_DIR = Path("runs")
LATEST = "latest"
DENSE_HEAD = "dense"  # the head trained with the network; sparse heads get names of their own

CONFIG = "config.json"
MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"
HEAD_INIT = "head_init.pt"
UNITS = "units.csv"
METRICS = "metrics.csv"
METRICS_PNG = "metrics.png"
RESULTS = "results.json"  # which result files exist, the settings that made them, the command to redo them
LOCK = ".nv-lock"
HEADS_DIR = "heads"  # sparse heads: heads/<name>.pt
MAX_STEM = 100  # characters of a name kept in a file name (file systems allow 255 bytes)
CODES_DIR = "codes"  # cached unit codes of the training and validation splits
TENSORBOARD_DIR = "tensorboard"  # nv train --tensorboard: TensorBoard's event files (metrics.csv stays the record)
TENSORBOARD_EVENTS = "events.out.tfevents.*"  # the names SummaryWriter gives its files
RUN_FILES = (CONFIG, MODEL, CHECKPOINT, HEAD_INIT, UNITS, METRICS, METRICS_PNG, RESULTS)  # what nv train writes
COMPARE_DIRS = "compare*_*"  # nv compare's folders inside a run: compare[@<head>]_<other run>[@<head>]
STAGING = ".nv-staging-"  # a result's files before they are moved into the run (one folder per process)
_ARTIFACTS: list["Artifact"] = []


@dataclass(frozen=True)
class Artifact:
    """A kind of result file: a name pattern with optional `{fields}` and an extension."""

    pattern: str
    suffix: str

    def __post_init__(self) -> None:
        _ARTIFACTS.append(self)  # `written_by_nv` knows every kind of result file

    def name(self, head: str = DENSE_HEAD, **fields: str) -> str:
        """The file name for one head (see `head_mark`), each field made file-safe."""
        values = {k: file_stem(v) for k, v in fields.items()}
        if "{head}" in self.pattern:
            values["head"] = head_mark(head)
        return self.pattern.format(**values) + self.suffix

    def path(self, run_dir: Path, head: str = DENSE_HEAD, **fields: str) -> Path:
        """The file's path in `run_dir`, refused if a link, FIFO or device stands in its place (see `access`)."""
        from ..fs import access  # not at import: this module loads at start-up, before any run is read

        return access.inside(run_dir, self.name(head, **fields))

    def read(self, run_dir: Path, head: str = DENSE_HEAD, **fields: str) -> "pd.DataFrame | None":
        """The saved table (empty cells read as empty strings), or None if it was never written."""
        from ..fs import access

        name = self.name(head, **fields)
        return access.read_csv(run_dir, name) if access.is_file(run_dir, name) else None

    def glob(self) -> str:
        """A glob matching every file of this kind."""
        return re.sub(r"\{[^}]*\}", "*", self.pattern) + self.suffix


EVAL = Artifact("eval{head}", ".csv")
PER_CLASS = Artifact("per_class{head}", ".csv")
CONFUSION = Artifact("confusion{head}", ".csv")
CONFUSION_PNG = Artifact("confusion{head}", ".png")
WEIGHTS = Artifact("weights_{cls}{head}", ".csv")
WEIGHTS_PNG = Artifact("weights_{cls}{head}", ".png")
WEIGHTS_ALL_PNG = Artifact("weights_all{head}", ".png")
WEIGHTS_LAYERS = Artifact("weights_layers{head}", ".csv")
WEIGHTS_TIME = Artifact("weights_time{head}", ".csv")  # recurrent runs: weight mass per class, layer and time step
WEIGHTS_TIME_SUMMARY = Artifact("weights_time_summary{head}", ".csv")
WEIGHTS_TIME_PNG = Artifact("weights_time{head}", ".png")
SIMILARITY = Artifact("class_similarity{head}", ".csv")
SIMILARITY_PNG = Artifact("class_similarity{head}", ".png")
PERTURB = Artifact("perturb{head}", ".csv")
PERTURB_PNG = Artifact("perturb{head}", ".png")
PERTURB_EXAMPLES_PNG = Artifact("perturb_examples{head}", ".png")
EXPLAIN = Artifact("explain_{input}{head}", ".csv")
EXPLAIN_LAYERS = Artifact("explain_{input}{head}_layers", ".csv")
EXPLAIN_CLASSES = Artifact("explain_{input}{head}_classes", ".csv")
EXPLAIN_STEPS = Artifact("explain_{input}{head}_steps", ".csv")  # recurrent runs: the contribution per time step
EXPLAIN_PNG = Artifact("explain_{input}{head}", ".png")
WHERE = Artifact("where_{input}{head}", ".npy")  # exact maps of the logit: [(views,) layers, H, W]
WHERE_PNG = Artifact("where_{input}{head}", ".png")
CLASS_WHERE = Artifact("class_where_{cls}{head}", ".npy")  # a class's where maps, mean over its validation images
CLASS_WHERE_PNG = Artifact("class_where_{cls}{head}", ".png")
CONCEPTS_UNITS = Artifact("concepts_units{head}", ".csv")  # per head: each dissection's own probe settings


def concept_heads(head: str) -> list[str]:
    """Whose dissection (CONCEPTS_UNITS) labels a head's units, preferred first: one made with that head, else the
    dense head's (the units are the same; only the probe settings may differ)."""
    return list(dict.fromkeys([head, DENSE_HEAD]))
CONCEPTS_CLASSES = Artifact("concepts_classes{head}", ".csv")
CONCEPTS_PNG = Artifact("concepts_{cls}{head}", ".png")
VIEWS = Artifact("views{head}", ".csv")
VIEWS_PNG = Artifact("views{head}", ".png")
ABLATION = Artifact("ablation{head}", ".csv")
ABLATION_SUMMARY = Artifact("ablation_summary{head}", ".csv")
ABLATION_PNG = Artifact("ablation{head}", ".png")
BIAS = Artifact("bias{head}", ".csv")  # nv bias: which cue decisions follow on cue-conflict images
BIAS_PNG = Artifact("bias{head}", ".png")
ATTRIBUTION = Artifact("attribution{head}", ".csv")  # nv attribute: methods x faithfulness metrics, per class
ATTRIBUTION_PNG = Artifact("attribution{head}", ".png")
SPARSE_PATH = Artifact("sparse_path", ".csv")
SPARSE_PATH_PNG = Artifact("sparse_path", ".png")
SPARSE_HEAD = Artifact(HEADS_DIR + "/{name}", ".pt")  # a sparse head's weight and bias (read_head reads it)
SPARSE_HEAD_INFO = Artifact(HEADS_DIR + "/{name}", ".json")  # how it was chosen: lambda, rule, accuracies
COMPARE = Artifact("compare", ".csv")
COMPARE_LAYERS = Artifact("compare_layers", ".csv")
COMPARE_ACCURACY = Artifact("compare_accuracy", ".csv")
COMPARE_CATEGORIES = Artifact("compare_categories", ".csv")  # both runs dissected: shares per concept category
COMPARE_PNG = Artifact("compare", ".png")
REPORT = Artifact("report", ".html")
REPORT_SIDE_BY_SIDE = Artifact("report_vs_{others}", ".html")  # in the first run: it beside the others


def artifacts() -> tuple[Artifact, ...]:
    """Every kind of result file nv writes (the registry that `written_by_nv` and the artifact contract test read)."""
    return tuple(_ARTIFACTS)


def _temporary(name: str) -> bool:
    """A file an atomic write left behind when it was killed (`.<name>.<random>.tmp`)."""
    return name.startswith(".") and name.endswith(".tmp")


def result_file(name: str) -> bool:
    """Whether `name` ('/'-separated, relative to the folder holding results.json) is a name a result's files
    take (an `Artifact` pattern): what replacing a result may remove, never a training file such as checkpoint.pt."""
    return any(fnmatchcase(name, a.glob()) and name.count("/") == a.pattern.count("/") for a in _ARTIFACTS)


def written_by_nv(name: str) -> bool:
    """Whether `name` ('/'-separated, relative to a run directory) is a name nv writes there: the training files,
    result files (`Artifact` patterns), a result folder's files, cached codes, TensorBoard's event files (in its own
    folder) and interrupted writes' leftovers.

    Anything else (a user's NOTES.md, a folder of their own) is never removed or replaced by nv.
    """
    parts = name.split("/")
    leaf = parts[-1]
    if len(parts) == 1:
        return name in RUN_FILES or _temporary(name) or result_file(name)
    if len(parts) != 2:
        return False
    folder = parts[0]
    if folder == CODES_DIR:
        return _temporary(leaf) or fnmatchcase(leaf, "*.npy") or fnmatchcase(leaf, "*.json")
    if folder == HEADS_DIR:
        return _temporary(leaf) or result_file(name)
    if folder == TENSORBOARD_DIR:
        return fnmatchcase(leaf, TENSORBOARD_EVENTS)
    if fnmatchcase(folder, COMPARE_DIRS):
        return leaf == RESULTS or _temporary(leaf) or result_file(leaf)
    return False


def is_dense(head: str) -> bool:
    """Whether `head` names the head trained with the network (model.pt's), not a sparse head of heads/."""
    return head == DENSE_HEAD


def head_mark(head: str) -> str:
    """What tells a sparse head's results from the dense head's: '' for the dense head, else '@<head>'."""
    return "" if is_dense(head) else f"@{file_stem(head)}"


@dataclass(frozen=True)
class ResultKey:
    """A results.json entry's key, `<kind>[/<name>][@<head>]` (`weights/red@sparse10`, `eval`, `head/sparse10`):
    formatted by `str` and read back by `parse`, here alone."""

    kind: str  # the result kind: eval, weights, ablation ...
    name: str = ""  # what the entry describes among several of its kind: a class, an input, a sparse head
    head: str = DENSE_HEAD  # the head whose weights made it (its file stem)

    def __str__(self) -> str:
        return self.kind + (f"/{self.name}" if self.name else "") + head_mark(self.head)

    @classmethod
    def parse(cls, key: str) -> ResultKey:
        """The key as `str` wrote it (kinds and names hold no '/' or '@': they are file stems)."""
        rest, mark, head = key.partition("@")
        kind, _, name = rest.partition("/")
        return cls(kind, name, head if mark else DENSE_HEAD)


def file_stem(name: str) -> str:
    """A name made safe for a file name: anything but letters, digits, '.', '-' and '_' becomes '_'.

    A long name is cut to MAX_STEM characters with a digest of the whole name, so it stays distinct and
    the file name fits every file system.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).strip(".") or "_"
    if len(stem) > MAX_STEM:
        digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = f"{stem[:MAX_STEM - 11]}-{digest}"
    return stem


def class_stems(classes: list[str]) -> dict[str, str]:
    """A distinct file stem per class: `file_stem`, with `_<class index>` appended where stems collide.

    Stems are compared ignoring case, as macOS and Windows file systems do, and an appended index never
    lands on another class's stem.
    """
    stems = [file_stem(c) for c in classes]
    folded = [s.casefold() for s in stems]
    taken = {f for f in folded if folded.count(f) == 1}
    out = {}
    for i, (name, stem, fold) in enumerate(zip(classes, stems, folded)):
        if folded.count(fold) > 1:
            stem = f"{stem}_{i}"
            while stem.casefold() in taken:
                stem += "_"
            taken.add(stem.casefold())
        out[name] = stem
    return out
