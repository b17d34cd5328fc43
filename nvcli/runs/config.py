"""config.json as a typed value: `RunConfig.from_dict` reads (and upgrades) it, `RunConfig.to_json` writes it.

Importing it loads neither torch nor pandas. Every older format (1, 2) is read and upgraded in memory; what
`to_json` returns is config.json in the current format, key for key as nv has always written it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..data.registry import check_class_name
from ..errors import NvError
from ..models.spec import ModelSpec, WeightsRecord
from ..schema import JsonRecord, nonfinite

if TYPE_CHECKING:
    from ..training.config import TrainConfig

CONFIG_FORMAT = 3
PRECISIONS = ("float32", "bfloat16", "float16")  # what training computes in
DATA_KINDS = ("image", "sound", "views", "sequence")
MAX_UNITS = 1 << 31  # NeuroView units a config may declare (the head's width)
# Added to `train` in format 3, with the values that every run of formats 1 and 2 trained with.
_HEAD_SETTINGS_THEN = (("head_init_scale", 1.0), ("head_lr_scale", 1.0), ("head_weight_decay", None),
                       ("head_l1", 0.0), ("head_warmup", 0))


@dataclass(frozen=True)
class DataSection(JsonRecord):
    """config.json["data"]: the dataset, its classes in label order and what its loader was called with.

    `kind`, `cues` and `info` are None for a converted run (written without data), and then not written.
    """

    name: str | None
    classes: tuple[str, ...]
    kind: str | None = None  # image, sound, views or sequence
    cues: dict[str, str] | None = None  # class -> the mechanism that defines it (built-in data)
    options: dict[str, Any] = field(default_factory=dict)  # what the loader was called with
    info: dict[str, Any] | None = None  # resolved dataset settings (image size, spectrogram parameters ...)
    OMITTED = ("kind", "cues", "info")  # never written for a converted run

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> "DataSection":
        """The data section of config.json `where`, checked: a message names the key at fault."""
        classes = data.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise NvError(f"'{where}' data section needs a 'classes' list of names")
        if len(set(classes)) != len(classes):
            raise NvError(f"'{where}' data section names a class twice")
        for name in classes:
            check_class_name(name, where)
        if "name" not in data or not isinstance(data["name"], (str, type(None))):
            raise NvError(f"'{where}' data section needs a 'name' (a dataset name or null)")
        if not isinstance(data.get("options", {}), dict):
            raise NvError(f"'{where}' data 'options' must be a JSON object")
        if not isinstance(data.get("kind"), (str, type(None))):
            raise NvError(f"'{where}' data 'kind' must be a name (image, sound, views or sequence)")
        for key in ("cues", "info"):
            if not isinstance(data.get(key), (dict, type(None))):
                raise NvError(f"'{where}' data '{key}' must be a JSON object")
        wrong = [c for c, text in (data.get("cues") or {}).items() if not isinstance(text, str)]
        if wrong:
            raise NvError(f"'{where}' data 'cues.{wrong[0]}' is {data['cues'][wrong[0]]!r}; expected a text saying "
                          "what defines the class")
        return cls(name=data["name"], classes=tuple(classes), kind=data.get("kind"), cues=data.get("cues"),
                   options=dict(data.get("options", {})), info=data.get("info"))


@dataclass(frozen=True)
class RunConfig(JsonRecord):
    """A run's config.json: the model, its data, the recipe it trained with (None: converted) and what it ran on."""

    name: str | None
    created: str | None
    model: ModelSpec
    data: DataSection
    train: "TrainConfig | None"  # None for a converted, untrained run (written as {})
    kind: str | None  # neuroview, baseline, multiview-neuroview or multiview-baseline
    units: int | None  # NeuroView units (codes the head reads); None for a baseline
    precision: str | None = None  # what training computes in (float32, bfloat16, float16); training runs only
    versions: dict[str, str] | None = None  # nv and the libraries that shape the numbers, as written
    weights: WeightsRecord | None = None  # the pretrained weights loaded first
    format: int = CONFIG_FORMAT
    OMITTED = ("precision", "versions", "weights")  # written only by the runs they apply to

    def to_json(self) -> dict[str, object]:
        """config.json's content, key for key as nv writes it: the model section as `ModelSpec.to_dict` writes it,
        a converted run's recipe as {}."""
        return {**super().to_json(), "model": self.model.to_dict(), "train": self.train.to_json() if self.train else {}}

    @classmethod
    def from_dict(cls, config: Any, where: str = "config.json") -> "RunConfig":
        """A config.json object (of any format nv reads) checked and upgraded; `where` names the file in errors."""
        from ..training.config import TrainConfig  # torch-free, but a layer above runs

        if not isinstance(config, dict):
            raise NvError(f"'{where}' must hold a JSON object")
        key = nonfinite(config)
        if key is not None:
            raise NvError(f"'{where}': '{key}' is NaN or infinite; nv reads only finite numbers")
        for key in ("model", "data", "train"):
            if not isinstance(config.get(key), dict):
                raise NvError(f"'{where}' has no valid '{key}' section")
        fmt = config.get("format")
        if isinstance(fmt, bool):  # true == 1 in Python, not in JSON
            fmt = repr(fmt).lower()
        if fmt in (1, 2):
            config = _migrate(config)
        elif fmt != CONFIG_FORMAT:
            raise NvError(f"'{where}' has config format {fmt!r}; this nv ({__version__}) reads formats 1 to "
                          f"{CONFIG_FORMAT} (re-create the run with this nv version)")
        data = DataSection.from_dict(config["data"], where)
        spec = ModelSpec.from_dict(config["model"], where)
        if spec.num_classes != len(data.classes):
            raise NvError(f"'{where}' says num_classes={spec.num_classes} but lists {len(data.classes)} classes")
        for key, kinds in (("name", str), ("created", str), ("kind", str), ("units", int), ("precision", str),
                           ("versions", dict), ("weights", dict)):
            value = config.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise NvError(f"'{where}': '{key}' is {value!r}; expected {kinds.__name__} or null")
        _check_model_keys(config, spec, data, where)
        return cls(name=config.get("name"), created=config.get("created"), model=spec, data=data,
                   train=TrainConfig.from_dict(config["train"], where) if config["train"] else None,
                   kind=config.get("kind"), units=config.get("units"), precision=config.get("precision"),
                   versions=config.get("versions"), format=CONFIG_FORMAT,
                   weights=None if config.get("weights") is None else
                   WeightsRecord.from_json(config["weights"], f"'{where}': weights"))


