"""Pretrained weights by name: torchvision's and timm's, found in their libraries' caches (downloaded there by their
code when missing and online), with the preprocessing they were trained with and a record of the file for config.json.

`weights` is a file when such a file exists, else a name: `DEFAULT` or one of the architecture's weights
(torchvision: `IMAGENET1K_V1`, ...; timm: a pretrained tag such as `a1_in1k`). Nothing here runs code from a file:
torch files load with weights_only=True, safetensors files hold tensors only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from ..errors import NvError, choice_error, describe
from ..fs.digest import file_sha256
from .archs import timm_module, timm_name
from .spec import TIMM, TORCHVISION, WeightsRecord

DEFAULT = "DEFAULT"  # the library's recommended weights for the architecture
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")  # a name with one of these is a missing file


@dataclass(frozen=True)
class Pretrained:
    """Weights to load before conversion: the file, what named it, and the preprocessing they were trained with."""

    name: str  # as given: a file path, DEFAULT, or the library's name for the weights
    source: str  # file, torchvision or timm
    path: Path  # the file loaded
    resolved: str | None = None  # the library's full name (ResNet18_Weights.IMAGENET1K_V1, resnet18.a1_in1k)
    url: str | None = None
    mean: tuple[float, ...] | None = None  # the normalisation they were trained with (None: a file's is unknown)
    std: tuple[float, ...] | None = None
    crop_size: int | None = None  # the image side they were trained with
    resize_size: int | None = None  # the side the library resizes to before its centre crop

    def record(self) -> WeightsRecord:
        """What config.json records under `weights`: where the weights came from and the file's SHA-256."""
        return WeightsRecord(source=self.source, name=self.name, resolved=self.resolved, url=self.url,
                             file=str(self.path.resolve()) if self.source == "file" else self.path.name,
                             sha256=file_sha256(self.path), crop_size=self.crop_size, resize_size=self.resize_size)


def resolve(arch: str, weights: str) -> Pretrained:
    """The weights `weights` names for `arch`: an existing file, or torchvision's or timm's weights by name.

    A named file missing from its library's cache is downloaded by the library's code; where that fails
    (offline), the NvError names the URL and the exact path to put the file at.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return Pretrained(name=weights, source="file", path=path)
    if "/" in weights or path.suffix in FILE_SUFFIXES:
        raise NvError(f"weights file '{weights}' does not exist", param="weights")
    if arch not in TORCHVISION and not arch.startswith(TIMM):
        raise NvError(f"weights '{weights}' is not a file, and {arch} has no weights by name (torchvision's "
                      f"{', '.join(TORCHVISION)} and {TIMM}<model> have)", param="weights")
    return _timm(arch, weights) if arch.startswith(TIMM) else _torchvision(arch, weights)


def _torchvision(arch: str, name: str) -> Pretrained:
    """torchvision's weights `name` (DEFAULT, IMAGENET1K_V1, ...) of `arch`, from torch.hub's cache."""
    from torchvision.models import get_model_weights

    members = get_model_weights(arch).__members__
    if name not in members:
        raise choice_error(f"{arch} weights", name, list(members), param="weights")
    weights = members[name]
    path = _hub_file(weights.url)
    if not path.is_file():
        _fetch(f"weights {name} of {arch} ({weights})", weights.url, str(path), lambda: _download(weights.url, path))
    transforms = weights.transforms()
    return Pretrained(name=name, source="torchvision", path=path, resolved=str(weights), url=weights.url,
                      mean=tuple(transforms.mean), std=tuple(transforms.std), crop_size=transforms.crop_size[0],
                      resize_size=transforms.resize_size[0])


def _timm(arch: str, name: str) -> Pretrained:
    """timm's pretrained tag `name` (or DEFAULT) of `arch`, from the Hugging Face hub's or torch.hub's cache."""
    model = timm_name(arch)
    timm = timm_module(arch)
    tags = [full.partition(".")[2] for full in timm.list_pretrained(f"{model}.*")]
    if not tags:
        raise NvError(f"timm has no pretrained weights for {model}; give a weights file", param="weights")
    if name != DEFAULT and name not in tags:
        raise choice_error(f"{arch} weights", name, [DEFAULT, *tags], param="weights")
    cfg = timm.models.get_pretrained_cfg(model if name == DEFAULT else f"{model}.{name}")
    resolved = f"{model}.{cfg.tag}"
    what, path = f"weights {name} of {arch} (timm's {resolved})", _timm_cached(cfg)
    if path is None and not cfg.url and _hf_module() is None:
        raise NvError(f"{what} are on the Hugging Face hub only, and huggingface_hub is not installed (pip install "
                      f"'nvcli[timm]' brings it); or download {_timm_place(cfg)[0]} and give the file as weights",
                      param="weights")
    if path is None:
        path = _fetch(what, *_timm_place(cfg), lambda: _timm_download(cfg))
    crop = int(cfg.input_size[-1])
    return Pretrained(name=name, source="timm", path=path, resolved=resolved,
                      url=cfg.url or f"https://huggingface.co/{cfg.hf_hub_id}", mean=tuple(cfg.mean),
                      std=tuple(cfg.std), crop_size=crop, resize_size=math.floor(crop / cfg.crop_pct))


