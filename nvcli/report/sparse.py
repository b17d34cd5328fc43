"""The report's view of a sparse head: its path plot beside a short table per class (units, layer, concept, weight,
group size), read from heads/<name>.json and concepts_units.csv (no torch)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from ..errors import NvError
from ..fs import access
from ..runs import files
from . import page

if TYPE_CHECKING:
    from ..analysis.sparse.record import ClassRecord, SparseHeadRecord


def _concepts(run_dir: Path, head: str) -> dict[str, str]:
    """unit (as text) -> concept, from the concepts_units file that labels `head` (files.concept_heads)."""
    names = (files.CONCEPTS_UNITS.name(h) for h in files.concept_heads(head))
    name = next((n for n in names if access.is_file(run_dir, n)), None)
    if name is None:
        return {}
    header, rows = page.read_csv(run_dir, name)
    if "unit" not in header or "concept" not in header:
        return {}
    unit, concept = header.index("unit"), header.index("concept")
    return {row[unit]: row[concept] for row in rows if len(row) > max(unit, concept)}


def _record(run_dir: Path, name: str) -> SparseHeadRecord | None:
    """heads/<name>.json, or None when it is missing, a link, or not a head's record."""
    from ..analysis.sparse.record import SparseHeadRecord

    info = files.SPARSE_HEAD_INFO.name(name=name)
    if not access.is_file(run_dir, info):
        return None
    try:
        return SparseHeadRecord.from_json(json.loads(access.read_text(run_dir, info)), info)
    except (OSError, ValueError, NvError):
        return None


def _class_table(row: ClassRecord, concepts: dict[str, str]) -> Markup:
    """One class: its accuracy with this head and the dense one, and a row per kept unit."""
    title = f"{row.class_}: {len(row.kept)} units, accuracy {row.val_acc:.3f} (dense {row.dense_val_acc:.3f})"
    body = page.table(["unit", "layer", "concept", "weight", "group size"],
                      [[str(k.unit), k.layer, concepts.get(str(k.unit), "-"), str(k.weight), str(k.group_size)]
                       for k in row.kept])
    return page.files_line(title) + body


def head_html(run_dir: Path, name: str, path_figure: Markup) -> Markup:
    """Sparse head `name` of the run in `run_dir`: `path_figure` (the path plot's HTML) and its rule and accuracy on
    the left, a table per class on the right ('' when its record has no per-class units)."""
    record = _record(run_dir, name)
    if record is None:
        return Markup()
    concepts = _concepts(run_dir, name)
    facts = [("rule", json.dumps(record.rule.to_json())),
             ("units per class (max, mean)", f"{record.units_per_class_max}, {record.units_per_class_mean:.1f}"),
             ("validation accuracy (dense)", f"{record.val_acc:.3f} ({record.dense_val_acc:.3f})"),
             ("worst class", f"{record.val_acc_min:.3f}"),
             ("groups of near-copies", f"{record.groups} (|corr| >= {record.group_corr})")]
    tables = page.join(_class_table(row, concepts) for row in record.per_class)
    return page.grid([path_figure + page.key_values(facts), tables], "two", boxed=True)
