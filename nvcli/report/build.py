"""`nv report`: one HTML page showing everything a run directory holds (or several runs side by side).

The page reuses the figures already in the run; a figure the run lacks (a result saved without figures,
metrics.png of an older run) is drawn from the saved tables for the page only, the run is left as it is.
Reading needs no torch unless such a figure has to be drawn, or the data that a result was computed from
has to be listed to check it has not changed (runs.provenance).
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

from markupsafe import Markup

from .. import __version__
from ..errors import NvError
from ..fs import access
from ..fs.atomic import write_text
from ..runs import files, lock
from ..runs.provenance import stale_reasons
from ..runs.results import read_manifest, stale
from ..runs.run import Run
from . import page
from .catalog import KINDS, Recorded, caption, kind_of

log = logging.getLogger(__name__)
INLINE_ROWS = 60  # a table with more rows is linked, not folded into the page
PARSE_BYTES = 64_000  # CSVs larger than this are only counted, not parsed


@dataclass
class Source:
    """A directory holding results.json: the run itself, or a result folder inside it (compare_<other>/)."""

    dir: Path
    name: str  # '' for the run itself, else the folder's name
    entries: list[Recorded]


@dataclass
class Context:
    """What every part of the page needs: where the page lives (for links) and what was drawn for it."""

    out_dir: Path
    drawn: list[str] = field(default_factory=list)

    def href(self, path: Path) -> str:
        return quote(os.path.relpath(path, self.out_dir))


def entries(run: Run, folder: Path, seen: dict[str, str | None]) -> list[Recorded]:
    """The results recorded in `folder`'s results.json, each checked against what it was made from (`seen`: the
    sources' digests, computed once for the whole page)."""
    found = []
    for key, value in read_manifest(folder).items():
        # A name in the folder or one subfolder (heads/<name>.json); `access` refuses any that leaves it.
        names = [n for n in value.get("files", []) if 1 <= len(Path(n).parts) <= 2]
        found.append(Recorded(key, dict(value.get("settings", {})), names, value.get("command"),
                              tuple(stale_reasons(run, folder, value, seen))))
    return found


def sources(run: Run) -> list[Source]:
    """The run's own results, then those of each folder inside it with a results.json (e.g. compare_<B>/)."""
    inside = sorted(access.inside(run.dir, p.parent.name) for p in run.dir.glob(f"*/{files.RESULTS}"))
    seen: dict[str, str | None] = {}
    return [Source(folder, folder.name if folder != run.dir else "", entries(run, folder, seen))
            for folder in [run.dir, *inside]]


def _order(run: Run, entry: Recorded) -> tuple:
    """Dense head first, then class order (per-class results), then the key."""
    cls = entry.settings.get("class")
    index = run.classes.index(cls) if isinstance(cls, str) and cls in run.classes else len(run.classes)
    return (not files.is_dense(entry.head), index, entry.key)


def by_kind(run: Run) -> dict[str, list[tuple[Source, Recorded]]]:
    """Every result of the run grouped by kind, kinds in the catalog's order, unknown kinds after (by name)."""
    groups: dict[str, list[tuple[Source, Recorded]]] = {}
    for source in sources(run):
        for entry in sorted(source.entries, key=lambda e: _order(run, e)):
            groups.setdefault(entry.kind, []).append((source, entry))
    known = [k.name for k in KINDS if k.name in groups]
    return {k: groups[k] for k in known + sorted(set(groups) - set(known))}


# -- the run's tables and figures -------------------------------------------------------------------------------
def _csv_block(folder: Path, name: str, ctx: Context) -> Markup:
    """A saved table: shown open (key tables), folded away (short ones) or linked with its size (long ones)."""
    path = access.inside(folder, name)
    about = caption(name)
    header, rows = page.read_csv(folder, name) if path.stat().st_size <= PARSE_BYTES else ([], [])
    count = len(rows) if header else max(access.read_bytes(folder, name).count(b"\n") - 1, 0)
    if not header or count > INLINE_ROWS:
        return page.linked_table(page.link(ctx.href(path), path.name), count, about.text)
    label = path.name + (f": {about.text}" if about.text else "")
    body = page.table(header, rows)
    if about.shown:
        return page.files_line(label) + body
    return page.folded(f"{label} ({count} rows)", body)


def _json_block(folder: Path, name: str, ctx: Context) -> Markup:
    """A saved JSON record as a table of its values (a link when it is not an object)."""
    try:
        record = json.loads(access.read_text(folder, name))
    except ValueError:
        record = None
    link = page.link(ctx.href(folder / name), name)
    if not isinstance(record, dict):
        return page.files_line(link)
    return page.files_line(link) + page.key_values(_flat("", record))


