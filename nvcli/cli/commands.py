"""Importing this module registers every command on the app."""
from . import compare, convert, data, dissect, evaluate, explain, multiview, perturb, sparsify, train, weights  # noqa: F401
