"""The run directory: the name of every file, atomic writes, locking, and reading a run back."""