def _draw_missing(source: Source, entry: Recorded, ctx: Context) -> dict[str, bytes]:
    """Figures of `entry` that the run lacks, drawn from its saved tables (none if its kind cannot redraw)."""
    kind = kind_of(entry.kind)
    listed = [n for n in entry.files if n.endswith(".png")]
    if kind.loader is None or (listed and all(access.is_file(source.dir, n) for n in listed)):
        return {}
    drawn: dict[str, bytes] = {}
    try:
        result = kind.loader(source.dir, entry)
        wanted = {} if result is None else {n: w for n, w in result.artifacts(figures=True).items()
                                            if n.endswith(".png") and not access.is_file(source.dir, n)}
        drawn = {name: page.drawn_png(write, name) for name, write in wanted.items()}
    except (NvError, OSError, ValueError, KeyError) as exc:  # unreadable tables: the page says what is missing
        log.info("cannot redraw the figures of %s in '%s': %s", entry.key, source.dir, exc)
    ctx.drawn += [str(source.dir / name) for name in drawn]
    return drawn


def entry_html(source: Source, entry: Recorded, ctx: Context) -> Markup:
    """One result: its figures (each with how to read it and the command that remakes it), then its tables."""
    drawn = _draw_missing(source, entry, ctx)
    figures, tables, missing = [], [], []
    for name in entry.files + [n for n in drawn if n not in entry.files]:
        path = access.inside(source.dir, name)
        if name in drawn:
            figures.append(page.figure(drawn[name], name, caption(name).text, entry.command,
                                       "(drawn for this page from the saved tables; the run has no such file)"))
        elif not path.is_file():
            missing.append(name)
        elif name.endswith(".png"):
            figures.append(page.figure(access.read_bytes(source.dir, name), name, caption(name).text, entry.command))
        elif name.endswith(".csv"):
            tables.append(_csv_block(source.dir, name, ctx))
        elif name.endswith(".json"):  # a record (a sparse head's): its settings and numbers as a table
            tables.append(_json_block(source.dir, name, ctx))
        else:
            tables.append(page.files_line(page.link(ctx.href(path), name)))
    if not figures and any(n.endswith(".csv") for n in entry.files) and entry.command:
        tables.insert(0, page.note("no figure was saved with this result; regenerate with: "
                                   + entry.command.replace(" --no-plot", "")))
    if missing:
        tables.append(page.note(f"listed in results.json but missing: {', '.join(missing)}"))
    mark = page.stale(entry.key, entry.stale, entry.command) if entry.stale else ""
    return page.join([mark, _sparse_head(source, entry), page.grid(figures), *tables])


def _sparse_head(source: Source, entry: Recorded) -> Markup:
    """A sparse head (kind `head`): its path plot beside a table per class ('' for other kinds)."""
    if entry.kind != "head":
        return Markup()
    from .sparse import head_html

    name = files.SPARSE_PATH_PNG.name()
    shown = (page.figure(access.read_bytes(source.dir, name), name, caption(name).text, entry.command)
             if access.is_file(source.dir, name) else Markup())
    return head_html(source.dir, files.ResultKey.parse(entry.key).name, shown)


# -- the run as a whole ------------------------------------------------------------------------------------------
def _metrics(run: Run) -> tuple[list[str], list[list[str]]]:
    return page.read_csv(run.dir, files.METRICS) if access.is_file(run.dir, files.METRICS) else ([], [])


def _evaluated(run: Run) -> tuple[str, str]:
    """The accuracy in eval.csv and its source when it still describes the run (results.stale: the weights, data and
    files it was made from are the run's now); else no accuracy and why eval.csv is not used."""
    if not access.is_file(run.dir, files.EVAL.name()):
        return "", ""
    if stale(run, "eval"):
        return "", f"; {files.EVAL.name()} is stale"
    header, rows = page.read_csv(run.dir, files.EVAL.name())
    if not rows or "accuracy" not in header:
        return "", ""
    return rows[0][header.index("accuracy")], files.EVAL.name()


def summary(run: Run) -> dict[str, str]:
    """Table 1's columns for one run: network, activation, data, size, epochs, accuracy and where it was read."""
    spec, train = run.spec, run.config.train
    header, rows = _metrics(run)
    accuracy, source = _evaluated(run)
    if not accuracy and rows and "val_acc" in header:
        accuracy, source = rows[-1][header.index("val_acc")], f"{files.METRICS} (last epoch{source})"
    try:
        shown = f"{float(accuracy):.2%}"
    except ValueError:
        shown, source = "-", ""
    return {"run": run.name, "network": spec.label,
            "activation": spec.activation,
            "dataset": str(run.config.data.name), "classes": str(len(run.classes)),
            "units": str(run.config.units or "-"),
            "epochs": f"{len(rows)}/{train.epochs}" if train else "- (converted)",
            "accuracy": shown, "accuracy from": source or "-"}


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [pair for k in value for pair in _flat(f"{prefix}.{k}" if prefix else str(k), value[k])]
    return [(prefix, ", ".join(map(str, value)) if isinstance(value, list) else str(value))]


