"""What the report says about each kind of result: its section title, how to read each file, how to redraw it.

A result kind recorded in results.json that is not listed here still gets a section (titled by its kind,
its files shown with their names); adding a kind is one `Kind(...)` line, adding a file one `Caption(...)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..runs import files
from ..runs.files import Artifact, ResultKey, is_dense

if TYPE_CHECKING:
    from ..runs.results import RunResult


@dataclass(frozen=True)
class Recorded:
    """One results.json entry: its key (`weights/red@sparse`), settings, files and command."""

    key: str
    settings: dict[str, Any]  # as results.json holds them: each kind's loader reads its own typed settings
    files: list[str]
    command: str | None
    stale: tuple[str, ...] = ()  # why it no longer describes the run (provenance.stale_reasons); () when current

    @property
    def kind(self) -> str:
        """The result kind (`weights`, `eval`, `ablation`)."""
        return ResultKey.parse(self.key).kind

    @property
    def head(self) -> str:
        """The head the result was made with (`dense` unless the settings or key name another)."""
        head = self.settings.get("head")
        return head if isinstance(head, str) else ResultKey.parse(self.key).head

    @property
    def title(self) -> str:
        """What distinguishes this entry from others of its kind ('' when it is the only sort)."""
        key = ResultKey.parse(self.key)
        return key.name + ("" if is_dense(key.head) else f" @ {key.head}")


Loader = Callable[[Path, Recorded], "RunResult | None"]


@dataclass(frozen=True)
class Kind:
    """A section of the report: its title, a line on what it shows, and how to reload its result (to redraw a
    figure that a result saved with plot=False skipped; None when a figure needs more than the saved tables, e.g.
    the input image)."""

    name: str
    title: str
    about: str
    loader: Loader | None = None
    two_up: bool = False  # many small figures of one kind: two per row


@dataclass(frozen=True)
class Caption:
    """How to read one kind of file, matched by its artifact's name pattern (or a fixed file name)."""

    artifact: Artifact | str
    text: str
    shown: bool = False  # a table shown open on the page (others fold away, or are linked when long)

    def matches(self, name: str) -> bool:
        return fnmatchcase(name, self.artifact if isinstance(self.artifact, str) else self.artifact.glob())


