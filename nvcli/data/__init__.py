"""Datasets: the registry, built-in worlds with known mechanisms, and real datasets read from disk."""