def config_groups(run: Run) -> list[tuple[str, list[tuple[str, str]]]]:
    """The run's settings as (title, [(name, value)]): architecture and codes, data, recipe, versions."""
    config = run.config
    model = _flat("", config.model.to_dict()) + [("units", str(config.units)), ("kind", str(config.kind))]
    data_pairs = [("name", str(config.data.name)), ("kind", run.kind), ("classes", ", ".join(run.classes))]
    data_pairs += _flat("options", config.data.options)
    recipe = _flat("", config.train.to_json()) if config.train else [("train", "none: converted, not trained")]
    versions = _flat("", config.versions or {}) + [("created", str(config.created))]
    return [("Architecture and codes", model), ("Data", data_pairs), ("Recipe", recipe), ("Versions", versions)]


def training_html(run: Run, ctx: Context) -> Markup:
    """metrics.png (drawn from metrics.csv when the run has none) and the last epoch's numbers."""
    header, rows = _metrics(run)
    if not rows:
        return page.absent("no epoch finished (metrics.csv is empty or missing)")
    path = run.path(files.METRICS_PNG)
    how = "written at the end of training, also of a resumed training; the report draws it when missing"
    if path.is_file():
        shown = page.figure(access.read_bytes(run.dir, files.METRICS_PNG), files.METRICS_PNG,
                            caption(files.METRICS_PNG).text, None, origin=how)
    else:
        from ..fs.atomic import save_figure
        from ..plots.metrics import metrics_figure

        figure = metrics_figure(access.read_csv(run.dir, files.METRICS), f"{run.name}: training curves")
        data = page.drawn_png(lambda path: save_figure(path, figure), files.METRICS_PNG)
        ctx.drawn.append(str(path))
        shown = page.figure(data, files.METRICS_PNG, caption(files.METRICS_PNG).text, None,
                            "(drawn for this page from metrics.csv; the run has no metrics.png)", how)
    return shown + page.files_line(f"last epoch ({files.METRICS})") + page.table(header, rows[-1:])


