"""The Python API on objects: a model, a dataset or loader, a head or codes in; typed results out.

Nothing here reads or writes a run directory: a result is written only by its `save(run)`, and `save(model, path,
data=...)` makes a run of a model trained by the caller's own loop, after which every `nv` command works on it.
Each result has `to_frame()`, `plot(ax=None)`, `_repr_html_` (Jupyter) and `save(run)`; the command line makes
the same results from a run's files.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .analysis.ablation import Ablation, ablation
from .analysis.code_cache import ArrayStore, Codes
from .analysis.dissect.concepts import ConceptMap, concept_map
from .analysis.explain import Explanation
from .analysis.explain import explain as explain_input
from .analysis.head import Head
from .analysis.perturb import CHANNELS, Perturbation, perturbation
from .analysis.settings import AblationOptions, Compute, DissectOptions, PathSettings
from .analysis.sparse.record import Selection
from .analysis.sparse.selection import SparseHead, check_head_name, default_name
from .analysis.sparse.sparsify import fit_codes, sparse_head
from .analysis.weights import DEFAULT_TOP, ClassWeights, HeadSummary
from .analysis.weights import weights as head_weights
from .analysis.where import WhereExplanation
from .analysis.where import where as where_maps
from .data.registry import DataBundle
from .errors import NvError
from .models.spec import ModelChoice
from .runs.provenance import state_digest
from .runs.results import RunResult
from .runs.run import Run
from .training.recipes import save_model

Data = Dataset | DataLoader
HeadLike = Head | SparseHead | None
R = TypeVar("R", bound=RunResult)


def _loader(data: Data, batch_size: int) -> DataLoader:
    """`data` as batches in order: a DataLoader as given, a Dataset in batches of `batch_size`."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=False)
    raise NvError(f"data must be a torch Dataset or DataLoader of (input, label) pairs; it is a "
                  f"{type(data).__name__}", param="data")


def _dataset(data: Data) -> Dataset:
    return data.dataset if isinstance(data, DataLoader) else data


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _stamped(result: R, model: nn.Module | None, codes: Codes | None = None) -> R:
    """`result`, marked with the digest of the weights it was computed from, so `save(run)` takes only their run."""
    result.computed_from = state_digest(model.state_dict()) if model is not None else codes.computed_from
    return result


def _head(model: nn.Module | Codes, head: HeadLike, classes: Sequence[str] | None) -> Head:
    """The head asked for: a Head, a fitted SparseHead's, or the model's own (classes named `classes`) or the one
    codes were computed with."""
    if isinstance(head, SparseHead):
        return head.head
    if isinstance(head, Head):
        return head
    if isinstance(model, Codes):
        if model.head is None:
            raise NvError("these codes carry no head (read from a run's store): give head", param="head")
        return model.head
    return Head.of(model, classes)


def _headed(model: nn.Module, head: Head) -> nn.Module:
    """`model` classifying with `head`: the model itself for its own head, else a copy (the caller's model is kept)."""
    own = Head.of(model, head.classes)
    if np.array_equal(own.weight, head.weight) and np.array_equal(own.bias, head.bias):
        return model
    other = copy.deepcopy(model)
    other.head.load_state_dict({k: v.to(_device(model)) for k, v in head.state_dict().items()})
    return other


@torch.no_grad()
def codes(model: nn.Module, data: Data, *, classes: Sequence[str] | None = None, batch_size: int = 128) -> Codes:
    """Every unit's code `z` for each sample of `data`, held in memory.

    Args:
        model: a NeuroView model.
        data: a Dataset or DataLoader of (input, label), inputs in pixel space.
        classes: its class names in label order (default 0..C-1).
        batch_size: samples per forward pass (a DataLoader's own batches are used as they come).

    Returns:
        `Codes`: `z` [samples, units] float32 and `labels` [samples], in the data's order, and `head`: the model's
        own head, which `ablate` and `sparsify` use unless given another.
    """
    own = Head.of(model, classes)  # refuses a model that is not NeuroView before any data is read
    was_training, device = model.training, _device(model)
    model.eval()
    try:
        parts = [(model.features(x.to(device)).float().cpu().numpy(), np.asarray(y)) for x, y in _loader(data,
                                                                                                          batch_size)]
    finally:
        model.train(was_training)
    if not parts:
        raise NvError("data holds no samples", param="data")
    store = ArrayStore(np.concatenate([z for z, _ in parts]), np.concatenate([y for _, y in parts]))
    return Codes("data", store, computed_from=state_digest(model.state_dict()), head=own)


