"""The command-line layer: parses flags, calls nvcli.core, renders results."""
