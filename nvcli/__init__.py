"""nv: NeuroView networks, explainable by design."""

__version__ = "0.1.0"