def _hub_file(url: str) -> Path:
    """Where torch.hub keeps the file of `url`: `<torch.hub.get_dir()>/checkpoints/<file name>` (TORCH_HOME/hub)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _hf_module() -> Any:
    """huggingface_hub, or None where it is not installed (timm then uses torch.hub's cache, as nv does)."""
    try:
        import huggingface_hub
    except ImportError:
        return None
    return huggingface_hub


def _timm_cached(cfg: Any) -> Path | None:
    """A cached file of timm's weights `cfg`: in the Hugging Face cache, else in torch.hub's; None if neither."""
    hub = _hf_module()
    if hub is not None and cfg.hf_hub_id:
        for filename in _hf_filenames(cfg):
            found = hub.try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    path = _hub_file(cfg.url) if cfg.url else None
    return path if path is not None and path.is_file() else None


def _hf_filenames(cfg: Any) -> tuple[str, ...]:
    """The files a timm hub repository may hold the weights in, preferred first."""
    return (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")


def _timm_place(cfg: Any) -> tuple[str, str]:
    """Where to get timm's weights `cfg` and where to put them: torch.hub's cache for a URL, else the hub's."""
    if cfg.url:
        return cfg.url, str(_hub_file(cfg.url))
    filename = _hf_filenames(cfg)[0]
    return (f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{filename}",
            f"the Hugging Face cache (huggingface-cli download {cfg.hf_hub_id} {filename}), or give the file as "
            "weights")


def _timm_download(cfg: Any) -> Path:
    """Download timm's weights as timm does: from the Hugging Face hub where huggingface_hub is installed."""
    hub = _hf_module()
    if hub is not None and cfg.hf_hub_id:
        return Path(hub.hf_hub_download(cfg.hf_hub_id, _hf_filenames(cfg)[0]))
    return _download(cfg.url, _hub_file(cfg.url))


def _download(url: str, path: Path) -> Path:
    """Download `url` to `path` with torch.hub (hash-checked where the file name carries a hash prefix)."""
    import torch.hub

    path.parent.mkdir(parents=True, exist_ok=True)
    found = torch.hub.HASH_REGEX.search(path.name)
    torch.hub.download_url_to_file(url, str(path), found.group(1) if found else None, progress=False)
    return path


def _fetch(what: str, url: str, where: str, download: Callable[[], Path]) -> Path:
    """`download()`, or where it fails (offline) an NvError naming the URL and where to put the file."""
    try:
        return download()
    except NvError:
        raise
    except Exception as exc:  # urllib, OSError, a hash mismatch, the hub's own errors: all "could not download"
        raise NvError(f"{what} are not in the cache and could not be downloaded ({describe(exc)}); download {url} "
                      f"and put it at {where}", param="weights") from exc
