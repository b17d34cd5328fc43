"""Importing this module registers every command on the app."""
from . import (  # noqa: F401  (each module registers its command)
    ablate,
    compare,
    convert,
    data,
    dissect,
    evaluate,
    explain,
    multiview,
    perturb,
    report,
    sparsify,
    train,
    weights,
)
