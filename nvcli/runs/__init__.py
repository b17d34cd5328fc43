"""The run directory: every file name, results and what they were made from, locking, reading a run back."""
