"""Importing this module registers every command on the app."""
from . import convert, data, evaluate, train  # noqa: F401
from . import compare, dissect, explain, multiview, perturb, weights  # noqa: F401
