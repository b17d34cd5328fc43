"""Analyses of a run: one module per analysis, each returning a result that saves and loads its files."""