def _check_model_keys(config: dict[str, Any], spec: ModelSpec, data: DataSection, where: str) -> None:
    """`kind`, `units`, `precision`, `versions` and the data's kind agree with the model section and each other."""
    kind, units, precision = config.get("kind"), config.get("units"), config.get("precision")
    if kind is not None and kind != spec.kind:
        raise NvError(f"'{where}': 'kind' is {kind!r} but its model section describes a {spec.kind} model "
                      f"(baseline {str(spec.baseline).lower()}, views {spec.views}); restore it to {spec.kind!r}")
    if units is not None and (spec.baseline or not 1 <= units <= MAX_UNITS):
        valid = "null (a baseline has no NeuroView units)" if spec.baseline else f"an integer in [1, {MAX_UNITS}]"
        raise NvError(f"'{where}': 'units' is {units!r}; expected {valid}")
    if precision is not None and precision not in PRECISIONS:
        raise NvError(f"'{where}': 'precision' is {precision!r}; expected one of {', '.join(PRECISIONS)} or null")
    if data.kind is not None and data.kind not in DATA_KINDS:
        raise NvError(f"'{where}' data 'kind' is {data.kind!r}; expected one of {', '.join(DATA_KINDS)}")
    if data.kind is not None and (data.kind == "views") != spec.multiview:
        raise NvError(f"'{where}' data 'kind' is {data.kind!r} but the model takes {spec.views} views; a multi-view "
                      "model has views > 0 and data of kind 'views'")
    versions = config.get("versions") or {}
    wrong = [k for k, v in versions.items() if not isinstance(v, str)]
    if wrong:
        raise NvError(f"'{where}': 'versions.{wrong[0]}' is {versions[wrong[0]]!r}; expected a version text")


def _migrate(config: dict[str, Any]) -> dict[str, Any]:
    """An older config (format 1: nv 0.1.0; 2: before head settings and shapes world 2) in the current format.

    Settings added since get the values they had then, so the run reads back as it was trained.
    """
    model = config["model"]
    if config["format"] == 1:
        model = {k: v for k, v in model.items() if k != "extra"}
    train = dict(config["train"])
    if train:
        train.setdefault("threads", None)
        for key, value in _HEAD_SETTINGS_THEN:
            train.setdefault(key, value)
    data = config["data"]
    if data.get("name") == "shapes" and isinstance(data.get("options", {}), dict):
        data = {**data, "options": {"world": 1, **data.get("options", {})}}
    return {**config, "model": model, "data": data, "train": train, "format": CONFIG_FORMAT}