def weights(model: nn.Module, *, classes: Sequence[str] | None = None, head: HeadLike = None,
            top: int = DEFAULT_TOP) -> HeadSummary:
    """Per class and layer, how a head spreads its weight (shares of positive weight, the top units' share) and how
    alike the classes' weights are.

    Args:
        model: a NeuroView model.
        classes: its class names in label order (default 0..C-1).
        head: another head over its units (a Head, or a fitted SparseHead); default the model's own.
        top: the k of each layer's `top_share`.

    Returns:
        A `HeadSummary`: `layers` (per class and layer; `to_frame()`), `similarity`; its figure is the class
        similarity.
    """
    _, summary = head_weights("model", _head(model, head, classes), [], top=top)
    return _stamped(summary, model)


def class_weights(model: nn.Module, cls: str, *, classes: Sequence[str] | None = None,
                  head: HeadLike = None) -> ClassWeights:
    """One class's weight on every unit, along the unit axis (Figure 3 of the paper).

    Args:
        model: a NeuroView model.
        cls: the class.
        classes: its class names in label order (default 0..C-1).
        head: another head over its units; default the model's own.

    Returns:
        A `ClassWeights`: `frame` (unit, layer, node, channel, weight, rank; `to_frame()`).
    """
    chosen = _head(model, head, classes)
    chosen.class_index(cls)
    per_class, _ = head_weights("model", chosen, [cls])
    return _stamped(per_class[0], model)


def ablate(source: nn.Module | Codes, data: Data | None = None, *, head: HeadLike = None,
           classes: Sequence[str] | None = None, options: AblationOptions | None = None,
           batch_size: int = 128) -> Ablation:
    """Remove each class's top-, bottom- and random-ranked units and measure what the class loses.

    Args:
        source: a NeuroView model (its codes of `data` are computed), or `Codes` (then `head` is needed).
        data: a Dataset or DataLoader of (input, label), with a model.
        head: the head whose units are ranked and removed (default the model's own).
        classes: class names in label order (default 0..C-1).
        options: ranking, removed code, k grid, draws (`AblationOptions()`; concept categories need a run).
        batch_size: samples per forward pass.

    Returns:
        An `Ablation`: `frame` (every ablation), `summary` (per class, top vs random; `to_frame()`), `accuracy`.
    """
    options = options or AblationOptions()
    if options.categories:
        raise NvError("removing units by concept category reads a run's dissection; use ablate on a saved run",
                      param="options")
    model = source if isinstance(source, nn.Module) else None
    if model is not None and data is None:
        raise NvError("ablating a model needs data (a Dataset or DataLoader) to compute its codes", param="data")
    found = codes(model, data, classes=classes, batch_size=batch_size) if model is not None else source
    if not isinstance(found, Codes):
        raise NvError(f"source must be a NeuroView model or Codes; it is a {type(source).__name__}", param="source")
    return _stamped(ablation(found, _head(found, head, classes), options, name="model"), None, found)


def sparsify(train: Codes, val: Codes, *, units_per_class: int | None = None, max_drop: float | None = None,
             name: str | None = None, settings: PathSettings | None = None, finetune: bool = False) -> SparseHead:
    """A sparse head: at most `units_per_class` units per class (or the sparsest within `max_drop` of the dense
    accuracy), chosen along an elastic-net path over the codes and refitted on the units it keeps (docs/sparsify.md).

    Args:
        train: the training split's codes (`codes(model, train_data)`), which the path is fitted on.
        val: the validation split's codes, which choose along it; both of one model.
        units_per_class: the budget of units per class (default 10, unless max_drop is given).
        max_drop: instead, the largest validation-accuracy drop from the dense head to accept.
        name: the head's name (heads/<name>.pt once saved); default from the rule.
        settings: alpha, the lambda grid, patience, the near-copy threshold (`PathSettings()`).
        finetune: with max_drop, refit the kept units without penalty.

    Returns:
        A `SparseHead`: `head` (a Head over the same units, for `head=` everywhere here), `record`, `summary`
        (`to_frame()`: the dense and the sparse head's accuracy and units).
    """
    if train.computed_from is None or train.computed_from != val.computed_from or train.head is None:
        raise NvError("train and val must be codes of one model in memory (codes(model, data) for each split)",
                      param=("train", "val"))
    given = units_per_class is not None or max_drop is not None
    selection = Selection(units_per_class, max_drop) if given else Selection()
    fitted = fit_codes(train, val, train.head, settings or PathSettings(), device="cpu")
    head = sparse_head(fitted, check_head_name(name or default_name(selection)), selection, finetune=finetune)
    head.computed_from = train.computed_from
    return head


