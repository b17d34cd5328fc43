"""Broden-format probe sets (NetDissect's layout): read one for Network Dissection, or write one from arrays.

Layout (all paths relative to the probe root):
- `index.csv`: `image,split,ih,iw,sh,sw,color,object,part,material,scene,texture`; `image` is relative to
  `images/`; a category cell is empty or `;`-joined tokens: all-digit tokens are image-level label
  numbers, other tokens are mask PNGs relative to `images/` (several = layers of one category).
- masks: RGB PNGs at (sh, sw) holding the global label number R + 256*G (0 = unlabelled).
- `label.csv`: `number,name,category,frequency,coverage,syns`; `category.csv`: `name,first,last,count,frequency`;
  `c_<category>.csv`: `code,number,name,frequency,coverage`.
A label listed in several categories is scored under its primary category: the selected category in
which its coverage is highest (ties: the earlier one in `category.csv`).
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence, TypedDict

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import NvError, choice_error
from ..fs.atomic import atomic_path, write_csv
from ..fs.paths import listed_path
from .imagefile import image_file, read_rgb

log = logging.getLogger(__name__)

CATEGORIES = ("color", "object", "part", "material", "scene", "texture")  # index.csv's columns, in order
DEFAULT_CATEGORIES = ("object", "part", "scene", "texture", "color")  # NetDissect-Lite's: material off
INDEX_COLUMNS = ("image", "split", "ih", "iw", "sh", "sw")
MAX_LABEL = 65535  # the largest number R + 256*G can hold
MAX_SIDE = 16384  # image and mask sides in index.csv: a bound on the label layers built from them


class Label(NamedTuple):
    """A probe-set label: its name and the category it is scored under."""

    name: str
    category: str


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise NvError(f"{path} not found; a Broden probe set needs it (columns: {','.join(required)})")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise NvError(f"{path} is not a readable CSV ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise NvError(f"{path} lacks column(s) {', '.join(missing)}; expected at least: {','.join(required)}")
    return frame


def _is_number(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _int(value: str, path: Path, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NvError(f"{path}: column '{column}' holds '{value}', expected an integer") from None


def decode_mask(path: Path) -> np.ndarray:
    """The label numbers (int32 [h, w]) of one mask PNG: R + 256*G."""
    with image_file(path, "mask") as img:
        rgb = np.asarray(img.convert("RGB"))
    # Widen before multiplying: 256 * a uint8 wraps around under NumPy 2.
    return rgb[..., 0].astype(np.int32) + 256 * rgb[..., 1].astype(np.int32)


def encode_mask(labels: np.ndarray) -> np.ndarray:
    """RGB uint8 [h, w, 3] holding label numbers (0..65535) as R + 256*G."""
    labels = np.asarray(labels, dtype=np.int64)
    rgb = np.zeros(labels.shape + (3,), np.uint8)
    rgb[..., 0] = labels % 256
    rgb[..., 1] = labels // 256
    return rgb


class _Record(NamedTuple):
    image: str
    ih: int
    iw: int
    sh: int
    sw: int
    masks: dict[str, tuple[str, ...]]  # category -> mask PNG paths (layers)
    scalars: dict[str, tuple[int, ...]]  # category -> image-level label numbers


class BrodenProbe(Dataset):
    """A Broden-format probe set, checked up front; items are an image and its per-category label masks.

    `probe[i]` is `{"image": float [3, H, W] in [0, 1], "masks": {category: int32 [K, sh, sw]}, "index": i}`:
    K layers of global label numbers, one per mask PNG, then one constant layer per image-level label.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        categories: Sequence[str] | None = None,
        image_size: int | tuple[int, int] | None = None,
        split: str | None = None,
        limit: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NvError(f"probe directory {self.root} not found; expected a Broden layout (index.csv, images/)")
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else image_size
        if self.image_size is not None and min(self.image_size) < 1:
            raise NvError(f"image size {image_size} must be positive")

        known = list(_read_csv(self.root / "category.csv", ("name",))["name"])
        if categories is None:
            self.categories = [c for c in known if c in DEFAULT_CATEGORIES]
            if not self.categories:
                raise NvError(f"{self.root / 'category.csv'} has none of the default categories "
                              f"{', '.join(DEFAULT_CATEGORIES)}; it has: {', '.join(known)}; choose some")
        else:
            for cat in categories:
                if cat not in known:
                    raise choice_error("category", cat, known)
            self.categories = [c for c in known if c in set(categories)]
            if not self.categories:
                raise NvError(f"no categories selected; valid: {', '.join(known)}")

        defined, self.labels = self._read_labels()
        self._defined = np.zeros(MAX_LABEL + 1, bool)  # 0 and the label numbers label.csv defines
        self._defined[[0] + [n for n in defined if n <= MAX_LABEL]] = True
        self._records = self._read_index(split, limit, defined)
        self._check_files()

    def _read_labels(self) -> tuple[set[int], dict[int, Label]]:
        table = _read_csv(self.root / "label.csv", ("number", "name", "category"))
        path = self.root / "label.csv"
        names = {_int(n, path, "number"): name for n, name in zip(table["number"], table["name"])}
        best: dict[int, tuple[float, str]] = {}
        for cat in self.categories:  # category.csv order, so a tie keeps the earlier category
            cpath = self.root / f"c_{cat}.csv"
            ctable = _read_csv(cpath, ("number", "coverage"))
            for number, coverage in zip(ctable["number"], ctable["coverage"]):
                n = _int(number, cpath, "number")
                try:
                    cov = float(coverage)
                except ValueError:
                    raise NvError(f"{cpath}: coverage '{coverage}' of label {n} is not a number") from None
                if n == 0:
                    continue
                if n not in names:
                    raise NvError(f"{cpath} lists label {n}, which {path} does not define")
                if n not in best or cov > best[n][0]:
                    best[n] = (cov, cat)
        return set(names) - {0}, {n: Label(names[n], best[n][1]) for n in sorted(best)}

    def _read_index(self, split: str | None, limit: int | None, defined: set[int]) -> list[_Record]:
        path = self.root / "index.csv"
        index = _read_csv(path, INDEX_COLUMNS + tuple(self.categories))
        if split is not None:
            splits = sorted(set(index["split"]))
            if split not in splits:
                raise choice_error("split", split, splits)
            index = index[index["split"] == split]
        if limit is not None:
            if limit < 1:
                raise NvError(f"limit {limit} must be at least 1")
            index = index.iloc[:limit]
        if len(index) == 0:
            raise NvError(f"{path} lists no images")
        records = []
        images = self.root / "images"
        for number, row in zip(index.index, index.to_dict("records")):
            masks, scalars = {}, {}
            for cat in self.categories:
                tokens = [t.strip() for t in row[cat].split(";") if t.strip()]
                masks[cat] = tuple(t for t in tokens if not _is_number(t))
                scalars[cat] = tuple(int(t) for t in tokens if _is_number(t))
                unknown = [n for n in scalars[cat] if n not in defined]
                if unknown:
                    raise NvError(f"{path}: image {row['image']} has {cat} label {unknown[0]}, "
                                  f"which label.csv does not define")
            for rel in (row["image"], *(m for ms in masks.values() for m in ms)):
                listed_path(images, rel, f"{path} row {number + 2}")  # only files inside images/ are read
            sizes = [_int(row[c], path, c) for c in ("ih", "iw", "sh", "sw")]
            if not all(0 < v <= MAX_SIDE for v in sizes):
                raise NvError(f"{path} row {number + 2}: sizes ih, iw, sh, sw = {sizes} must be in 1..{MAX_SIDE}")
            records.append(_Record(row["image"], *sizes, masks, scalars))
        return records

    def _check_files(self) -> None:
        images = self.root / "images"
        wanted = [r.image for r in self._records] + [m for r in self._records for ms in r.masks.values() for m in ms]
        missing = [p for p in dict.fromkeys(wanted) if not (images / p).is_file()]
        if missing:
            raise NvError(f"{len(missing)} file(s) listed in {self.root / 'index.csv'} are missing, "
                          f"first: {images / missing[0]}")

    def __len__(self) -> int:
        return len(self._records)

    def image(self, i: int) -> torch.Tensor:
        """Image i as float [3, H, W] in [0, 1], resized to `image_size` if one was given."""
        img = read_rgb(self.root / "images" / self._records[i].image)
        if self.image_size is not None:
            img = img.resize((self.image_size[1], self.image_size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(img)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)

    def masks(self, i: int) -> dict[str, torch.Tensor]:
        """Image i's label layers per category: int32 [K, sh, sw] (pixel masks, then image-level labels)."""
        rec = self._records[i]
        out = {}
        for cat in self.categories:
            layers = []
            for rel in rec.masks[cat]:
                path = self.root / "images" / rel
                labels = decode_mask(path)
                if labels.shape != (rec.sh, rec.sw):
                    raise NvError(f"mask {path} is {labels.shape[0]}x{labels.shape[1]}; index.csv says "
                                  f"{rec.sh}x{rec.sw} (sh x sw)")
                if not self._defined[labels].all():
                    bad = int(labels[~self._defined[labels]][0])
                    raise NvError(f"mask {path} holds label {bad}, which label.csv does not define")
                layers.append(labels)
            layers += [np.full((rec.sh, rec.sw), n, np.int32) for n in rec.scalars[cat]]
            stack = np.stack(layers) if layers else np.zeros((0, rec.sh, rec.sw), np.int32)
            out[cat] = torch.from_numpy(stack)
        return out

    def __getitem__(self, i: int) -> ProbeItem:
        return ProbeItem(image=self.image(i), masks=self.masks(i), index=i)

    def images_only(self) -> Dataset:
        """A view yielding only the images (no mask decoding), for passes that need no labels."""
        return _ImageView(self)


class _ImageView(Dataset):
    def __init__(self, probe: BrodenProbe) -> None:
        self.probe = probe

    def __len__(self) -> int:
        return len(self.probe)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.probe.image(i)


def stack_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack same-sized images into [B, 3, H, W], or say that `image_size` is needed."""
    sizes = {tuple(x.shape[-2:]) for x in images}
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise NvError(f"probe images differ in size ({shown}); give an image size to resize them to")
    return torch.stack(list(images))


class ProbeItem(TypedDict):
    """One probe image: [3, H, W], its label layers per category (`BrodenProbe.masks`) and its index."""

    image: torch.Tensor
    masks: dict[str, torch.Tensor]
    index: int


class ProbeBatch(TypedDict):
    """A batch of probe images: stacked [B, 3, H, W], each one's label layers, their indices [B]."""

    images: torch.Tensor
    masks: list[dict[str, torch.Tensor]]
    index: torch.Tensor


def collate_probe(items: Sequence[ProbeItem]) -> ProbeBatch:
    """DataLoader collate: images stacked, masks kept per image (their label sets and sizes vary)."""
    return ProbeBatch(images=stack_images([it["image"] for it in items]), masks=[it["masks"] for it in items],
                      index=torch.tensor([it["index"] for it in items]))


def _per_image(streams: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Per-image inputs (arrays or iterables) by stream name, one dict per image, saying which one ran short."""
    for what, source in streams.items():
        if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
            raise ValueError(f"{what} must be an array or an iterable with one entry per image")
    end = object()
    for i, entry in enumerate(itertools.zip_longest(*streams.values(), fillvalue=end)):
        if any(e is end for e in entry):
            short = [w for w, e in zip(streams, entry) if e is end]
            raise ValueError(f"{', '.join(short)} ended after {i} images; every input needs one entry per image")
        yield dict(zip(streams, entry))


def _nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of [..., h, w] to size, sampling source pixel centres."""
    h, w = mask.shape[-2:]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return mask[..., rows[:, None], cols[None, :]]


def write_broden(
    out_dir: str | os.PathLike,
    images: np.ndarray | Iterable[np.ndarray],
    concepts: Mapping[str, Sequence[str]],
    masks: Mapping[str, np.ndarray | Iterable[np.ndarray]] | None = None,
    image_labels: Mapping[str, Iterable[Iterable[int]]] | None = None,
    split: str | Sequence[str] = "train",
    image_format: str = "png",
    mask_size: tuple[int, int] | None = None,
) -> Path:
    """Write a Broden-layout probe set from arrays; returns `out_dir`.

    images: uint8 [N, H, W, 3] or an iterable of [H, W, 3]. concepts: category -> label names, where
    name j is code j + 1 in that category (0 = unlabelled); a name used in several categories is one
    global label. masks: category -> int codes [N, h, w], or [N, K, h, w] for K layers, or an iterable
    of per-image [h, w] / [K, h, w]; resized (nearest) to `mask_size`, default half the image size
    rounded up (Broden's convention). image_labels: category -> per image, the codes that label the
    whole image. Files are written atomically and index.csv last, so a partial set is never readable.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (out / "index.csv").exists()):
        raise NvError(f"{out} already holds a probe set or is not a directory; choose a new output directory")
    if image_format not in ("png", "jpg"):
        raise choice_error("image format", image_format, ["png", "jpg"])
    masks, image_labels = dict(masks or {}), dict(image_labels or {})
    for cat in list(masks) + list(image_labels):
        if cat not in concepts:
            raise ValueError(f"category '{cat}' has masks or labels but no entry in concepts")
    numbers = _label_numbers(concepts)
    lut = {cat: np.array([0] + [numbers[n] for n in names], np.int64) for cat, names in concepts.items()}
    columns = list(INDEX_COLUMNS) + list(CATEGORIES) + [c for c in concepts if c not in CATEGORIES]
    streams = {"images": images, **{f"masks['{c}']": masks[c] for c in masks},
               **{f"image_labels['{c}']": image_labels[c] for c in image_labels},
               **({} if isinstance(split, str) else {"split": split})}
    stats: Stats = defaultdict(lambda: [0, 0.0])
    rows = []
    for i, entry in enumerate(_per_image(streams)):
        image = np.asarray(entry["images"])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {i} is {image.dtype} {image.shape}; expected uint8 [H, W, 3]")
        ih, iw = image.shape[:2]
        sh, sw = mask_size or (math.ceil(ih / 2), math.ceil(iw / 2))
        stem = f"nv/{i:06d}"
        row = {"image": f"{stem}.{image_format}", "split": entry.get("split", split), "ih": ih, "iw": iw, "sh": sh,
               "sw": sw, **{c: "" for c in columns[len(INDEX_COLUMNS):]}}
        tokens: dict[str, list[str]] = defaultdict(list)
        for cat in masks:
            tokens[cat] += _mask_tokens(out / "images", stem, cat, entry[f"masks['{cat}']"], lut[cat], (sh, sw),
                                        stats, i)
        for cat in image_labels:
            tokens[cat] += _label_tokens(cat, entry[f"image_labels['{cat}']"], lut[cat], stats, i)
        row.update({cat: ";".join(toks) for cat, toks in tokens.items()})
        _save_image(out / "images" / row["image"], image, "PNG" if image_format == "png" else "JPEG")
        rows.append(row)
    if not rows:
        raise NvError("no images to write")
    labels = _write_label_tables(out, concepts, numbers, stats, rows)
    write_csv(out / "index.csv", pd.DataFrame(rows, columns=columns))  # last: a partial set is never readable
    log.info("wrote a Broden probe set of %d images, %d labels to %s", len(rows), len(labels), out)
    return out


def _write_label_tables(out: Path, concepts: Mapping[str, Sequence[str]], numbers: dict[str, int], stats: Stats,
                        rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Write label.csv, each category's c_<category>.csv and category.csv of the index `rows`; the label table."""
    labels = _label_table(numbers, stats, list(concepts))
    write_csv(out / "label.csv", labels)
    categories = []
    for cat in concepts:
        codes = _category_codes(cat, numbers, stats)
        write_csv(out / f"c_{cat}.csv", codes)
        categories.append({"name": cat, "first": int(codes["number"].min()) if len(codes) else 0,
                           "last": int(codes["number"].max()) if len(codes) else 0, "count": len(codes),
                           "frequency": sum(bool(row[cat]) for row in rows)})
    write_csv(out / "category.csv", pd.DataFrame(categories, columns=["name", "first", "last", "count", "frequency"]))
    return labels


def _label_numbers(concepts: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each label name's global number (1, 2, ...), in category then code order; a shared name is one label."""
    numbers: dict[str, int] = {}
    for names in concepts.values():
        for name in names:
            numbers.setdefault(name, len(numbers) + 1)
    if len(numbers) > MAX_LABEL:
        raise NvError(f"{len(numbers)} labels do not fit the mask encoding R + 256*G (at most {MAX_LABEL})")
    return numbers


def _label_table(numbers: dict[str, int], stats: "Stats", categories: list[str]) -> pd.DataFrame:
    """label.csv: every label that occurs, its categories with image counts, frequency and coverage."""
    rows = []
    for name, n in numbers.items():
        per_cat = [(c, stats[c, n]) for c in categories if (c, n) in stats]
        if per_cat:  # unused labels are left out: NetDissect cannot parse an empty category field
            rows.append({"number": n, "name": name, "category": ";".join(f"{c}({int(s[0])})" for c, s in per_cat),
                         "frequency": int(sum(s[0] for _, s in per_cat)),
                         "coverage": _decimal(sum(s[1] for _, s in per_cat)), "syns": name})
    return pd.DataFrame(rows, columns=["number", "name", "category", "frequency", "coverage", "syns"])


def _category_codes(category: str, numbers: dict[str, int], stats: "Stats") -> pd.DataFrame:
    """c_<category>.csv: the category's labels that occur, coded 1, 2, ... in global-number order."""
    name_of = {v: k for k, v in numbers.items()}
    members = sorted(n for c, n in stats if c == category)
    return pd.DataFrame([{"code": k, "number": n, "name": name_of[n], "frequency": int(stats[category, n][0]),
                          "coverage": _decimal(stats[category, n][1])} for k, n in enumerate(members, 1)],
                        columns=["code", "number", "name", "frequency", "coverage"])


Stats = dict[tuple[str, int], list[float]]  # (category, number) -> [images, coverage in whole images]


def _mask_tokens(images: Path, stem: str, cat: str, codes: Any, lut: np.ndarray, size: tuple[int, int],
                 stats: Stats, i: int) -> list[str]:
    """Write image i's non-empty mask layers of one category; their paths relative to images/."""
    layers = np.asarray(codes)
    layers = layers[None] if layers.ndim == 2 else layers
    if layers.ndim != 3 or not np.issubdtype(layers.dtype, np.integer):
        raise ValueError(f"masks['{cat}'] of image {i} is {layers.dtype} {layers.shape}; "
                         "expected integer codes [h, w] or [K, h, w]")
    if layers.min(initial=0) < 0 or layers.max(initial=0) >= len(lut):
        raise ValueError(f"masks['{cat}'] of image {i} holds codes outside 0..{len(lut) - 1}")
    layers = [layer for layer in lut[_nearest(layers, size)] if layer.any()]
    paths = [f"{stem}_{cat}.png" if len(layers) == 1 else f"{stem}_{cat}_{k}.png" for k in range(1, len(layers) + 1)]
    for rel, labels in zip(paths, layers):
        _save_image(images / rel, encode_mask(labels), "PNG")
    for n in np.unique(layers):
        if n:
            stats[cat, int(n)][0] += 1
            stats[cat, int(n)][1] += sum(float((layer == n).mean()) for layer in layers)
    return paths


def _label_tokens(cat: str, codes: Iterable[int], lut: np.ndarray, stats: Stats, i: int) -> list[str]:
    """The index.csv tokens of image i's image-level labels in one category."""
    tokens = []
    for code in dict.fromkeys(int(c) for c in codes):
        if not 0 < code < len(lut):
            raise ValueError(f"image_labels['{cat}'] of image {i} holds code {code}; valid: 1..{len(lut) - 1}")
        stats[cat, int(lut[code])][0] += 1
        stats[cat, int(lut[code])][1] += 1.0
        tokens.append(str(lut[code]))
    return tokens


def _decimal(x: float) -> str:
    """Plain decimal notation: NetDissect's loader reads '0.00005' as a number but '5e-05' as text."""
    return f"{x:.10f}"


def _save_image(path: Path, array: np.ndarray, fmt: str) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt)
