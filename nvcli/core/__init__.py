"""nv's engine: everything the commands do, importable without Typer."""
