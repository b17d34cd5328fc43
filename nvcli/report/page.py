"""The pieces of the report page: one self-contained HTML document, inline CSS, images embedded, no script.

The HTML is in templates/ (Jinja2, autoescape on): a piece escapes every text it is given and returns `Markup`,
HTML that the next piece inserts as it is; nothing is escaped by hand, so nothing is escaped twice or forgotten.
"""
from __future__ import annotations

import base64
import csv
import io
import struct
from pathlib import Path
from typing import Callable, Iterable, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..fs import access

GENERATOR = Markup('<meta name="generator" content="nv report">')  # how nv knows a page it may replace
TEMPLATES = Environment(loader=PackageLoader("nvcli.report", "templates"), autoescape=True,
                        keep_trailing_newline=True, undefined=StrictUndefined)
PARTS = TEMPLATES.get_template("parts.html").module


def join(pieces: Iterable[str]) -> Markup:
    """Pieces one after the other, as HTML (`"".join` would make them text, shown escaped where inserted)."""
    return Markup().join(pieces)


def _cell(value: object) -> tuple[str, bool]:
    """A table cell's text and whether it is a number (shown right-aligned with four significant digits)."""
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text, False
    return (text if text.lstrip("-").isdigit() else f"{number:.4g}"), True


def table(header: Sequence[str], rows: Iterable[Sequence[object]], css: str = "") -> Markup:
    """An HTML table (scrolling sideways inside its own box if too wide, never the page)."""
    return PARTS.table(header, [[_cell(v) for v in row] for row in rows], css)


def key_values(pairs: Iterable[tuple[str, object]]) -> Markup:
    """A two-column table of settings."""
    return PARTS.key_values(list(pairs))


def read_csv(folder: Path, name: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows, as text, of the CSV file `name` in a run's `folder` (read as `fs.access` allows)."""
    rows = list(csv.reader(io.StringIO(access.read_text(folder, name), newline="")))
    return (rows[0], rows[1:]) if rows else ([], [])


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its header ((0, 0) if it is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return 0, 0
    return struct.unpack(">II", data[16:24])


def figure(data: bytes, name: str, caption: str, command: str | None, note: str = "", origin: str = "") -> Markup:
    """An embedded PNG with its file name, how to read it, and the command that regenerates it (or, with no
    such command, `origin`: what writes it)."""
    width, height = png_size(data)
    source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return PARTS.figure(source, name, caption, command, note, origin, width, height)


def link(href: str, text: str) -> Markup:
    """A link to `href` (a relative URL, already quoted) reading `text`."""
    return PARTS.link(href, text)


def files_line(text: str) -> Markup:
    """A line naming files (text, or HTML such as a link)."""
    return PARTS.files_line(text)


def linked_table(anchor: Markup, count: int, about: str) -> Markup:
    """A line linking (`anchor`) a table too long for the page, with its number of rows and what it holds."""
    return PARTS.linked_table(anchor, count, about)


def note(text: str) -> Markup:
    """A remark about what is shown or missing."""
    return PARTS.note(text)


def stale(key: str, reasons: Sequence[str], command: str | None) -> Markup:
    """A visible mark on a result that no longer describes the run: why, and the command that makes it again."""
    return PARTS.stale(key, reasons, command)


def absent(text: str) -> Markup:
    """In place of a part a run does not have."""
    return PARTS.absent(text)


def folded(summary: str, body: Markup) -> Markup:
    """`body` folded away under a line of text."""
    return PARTS.folded(summary, body)


def heading(text: str) -> Markup:
    """A heading inside a section."""
    return PARTS.heading(text)


def paragraph(text: str) -> Markup:
    """A paragraph of text."""
    return PARTS.paragraph(text)


def grid(blocks: Iterable[str], kind: str = "", boxed: bool = False) -> Markup:
    """Blocks laid out in a grid (`kind`: 'two' per row, 'four' narrow ones; `boxed`: each block in a cell)."""
    return PARTS.grid(list(blocks), kind, boxed)


def drawn_png(write: Callable[[Path], None], name: str) -> bytes:
    """The bytes of a figure `write` draws, drawn in a scratch folder (never in a run)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nv-report-") as tmp:
        write(Path(tmp) / name)
        return (Path(tmp) / name).read_bytes()


def section(ident: str, title: str, about: str, body: Markup) -> Markup:
    """A top-level section of the page, anchored at `ident`."""
    return PARTS.section(ident, title, about, body)


def columns(heads: Sequence[str], cells: Sequence[str]) -> Markup:
    """Side by side: one column per run, headed by its name."""
    return PARTS.columns(heads, cells)


def title(names: str, where: str, made: str, version: str) -> Markup:
    """The page's title block: the runs' names, where they are, when and by which nv the page was made."""
    return PARTS.title(names, where, made, version)


def document(title: str, header: Markup, sections: Sequence[tuple[str, str, Markup]]) -> str:
    """The whole page: `sections` are (anchor, title, html)."""
    return TEMPLATES.get_template("page.html").render(generator=GENERATOR, title=title, header=header,
                                                      sections=sections)
