"""The pieces of the report page: one self-contained HTML document, inline CSS, images embedded, no script."""
from __future__ import annotations

import base64
import csv
import html
import io
import struct
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..fs import access

GENERATOR = '<meta name="generator" content="nv report">'  # how nv knows a page it may replace
CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d1d1f;
  margin:0;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:16px 20px 48px;background:#fff}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:0 0 6px;padding-top:6px}
h3{font-size:15px;margin:14px 0 6px}
section{border-top:1px solid #ddd;margin-top:22px;padding-top:8px}
p.about{color:#555;margin:0 0 10px}
nav{margin:10px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px}
a{color:#0b5cad;text-decoration:none}a:hover{text-decoration:underline}
.meta{color:#666;font-size:13px;overflow-wrap:anywhere}
figure{margin:10px 0 16px}
figure img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#333;margin-top:4px;overflow-wrap:anywhere}
figcaption .file{font-weight:600}
code,.cmd{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.cmd{display:block;color:#555;margin-top:2px}
.note{color:#8a5a00;font-size:13px;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 10px}
th,td{border-bottom:1px solid #e4e4e4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv td:first-child{color:#555;white-space:nowrap}
details{margin:4px 0 8px}summary{cursor:pointer;font-size:13px;color:#333}
.grid{display:grid;gap:8px 18px}
.grid.two{grid-template-columns:repeat(2,minmax(0,1fr))}
.grid.four{grid-template-columns:repeat(auto-fit,minmax(270px,1fr))}
.cols{display:grid;gap:8px 18px}
.cols>div{min-width:0}
.colhead{font-weight:600;background:#f3f3f5;padding:4px 8px;overflow-wrap:anywhere}
.absent{color:#999;font-style:italic}
.stale{border:2px solid #b00020;background:#fff0f0;color:#b00020;padding:6px 10px;margin:8px 0;overflow-wrap:anywhere}
.stale + .grid, .stale ~ table{opacity:.55}
.files{font-size:12.5px;color:#444}
"""


def esc(text: object) -> str:
    """Text made safe for HTML."""
    return html.escape(str(text), quote=True)


def cell(value: str) -> str:
    """A table cell: numbers right-aligned with four significant digits, text as it is."""
    try:
        number = float(value)
    except ValueError:
        return f"<td>{esc(value)}</td>"
    text = value if value.lstrip("-").isdigit() else f"{number:.4g}"
    return f'<td class="num">{esc(text)}</td>'


def table(header: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """An HTML table (scrolling sideways inside its own box if too wide, never the page)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(str(v)) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of settings."""
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<div class="scroll"><table class="kv"><tbody>{body}</tbody></table></div>'


def read_csv(folder: Path, name: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows, as text, of the CSV file `name` in a run's `folder` (read as `fs.access` allows)."""
    rows = list(csv.reader(io.StringIO(access.read_text(folder, name), newline="")))
    return (rows[0], rows[1:]) if rows else ([], [])


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its header ((0, 0) if it is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return 0, 0
    return struct.unpack(">II", data[16:24])


def figure(data: bytes, name: str, caption: str, command: str | None, note: str = "", origin: str = "") -> str:
    """An embedded PNG with its file name, how to read it, and the command that regenerates it (or, with no
    such command, `origin`: what writes it)."""
    width, height = png_size(data)
    size = f' width="{width}" height="{height}"' if width else ""
    source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    parts = [f'<span class="file">{esc(name)}</span>' + (f": {esc(caption)}" if caption else "")]
    if note:
        parts.append(f'<span class="note"> {esc(note)}</span>')
    if command:
        parts.append(f'<span class="cmd">regenerate with: {esc(command)}</span>')
    elif origin:
        parts.append(f'<span class="cmd">{esc(origin)}</span>')
    return f'<figure><img src="{source}" alt="{esc(name)}"{size}><figcaption>{"".join(parts)}</figcaption></figure>'


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def files_line(html_text: str) -> str:
    """A line naming files (already HTML: links and escaped text)."""
    return f'<div class="files">{html_text}</div>'


def note(text: str) -> str:
    """A remark about what is shown or missing (plain text)."""
    return f'<div class="note">{esc(text)}</div>'


def stale(key: str, reasons: Sequence[str], command: str | None) -> str:
    """A visible mark on a result that no longer describes the run: why, and the command that makes it again."""
    again = f"; make it again with: {command}" if command else ""
    return (f'<div class="stale" data-stale="{esc(key)}"><b>Stale, not of the run as it is now</b>: '
            f'{esc("; ".join(reasons) + again)}</div>')


def absent(text: str) -> str:
    """In place of a part a run does not have (plain text)."""
    return f'<p class="absent">{esc(text)}</p>'


def drawn_png(write: Callable[[Path], None], name: str) -> bytes:
    """The bytes of a figure `write` draws, drawn in a scratch folder (never in a run)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nv-report-") as tmp:
        write(Path(tmp) / name)
        return (Path(tmp) / name).read_bytes()


def section(ident: str, title: str, about: str, body: str) -> str:
    """A top-level section of the page, anchored at `ident`."""
    intro = f'<p class="about">{esc(about)}</p>' if about else ""
    return f'<section id="{esc(ident)}"><h2>{esc(title)}</h2>{intro}{body}</section>'


def columns(heads: Sequence[str], cells: Sequence[str]) -> str:
    """Side by side: one column per run, headed by its name."""
    style = f'style="grid-template-columns:repeat({len(cells)},minmax(0,1fr))"'
    top = "".join(f'<div class="colhead">{esc(h)}</div>' for h in heads)
    return f'<div class="cols" {style}>{top}{"".join(f"<div>{c}</div>" for c in cells)}</div>'


def document(title: str, header: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page: `sections` are (anchor, title, html)."""
    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t, _ in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{GENERATOR}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><main>{header}<nav>{nav}</nav>"
            f'{"".join(body for _, _, body in sections)}</main></body></html>\n')
