"""Options shared by several commands, declared once."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..core.errors import NvError
from ..core.runs import RUNS_DIR
from .render import Format

RunOpt = typer.Option(None, "--run", help="Run directory (default: RUNS_DIR/latest).")
RunsOpt = typer.Option(None, "--run", help="Run directory; repeat for a side-by-side table (default: latest).")
RunsDirOpt = typer.Option(RUNS_DIR, "--runs-dir", help="Where run directories live.")
FormatOpt = typer.Option(Format.table, "--format", "-f", help="Output on stdout: table, csv or json.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda or mps (auto: cuda > mps > cpu).")
BatchOpt = typer.Option(128, "--batch-size", "-b", min=1, help="Samples per batch for inference.")
DataOptionOpt = typer.Option(None, "--data-option", "-D", help="Extra dataset setting KEY=VALUE (repeatable), "
                             "e.g. -D train_per_class=50.")


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, 'a,b' -> ['a', 'b'], else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.split(",") if "," in text else text


def data_options(pairs: Optional[list[str]]) -> dict[str, Any]:
    """KEY=VALUE pairs from --data-option as a dict."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise NvError(f"--data-option '{pair}' is not KEY=VALUE")
        options[key.replace("-", "_")] = parse_value(value)
    return options


def split_list(text: Optional[str]) -> Optional[list[str]]:
    """'a,b , c' -> ['a', 'b', 'c']; None stays None; a name given twice is an error."""
    if not text:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise NvError(f"'{text}' names {', '.join(repeated)} more than once; each name may appear once")
    return names


def runs_or_latest(runs: Optional[list[Path]], runs_dir: Path) -> list[Optional[Path]]:
    """The --run values, or [None] meaning the latest run."""
    return list(runs) if runs else [None]
