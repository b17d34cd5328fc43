"""nv: NeuroView networks, explainable by design.

The public API is flat (`from nvcli import NeuroView, load_run, evaluate`); each name is imported on
first use, so `import nvcli` (and the `nv` command's start-up) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.5.0"

_API = {
    "NvError": "errors",
    "NeuroView": "models.neuroview", "UnitCodes": "models.neuroview",
    "MultiViewNeuroView": "models.multiview",
    "build_network": "models.archs",
    "ModelChoice": "models.spec", "ModelSpec": "models.spec", "build_model": "models.build",
    "load_data": "data.registry", "data_options": "data.registry",
    "TrainConfig": "training.config",
    "train": "training.recipes", "resume": "training.recipes", "convert": "training.recipes",
    "Run": "runs.run", "load_run": "runs.run",
    "Head": "analysis.head", "read_head": "analysis.head",
    "evaluate": "analysis.evaluate",
    "explain_run": "analysis.explain",
    "AblationOptions": "analysis.settings",
    "DissectOptions": "analysis.settings", "Compute": "analysis.settings",
    "compare": "analysis.compare",
    "view_weights": "analysis.views",
    "dissect_run": "analysis.dissect.concepts",
    "build_report": "report.build",
    "fit_path": "analysis.sparse.sparsify", "sparse_head": "analysis.sparse.sparsify",
    "PathSettings": "analysis.settings", "Selection": "analysis.sparse.selection",
    # On objects (a model, data, a head or codes), nothing written until a result's save(run): docs/api.md
    "codes": "api", "weights": "api", "class_weights": "api", "ablate": "api", "sparsify": "api", "perturb": "api",
    "explain": "api", "where": "api", "dissect": "api", "save": "api",
}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'nvcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