def perturb(model: nn.Module, data: Data, *, channels: Sequence[str] = tuple(CHANNELS), head: HeadLike = None,
            classes: Sequence[str] | None = None, example: int = 0, batch_size: int = 128) -> Perturbation:
    """Accuracy per class with each colour channel of the inputs zeroed in turn (Table 2 of the paper).

    Args:
        model: a model of RGB images (NeuroView or standard).
        data: a Dataset or DataLoader of (image, label) in pixel space ([0, 1]).
        channels: the channels to zero, each in turn (red, green, blue).
        head: a head to classify with instead of a NeuroView model's own.
        classes: class names in label order (default 0..C-1).
        example: the sample drawn under each condition in the figure.
        batch_size: samples per forward pass.

    Returns:
        A `Perturbation`: `accuracy` per class and condition (`none`: unperturbed; `to_frame()`).
    """
    dataset, own = _dataset(data), model
    if head is not None:
        chosen = _head(model, head, classes)
        model, classes, name = _headed(model, chosen), chosen.classes, chosen.name
    else:
        name = "dense"
    count = model(next(iter(_loader(dataset, 1)))[0].to(_device(model))).shape[1] if classes is None else None
    names = list(classes) if classes is not None else [str(i) for i in range(count)]
    return _stamped(perturbation(model, dataset, names, channels, head=name, example=example, name="model",
                                 compute=Compute(device=str(_device(model)), batch_size=batch_size)), own)


def explain(model: nn.Module, x: Tensor, *, target: str | None = None, head: HeadLike = None,
            classes: Sequence[str] | None = None, top: int = DEFAULT_TOP) -> Explanation:
    """Why `model` gives its logits for one input: each unit's contribution `W[c, u] z_u(x)` to a class's logit.

    Args:
        model: a NeuroView model.
        x: one input in pixel space ([C, H, W]).
        target: the class whose logit to explain (default the predicted one).
        head: another head over its units; default the model's own.
        classes: class names in label order (default 0..C-1).
        top: units listed per sign in the figure.

    Returns:
        An `Explanation`: `summary` (logit = contributions + bias), `units` (`to_frame()`), `layers`, `classes`.
    """
    chosen = _head(model, head, classes)
    return _stamped(explain_input(_headed(model, chosen), chosen, x, target=target, top=top), model)


def where(model: nn.Module, x: Tensor, *, target: str | None = None, head: HeadLike = None,
          classes: Sequence[str] | None = None, name: str = "input") -> WhereExplanation:
    """Exactly where in one input a decision rests: per layer, a map over the input that adds up, with the others, to
    the class's logit minus its bias (docs/where.md).

    Args:
        model: a NeuroView model of images or spectrograms (or a multi-view one).
        x: one input in pixel space ([C, H, W]; multi-view [V, C, H, W]).
        target: the class whose logit to map (default the predicted one).
        head: another head over its units; default the model's own.
        classes: class names in label order (default 0..C-1).
        name: what the input is called in file names (where_<name>.npy).

    Returns:
        A `WhereExplanation`: `maps` (`maps.maps[0, 0]`: [layers, H, W]), `identity()` (logit, bias, map_sum),
        `to_frame()` (each layer's total).
    """
    chosen = _head(model, head, classes)
    wanted = None if target is None else [chosen.class_index(target)]
    maps = where_maps(_headed(model, chosen), chosen, x.unsqueeze(0), wanted)
    return _stamped(WhereExplanation(maps, x.cpu(), name, name, chosen.name, tuple(chosen.classes)), model)


def dissect(model: nn.Module, probe: str | Path, *, head: HeadLike = None, classes: Sequence[str] | None = None,
            options: DissectOptions | None = None, batch_size: int = 16) -> ConceptMap:
    """Label every unit with a concept of a probe (Network Dissection) and map each class to its concepts.

    Args:
        model: a NeuroView model of RGB images.
        probe: a Broden-layout probe folder (index.csv, images, masks).
        head: another head over its units; default the model's own.
        classes: class names in label order (default 0..C-1).
        options: quantile, IoU threshold, categories, aggregation (`DissectOptions()`; rank weight only).
        batch_size: probe images per forward pass (every layer's maps of a batch are held at once).

    Returns:
        A `ConceptMap`: `units` (each unit's concept and IoU), `classes` (each class's concepts; `to_frame()`).
    """
    options = options or DissectOptions()
    if options.rank != "weight":
        raise NvError("rank importance reads the validation codes of a run; dissect with rank weight here",
                      param="options")
    return _stamped(concept_map(model, _head(model, head, classes), probe, options,
                                compute=Compute(batch_size=batch_size)), model)


def save(model: nn.Module, path: str | Path, *, data: DataBundle, arch: str, force: bool = False) -> Run:
    """Write a run directory for a NeuroView model trained by your own loop, so every `nv` command works on it.

    Args:
        model: the NeuroView model.
        path: the run directory to create (e.g. runs/mine).
        data: the registry dataset it was trained on (`load_data(name, options)`).
        arch: the architecture its network is, as nv names it (e.g. resnet18, smallcnn, package.module:function).
        force: replace an existing run at `path` (only the files nv wrote).

    Returns:
        The `Run` (`load_run(path)`).
    """
    return save_model(model, path, data=data, choice=ModelChoice(arch=arch), force=force)