# -- the page ------------------------------------------------------------------------------------------------------
@dataclass
class Report:
    """The report page of one run (or several side by side): its HTML and what it holds."""

    html: str
    runs: list[str]
    sections: list[str]  # the anchors of the page's sections, in order
    drawn: list[str] = field(default_factory=list)  # figures the runs lack, drawn for the page

    def write(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write the page atomically to `path`; an existing file that is not an nv report is replaced only with
        `force`, and a page written into a run directory holds that run's lock."""
        path = Path(path)
        if path.is_dir():
            raise NvError(f"out '{path}' is a directory; give a file name such as {path / files.REPORT.name()}",
                          param="out")
        if not path.parent.is_dir():
            raise NvError(f"cannot write the report to '{path}': the folder '{path.parent}' does not exist")
        if belongs_to_run(path):
            raise NvError(f"out '{path}' is a file of the run '{run_root(path)}'; nv never writes a report in place of "
                          "a run's own files (choose another out)", param="out")
        if (path.exists() or path.is_symlink()) and not is_report(path):
            if path.is_symlink() or not path.is_file():
                raise NvError(f"out '{path}' is {_kind(path)}, not a regular file; nv replaces only regular files "
                              "(choose another out)", param="out")
            if not force:
                raise NvError(f"out '{path}' exists and is not a report nv wrote; nv will not replace it (choose "
                              "another, or pass force to replace it)", param=("out", "force"))
        folder = path.parent
        with lock.holding(folder) if (folder / files.CONFIG).is_file() else nullcontext():
            try:
                write_text(path, self.html)
            except OSError as exc:
                raise NvError(f"cannot write the report to '{path}': {exc.strerror or exc}") from exc
        return path


def is_report(path: Path) -> bool:
    """Whether `path` is a plain file holding a page that nv report wrote (its opening names the generator)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and (page.GENERATOR.encode() in head or b"<title>nv report:" in head)


def _kind(path: Path) -> str:
    """What a path that is not a regular file is, in words."""
    import stat

    if path.is_symlink():
        return "a symbolic link"
    mode = path.stat().st_mode
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def run_root(path: Path) -> Path | None:
    """The run directory `path` lies in (its folder, or the folder above: heads/, codes/), or None."""
    return next((folder for folder in (path.parent, path.parent.parent) if (folder / files.CONFIG).is_file()), None)


def belongs_to_run(path: Path) -> bool:
    """Whether `path` is a file nv writes in the run it lies in (weights, checkpoint, config, results, codes, ...)
    other than a report page."""
    root = run_root(path)
    if root is None:
        return False
    name = path.relative_to(root).as_posix()
    reports = (files.REPORT, files.REPORT_SIDE_BY_SIDE)
    return files.written_by_nv(name) and not any(fnmatchcase(name, a.glob()) for a in reports)


def default_path(runs: Sequence[Run]) -> Path:
    """report.html in the run, or report_vs_<others>.html in the first of several runs."""
    if len(runs) == 1:
        return files.REPORT.path(runs[0].dir)
    return files.REPORT_SIDE_BY_SIDE.path(runs[0].dir, others="_".join(r.name for r in runs[1:]))


def _overview(runs: Sequence[Run]) -> tuple[Markup, Markup]:
    """The page's title block, and the overview section: one Table 1 row per run."""
    rows = [summary(r) for r in runs]
    names = ", ".join(r.name for r in runs)
    where = "; ".join(str(r.dir) for r in runs)
    title = page.title(names, where, time.strftime("%Y-%m-%d %H:%M"), __version__)
    return title, page.section("overview", "Overview", "Validation accuracy from eval.csv (nv eval) where saved, "
                               "else after the last epoch.",
                               page.table(list(rows[0]), [list(r.values()) for r in rows]))


def _single(run: Run, ctx: Context) -> list[tuple[str, str, Markup]]:
    groups = [page.heading(title) + page.key_values(pairs) for title, pairs in config_groups(run)]
    config = page.grid(groups, "four", boxed=True)
    out = [("config", "Configuration", page.section("config", "Configuration", "Every setting that made the run "
                                                    "(config.json).", config)),
           ("training", "Training", page.section("training", "Training curves", "", training_html(run, ctx)))]
    for name, items in by_kind(run).items():
        kind = kind_of(name)
        blocks = []
        for source, entry in items:
            title = " · ".join(filter(None, (source.name, entry.title if len(items) > 1 else "")))
            blocks.append((page.heading(title) if title else "") + entry_html(source, entry, ctx))
        two_up = kind.two_up and len(items) > 1
        body = page.grid(blocks, "two", boxed=True) if two_up else page.join(blocks)
        out.append((name, kind.title, page.section(name, kind.title, kind.about, body)))
    return out


def _side_by_side(runs: Sequence[Run], ctx: Context) -> list[tuple[str, str, Markup]]:
    heads = [r.name for r in runs]
    flat = [dict(pair for _, pairs in config_groups(r) for pair in pairs) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differ = [[k] + [f.get(k, "-") for f in flat] for k in keys
              if k != "created" and len({f.get(k, "-") for f in flat}) > 1]
    every = page.table(["setting", *heads], [[k] + [f.get(k, "-") for f in flat] for k in keys])
    config = (page.table(["setting", *heads], differ) if differ else page.paragraph("All settings agree.")) + (
        page.folded("every setting", every))
    out = [("config", "Configuration", page.section("config", "Configuration", "Settings that differ between the "
                                                    "runs (config.json).", config)),
           ("training", "Training", page.section("training", "Training curves", "",
                                                 page.columns(heads, [training_html(r, ctx) for r in runs])))]
    groups = [by_kind(r) for r in runs]
    names = list(dict.fromkeys(k for g in groups for k in g))
    order = {k.name: i for i, k in enumerate(KINDS)}
    for name in sorted(names, key=lambda n: (order.get(n, len(order)), n)):
        kind = kind_of(name)
        slots: dict[tuple[str, str], list[str]] = {}
        for i, group in enumerate(groups):
            for source, entry in group.get(name, []):
                cells = slots.setdefault((source.name, entry.key), [""] * len(runs))
                cells[i] = entry_html(source, entry, ctx)
        body = page.join(page.heading(" · ".join(filter(None, (folder, key))))
                         + page.columns(heads, [c or page.absent("not in this run") for c in cells])
                         for (folder, key), cells in slots.items())
        out.append((name, kind.title, page.section(name, kind.title, kind.about, body)))
    return out


def build_report(runs: Sequence[Run], out: str | os.PathLike | None = None) -> tuple[Report, Path]:
    """The report page of one run, or of several side by side.

    Args:
        runs: the runs (`load_run`); the first is the page's home.
        out: the HTML file (default: RUN/report.html, or FIRST_RUN/report_vs_<others>.html).

    Returns:
        The `Report` (its `write(path, force=...)` writes it all at once) and the path it is meant for.
    """
    if not runs:
        raise NvError("give at least one run PATH", param="run")
    path = Path(out) if out is not None else default_path(runs)
    ctx = Context(path.resolve().parent)
    parts = _single(runs[0], ctx) if len(runs) == 1 else _side_by_side(runs, ctx)
    title, overview = _overview(runs)
    parts.insert(0, ("overview", "Overview", overview))
    html = page.document(f"nv report: {', '.join(r.name for r in runs)}", title, parts)
    return Report(html, [r.name for r in runs], [p[0] for p in parts], ctx.drawn), path
