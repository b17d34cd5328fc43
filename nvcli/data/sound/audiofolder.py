"""`audiofolder`: audio as people store it, in one of three layouts, as cached log-mel spectrograms.

- `folder`: `<data_dir>/{train,val}/<class>/<clip>` (like ImageFolder; nested folders allowed);
- `speechcommands`: `<data_dir>/<class>/<clip>` with `validation_list.txt` and `testing_list.txt` (Speech Commands);
- `esc50`: `<data_dir>/meta/esc50.csv` and `<data_dir>/audio/<filename>`, split by fold (ESC-50).

Clips are WAV, FLAC, OGG or MP3 of any rate, length and channel count, decoded like every sound dataset's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import NvError, choice_error
from ...fs.paths import listed_path, require_dir
from ..registry import DataBundle, select_classes
from .clips import MetadataColumns, fold_splits, load_clips
from .urbansound import UrbanSoundOptions

AUDIO_SUFFIXES = (".flac", ".mp3", ".ogg", ".wav")
LAYOUTS = ("auto", "folder", "speechcommands", "esc50")
DURATIONS = {"folder": 4.0, "speechcommands": 1.0, "esc50": 5.0}  # seconds: the clip length of each layout's sets
ESC50_CSV = Path("meta") / "esc50.csv"
ESC50_COLUMNS = MetadataColumns("filename", "fold", "target", "category",
                                ("filename", "fold", "target", "category", "esc10", "src_file", "take"))
SPEECH_LISTS = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
Splits = dict[str, tuple[list[Path], list[int]]]  # split -> (clip paths, labels)
SPEECH_NOISE = "_background_noise_"  # Speech Commands' long noise recordings: material for augmentation, not a class
EXPECTED = {
    "folder": "train/<class>/<clip> and val/<class>/<clip>",
    "speechcommands": "<class>/<clip> folders beside validation_list.txt and testing_list.txt",
    "esc50": f"{ESC50_CSV.as_posix()} and audio/<filename>",
}


def detect_layout(root: Path) -> str:
    """The layout of the audio tree `root`: esc50, speechcommands or folder, by the files that define each."""
    if (root / ESC50_CSV).is_file():
        return "esc50"
    if any((root / name).is_file() for name in SPEECH_LISTS.values()):
        return "speechcommands"
    if (root / "train").is_dir() and (root / "val").is_dir():
        return "folder"
    expected = "; ".join(f"{layout}: {text}" for layout, text in EXPECTED.items())
    raise NvError(f"cannot tell the layout of audio folder {root}; expected one of {expected} (or pass layout)",
                  param="layout")


def _data_dir(data_dir: str | None) -> Path:
    if data_dir is None:
        raise NvError("dataset 'audiofolder' needs data_dir: a directory of audio clips in one of the layouts "
                      f"{', '.join(LAYOUTS[1:])}", param="data_dir")
    return require_dir(Path(data_dir).expanduser(), "audio data directory")


@dataclass(frozen=True)
class AudioFolderOptions(UrbanSoundOptions):
    """Settings of an audio tree: its layout (auto: detected from its files, then recorded), the split, spectrograms.

    `duration` defaults to the layout's clip length; `val_fold` (esc50: default the last fold) and `val_list`
    (speechcommands: which list validates, default validation) apply to one layout each.
    """

    layout: str = "auto"
    val_fold: int | None = None
    val_list: str | None = None
    duration: float | None = None
    sample_rate: int = 16000
    hop_length: int = 256

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise choice_error("layout", self.layout, LAYOUTS, param="layout")
        if self.val_list is not None and self.val_list not in SPEECH_LISTS:
            raise choice_error("val_list", self.val_list, list(SPEECH_LISTS), param="val_list")
        # The layout found is what config.json records, so a run reads its data back in the same layout.
        if self.layout == "auto" and self.data_dir is not None:
            object.__setattr__(self, "layout", detect_layout(_data_dir(self.data_dir)))
        if self.duration is None:
            object.__setattr__(self, "duration", DURATIONS.get(self.layout, DURATIONS["folder"]))
        for name, layout in (("val_fold", "esc50"), ("val_list", "speechcommands")):
            if getattr(self, name) is not None and self.layout not in ("auto", layout):
                raise NvError(f"{name}={getattr(self, name)} applies to the {layout} layout only; this audio folder's "
                              f"layout is {self.layout}", param=name)
        super().__post_init__()


def _class_folders(folder: Path) -> list[str]:
    """The sorted names of the class folders in `folder` (hidden folders and Speech Commands' noise excluded)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name != SPEECH_NOISE)


def _clips(folder: Path, name: str) -> list[Path]:
    """The audio files below class folder `folder` (any depth), sorted; an NvError when it has none."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()) \
        if folder.is_dir() else []
    if not files:
        raise NvError(f"class '{name}' has no clips in '{folder}' (expected files ending in "
                      f"{', '.join(AUDIO_SUFFIXES)})")
    return files


def _columns(clips: list[tuple[Path, int]]) -> tuple[list[Path], list[int]]:
    return [path for path, _ in clips], [label for _, label in clips]


def _listed(path: Path, root: Path, classes: list[str]) -> set[Path]:
    """The clips a Speech Commands list file names (`<class>/<clip>` per line, relative to `root`)."""
    if not path.is_file():
        return set()
    found = set()
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        clip = listed_path(root, line.strip(), f"{path} line {number}")
        parts = clip.relative_to(root).parts
        if len(parts) < 2 or parts[0] not in classes:
            raise NvError(f"{path} line {number} names {line.strip()!r}, which is not in a class folder of {root}; "
                          "each line must be <class>/<clip>")
        found.add(clip)
    return found


def _folder(root: Path, options: AudioFolderOptions) -> tuple[list[str], Splits, dict[str, Any]]:
    train_dir = require_dir(root / "train", "training split")
    val_dir = require_dir(root / "val", "validation split")
    available = _class_folders(train_dir)
    if not available:
        raise NvError(f"'{train_dir}' has no class subfolders (expected train/<class>/<clip>)")
    classes = select_classes(available, options.classes, str(train_dir))
    splits = {}
    for split, folder in (("train", train_dir), ("val", val_dir)):
        splits[split] = _columns([(path, label) for label, name in enumerate(classes)
                                  for path in _clips(folder / name, name)])
    return classes, splits, {}


def _speechcommands(root: Path, options: AudioFolderOptions) -> tuple[list[str], Splits, dict[str, Any]]:
    available = _class_folders(root)
    if not available:
        raise NvError(f"'{root}' has no class folders (expected {EXPECTED['speechcommands']})")
    val_list = options.val_list or "validation"
    lists = {key: _listed(root / name, root, available) for key, name in SPEECH_LISTS.items()}
    if not (root / SPEECH_LISTS[val_list]).is_file():
        raise NvError(f"{root / SPEECH_LISTS[val_list]} not found; the speechcommands layout validates on the clips it "
                      "lists", param="val_list")
    classes = select_classes(available, options.classes, str(root))
    label_of = {name: label for label, name in enumerate(classes)}
    # Clips of the other list are the held-out test (or validation) set: in neither split.
    held_out = set().union(*lists.values())
    train = [(path, label_of[name]) for name in classes for path in _clips(root / name, name) if path not in held_out]
    val = sorted((path, label_of[path.relative_to(root).parts[0]]) for path in lists[val_list]
                 if path.relative_to(root).parts[0] in label_of)
    return classes, {"train": _columns(train), "val": _columns(val)}, {"val_list": val_list}


def _esc50(root: Path, options: AudioFolderOptions) -> tuple[list[str], Splits, dict[str, Any]]:
    return fold_splits(root, root / ESC50_CSV, ESC50_COLUMNS, f"the ESC-50 layout: {EXPECTED['esc50']}",
                       lambda fold: root / "audio", options.val_fold, options.classes)


READERS = {"folder": _folder, "speechcommands": _speechcommands, "esc50": _esc50}


def load_audiofolder(options: AudioFolderOptions) -> DataBundle:
    """Load an audio tree in its layout (folder, speechcommands or esc50) as cached log-mel spectrograms."""
    root = _data_dir(options.data_dir)
    classes, splits, info = READERS[options.layout](root, options)
    return load_clips("audiofolder", root, options, classes, splits, {"layout": options.layout, **info})