def _eval(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.evaluate import Evaluation

    return Evaluation.load(run_dir, entry.head)


def _weights(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.weights import ClassWeights

    return ClassWeights.load(run_dir, str(entry.settings.get("class")), entry.head)


def _head_summary(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.weights import HeadSummary

    return HeadSummary.load(run_dir, entry.head, int(entry.settings.get("top", 10)))


def _perturb(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.perturb import Perturbation

    return Perturbation.load(run_dir, entry.head)


def _bias(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.bias import ShapeBias
    from ..analysis.settings import BiasSettings

    return ShapeBias.load(run_dir, BiasSettings.from_json(entry.settings, entry.key))


def _concepts(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.dissect.concepts import ConceptMap
    from ..analysis.settings import ConceptSettings

    return ConceptMap.load(run_dir, ConceptSettings.from_json(entry.settings, entry.key))


def _views(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.views import ViewWeights

    return ViewWeights.load(run_dir, entry.head)


def _ablation(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.ablation import Ablation
    from ..analysis.settings import AblationSettings

    return Ablation.load(run_dir, AblationSettings.from_json(entry.settings, entry.key))


def _time_weights(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.timesteps import TimeWeights

    return TimeWeights.load(run_dir, entry.head, str(entry.settings.get("rank", "weight")))


def _compare(run_dir: Path, entry: Recorded) -> "RunResult | None":
    from ..analysis.compare import Comparison
    from ..analysis.settings import CompareSettings

    return Comparison.load(run_dir, CompareSettings.from_json(entry.settings, entry.key))


# Sections in the order of a paper: how well it does, what the head says, what breaks it, what the units mean.
KINDS = [
    Kind("eval", "Evaluation", "Accuracy on the validation split, per class, and what is confused with what.", _eval),
    Kind("weights", "Head weights per class (Figure 3)",
         "Each class's weight on every unit of the unit axis (early layers left); the head's weights are the "
         "explanation, read directly.", _weights, two_up=True),
    Kind("head-summary", "Head summary", "Per-layer weight statistics of every class and how similar the classes' "
         "weight vectors are.", _head_summary),
    Kind("weights-time", "Head weights per time step (NeuroView-RNN)", "A recurrent run's head: the share of each "
         "class's weight at each time step, per layer; where in time the class draws its evidence.", _time_weights),
    Kind("perturb", "Colour-channel perturbation (Table 2, Figure 7)",
         "Validation accuracy with one colour channel of the images set to zero.", _perturb),
    Kind("bias", "Shape bias (case study 2)", "On cue-conflict images (the shape of one class, the texture and "
         "colour of others): the share of decisions that follow each cue, and shape / (shape + texture).", _bias),
    Kind("explain", "Explained decisions", "One input's logit as the sum of its units' contributions W[c,u]·z_u "
         "plus the bias."),
    Kind("concepts", "Concepts per class (Figure 4)", "Every unit labelled with the concept it detects (network "
         "dissection on a probe set), and each class's head weight summed per concept.", _concepts),
    Kind("views", "Views per class (Figure 5)", "A multi-view head's mean weight on each camera view's units.",
         _views),
    Kind("attribution", "Attribution against Captum (nv attribute)", "NeuroView's exact maps of the true class "
         "beside Grad-CAM, Integrated Gradients and Occlusion on the same images, scored by deletion and insertion "
         "AUC and the share of positive attribution inside the object (docs/attribute.md)."),
    Kind("ablation", "Unit ablation", "Does removing the units the head ranks first for a class hurt that class more "
         "than removing random units? Each removed unit's code is set to its validation mean (or zero).", _ablation),
    Kind("sparse-path", "Sparse heads (nv sparsify)", "An elastic-net path over every unit's code: validation "
         "accuracy against the number of units a sparse head keeps per class."),
    Kind("head", "Sparse heads kept", "The heads chosen from the path and stored in heads/: their units per "
         "class and accuracy."),
    Kind("compare", "Comparison with another run (Figure 3 c-d)", "Two runs of one architecture: accuracy and the "
         "share of each head's weight per layer.", _compare),
]
KIND_BY_NAME = {kind.name: kind for kind in KINDS}

# Most specific patterns first: the first caption whose pattern matches a file name describes it.
CAPTIONS = [
    Caption(files.METRICS_PNG, "Loss (left) and accuracy (right) per epoch; training in blue, validation "
            "in orange. A validation curve that turns up while training keeps falling is overfitting."),
    Caption(files.CONFUSION_PNG, "Rows: the true class, columns: the predicted one; shade = share of the row "
            "(recall on the diagonal), numbers = sample counts."),
    Caption(files.WEIGHTS_ALL_PNG, "Every class's weights along the unit axis, one panel per class, shared axes: "
            "compare where along the network each class draws its evidence."),
    Caption(files.WEIGHTS_PNG, "One line per unit, height = head weight, colour = layer (early left); tall lines "
            "are units that raise the class's logit, deep ones units that lower it."),
    Caption(files.SIMILARITY_PNG, "Cosine similarity of the classes' weight vectors: red pairs are explained by "
            "the same units, blue pairs by opposite ones."),
    Caption(files.PERTURB_EXAMPLES_PNG, "One validation image as the model sees it under each condition."),
    Caption(files.PERTURB_PNG, "Per class, accuracy without perturbation (grey) and with each channel zeroed; the "
            "value is written on every bar, so a class that collapses reads 0.00."),
    Caption(files.EXPLAIN_PNG, "Left: the input. Middle: the units that raise (right) and lower (left) the "
            "class's logit most. Right: the same contributions summed per layer; they add up to the logit minus "
            "the bias."),
    Caption(files.CONCEPTS_PNG, "Left: the concepts whose units carry the most positive and negative weight for "
            "the class (each at least 1% of it). Right: the class's weight split over concepts."),
    Caption(files.VIEWS_PNG, "Per class, the mean head weight on each view's units: positive views are the "
            "ones the class relies on."),
    Caption(files.ABLATION_PNG, "Per class, its accuracy (upper panel) and mean logit margin (lower) as k units are "
            "removed: its top-k by the ranking (red), random k (grey: mean and range of the draws), the k the ranking "
            "calls least important (blue); green keeps only the top k. A faithful ranking puts red well below grey."),
    Caption(files.ABLATION_SUMMARY, "Per class: accuracy and margin after removing its top k units (k = 1% of the "
            "units) and k random units; a ratio is the top-k loss over the random-k loss.", shown=True),
    Caption(files.ABLATION, "Every ablation: class, ranking, policy (none, top, bottom, random, keep-top[, drop-view, "
            "keep-view][, top-steps, random-steps: k time steps]), k, the class's accuracy and mean margin, and the "
            "random draw."),
    Caption(files.SPARSE_PATH_PNG, "Accuracy against the number of units a sparse head keeps, along the "
            "regularisation path."),
    Caption(files.COMPARE_PNG, "Per layer, the share of all positive (top) and negative (bottom) weight in each "
            "run; the black line is the layer's share of the units, what a head indifferent to layers would give."),
    Caption(files.BIAS_PNG, "Per class of the shape and overall, the share of cue-conflict decisions following the "
            "shape (blue), texture (orange), colour (red) or none (grey); the shape bias is written above each group."),
    Caption(files.BIAS, "Per kind of conflict and class of the shape: the share of decisions following each cue and "
            "the shape bias, shape / (shape + texture).", shown=True),
    Caption(files.ATTRIBUTION_PNG, "Top: per metric, each method's mean over the images (bars; lines: the standard "
            "error); lower deletion, higher insertion and pointing are better. Below: example images and each "
            "method's map of the true class (red: for the class, blue: against; each map on its own scale)."),
    Caption(files.ATTRIBUTION, "Per method and metric: the mean over the images (class overall) and per true "
            "class.", shown=True),
    Caption(files.EVAL, "The run's validation loss and accuracy with this head.", shown=True),
    Caption(files.PER_CLASS, "Accuracy per class: support (samples), correct, accuracy.", shown=True),
    Caption(files.CONFUSION, "Counts of true (rows) against predicted (columns) classes."),
    Caption(files.WEIGHTS_LAYERS, "Per class and layer: positive and negative weight sums, mean, and the layer's "
            "share of the class's weight and of its top units."),
    Caption(files.SIMILARITY, "Cosine similarity of the classes' weight vectors."),
    Caption(files.WEIGHTS_TIME_PNG, "Rows: classes; columns: time steps; colour: the share of the class's |weight| "
            "at that step (a panel per layer); the lines sum the layers. The floor is the head's random start; a "
            "class decided by an event peaks where the event happens, one decided throughout is flat."),
    Caption(files.WEIGHTS_TIME_SUMMARY, "Per class: the step of largest weight mass, its share, the mean step and "
            "the spread (1: even over time, 1/steps: one step).", shown=True),
    Caption(files.WEIGHTS_TIME, "Per class, layer and step: |weight| mass, its share, positive and negative sums."),
    Caption(files.WEIGHTS, "The class's weight on every unit, with its rank."),
    Caption(files.PERTURB, "Accuracy per class and condition, and its change from the unperturbed accuracy."),
    Caption(files.EXPLAIN_LAYERS, "The contribution summed per layer."),
    Caption(files.EXPLAIN_STEPS, "The contribution summed per time step (every layer).", shown=False),
    Caption(files.EXPLAIN_CLASSES, "Every class's logit and probability for this input."),
    Caption(files.EXPLAIN, "Every unit's code z, weight and contribution."),
    Caption(files.CONCEPTS_UNITS, "Every unit's best concept, its IoU and whether it counts as interpretable."),
    Caption(files.CONCEPTS_CLASSES, "Per class and concept: summed weight, share and rank."),
    Caption(files.VIEWS, "Per class and view: mean, positive and negative head weight."),
    Caption(files.COMPARE_ACCURACY, "Both runs' validation accuracy and where it was read.", shown=True),
    Caption(files.COMPARE_LAYERS, "Per run, class and layer: the weight statistics compared."),
    Caption(files.COMPARE, "Per layer: both runs' shares of positive, negative and top-unit weight."),
    Caption(files.COMPARE_CATEGORIES, "Per concept category of the units (their dissection labels): both runs' units "
            "and shares of the head's weight.", shown=True),
]


def caption(name: str) -> Caption:
    """How to read file `name` (an empty caption for a file none describes)."""
    return next((c for c in CAPTIONS if c.matches(name)), Caption(name, ""))


def kind_of(name: str) -> Kind:
    """The section of result kind `name` (a plain one for kinds this table does not know)."""
    return KIND_BY_NAME.get(name) or Kind(name, name.replace("-", " ").capitalize(), "")
