"""Importing this module registers every command on the app."""
from . import ablate, compare, convert, data, dissect, evaluate, explain, multiview, perturb, report, train, weights  # noqa: F401
