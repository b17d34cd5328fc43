"""nv: NeuroView networks, explainable by design."""

__version__ = "0.1.0"

from .core.archs import build_network  # noqa: E402
from .core.build import ModelSpec, build_model  # noqa: E402
from .core.data import load_data  # noqa: E402
from .core.engine import TrainConfig  # noqa: E402
from .core.errors import NvError  # noqa: E402
from .core.neuroview import NeuroView, UnitCodes  # noqa: E402
from .core.runs import Run, load_run  # noqa: E402

__all__ = ["NeuroView", "UnitCodes", "build_network", "ModelSpec", "build_model", "load_data", "TrainConfig",
           "NvError", "Run", "load_run", "__version__"]
