"""The report: one self-contained HTML page per run (or several runs side by side), built from its files."""
