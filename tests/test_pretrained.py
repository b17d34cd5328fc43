"""Pretrained weights by name (torchvision's, timm's), offline: a file placed at the library's cache path is loaded,
recorded in config.json with its SHA-256, and its preprocessing is used; a missing one is one line naming the URL
and the path; nothing ever downloads (every download in this file is made to fail, as offline)."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision

from nvcli.models.archs import build_network, load_network_weights
from nvcli.models.spec import ModelChoice
from nvcli.runs.run import load_run
from nvcli.training import recipes
from nvcli.training.recipes import pretrained_image_size

RESNET18 = "resnet18-f37072fd.pth"  # torchvision's file name for ResNet18_Weights.IMAGENET1K_V1 (= DEFAULT)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
SMALL = ["--image-size", "32", "-D", "train_per_class=4", "-D", "val_per_class=2", "--epochs", "1", "--batch-size",
         "8", "--device", "cpu"]


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME, and every download failing as it does without a network; returns torch.hub's dir."""
    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    try:
        import huggingface_hub
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    except ImportError:
        pass
    return Path(torch.hub.get_dir())


def placed(hub: Path, filename: str, network: torch.nn.Module) -> tuple[Path, dict[str, torch.Tensor]]:
    """`network`'s state_dict written where torch.hub keeps `filename`, as a user puts a downloaded file there;
    like torchvision's files, saved before BatchNorm counted batches (no num_batches_tracked)."""
    path = hub / "checkpoints" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    return path, state


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_backbone_is(model_pt: Path, state: dict[str, torch.Tensor], classifier: str) -> None:
    """Every tensor of the standard network but its classifier is in model.pt's traced backbone, equal."""
    loaded = torch.load(model_pt, weights_only=True)
    kept = {k: v for k, v in state.items() if not k.startswith(classifier)}
    for key, value in kept.items():
        assert torch.equal(loaded[f"codes.body.{key}"], value), key


def test_torchvision_weights_by_name_load_from_the_cache_and_are_recorded(nv, tmp_path: Path, offline: Path) -> None:
    torch.manual_seed(1)
    path, state = placed(offline, RESNET18, torchvision.models.resnet18())
    result = nv("convert", "--arch", "resnet18", "--weights", "DEFAULT", "-n", "3", "--image-size", "32",
                "--runs-dir", tmp_path, "--name", "c")
    assert result.code == 0, result.err
    assert_backbone_is(tmp_path / "c" / "model.pt", state, "fc.")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["model"]["weights"] == "DEFAULT"
    assert config["weights"] == {
        "source": "torchvision", "name": "DEFAULT", "resolved": "ResNet18_Weights.IMAGENET1K_V1",
        "url": f"https://download.pytorch.org/models/{RESNET18}", "file": RESNET18, "sha256": sha256(path),
        "crop_size": 224, "resize_size": 256}

    # Reading the run needs no weights file (model.pt holds them) and downloads nothing.
    path.unlink()
    assert load_run(tmp_path / "c").model()(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_training_uses_the_weights_normalisation_and_records_them(nv, tmp_path: Path, offline: Path) -> None:
    path, state = placed(offline, RESNET18, torchvision.models.resnet18())
    result = nv("train", "--arch", "resnet18", "--weights", "IMAGENET1K_V1", "--freeze-backbone", *SMALL,
                "--runs-dir", tmp_path, "--name", "t")
    assert result.code == 0, result.err
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["weights"]["sha256"] == sha256(path) and config["weights"]["name"] == "IMAGENET1K_V1"
    assert config["model"]["mean"] == IMAGENET_MEAN  # the weights', not the shapes data's own 0.3
    assert config["data"]["options"]["image_size"] == 32  # an explicit --image-size wins over the weights' 224
    assert_backbone_is(tmp_path / "t" / "model.pt", state, "fc.")  # frozen: still the file's, BN statistics too

    # A converted run's record and normalisation carry over to the run trained from it.
    assert nv("convert", "--arch", "resnet18", "--weights", "DEFAULT", "-n", "9", "--image-size", "32", "--runs-dir",
              tmp_path, "--name", "c").code == 0
    assert nv("train", "--init", tmp_path / "c", *SMALL, "--runs-dir", tmp_path, "--name", "i").code == 0
    config = json.loads((tmp_path / "i" / "config.json").read_text())
    assert config["weights"]["sha256"] == sha256(path) and config["model"]["mean"] == IMAGENET_MEAN


@pytest.mark.parametrize("flags, size", [([], 224), (["--image-size", "48"], 48), (["-D", "image_size=40"], 40)])
def test_train_takes_the_weights_image_size_unless_given(nv, offline: Path, monkeypatch: pytest.MonkeyPatch,
                                                         flags: list, size: int) -> None:
    placed(offline, RESNET18, torchvision.models.resnet18())
    asked = []
    monkeypatch.setattr(recipes, "train", lambda choice, data, options, *args, **kwargs: asked.append(options))
    assert nv("train", "--arch", "resnet18", "--weights", "DEFAULT", *flags).code == 0
    assert asked[0].image_size == size


def test_the_weights_image_size_is_the_default(offline: Path) -> None:
    placed(offline, RESNET18, torchvision.models.resnet18())
    choice = ModelChoice(arch="resnet18", weights="DEFAULT")
    assert pretrained_image_size(choice, "shapes", {}) == {"image_size": 224}
    assert pretrained_image_size(choice, "shapes", {"image_size": 48}) == {"image_size": 48}
    assert pretrained_image_size(ModelChoice(arch="resnet18"), "shapes", {}) == {}


def test_offline_without_the_file_is_one_line_naming_url_and_path(nv, tmp_path: Path, offline: Path) -> None:
    result = nv("train", "--arch", "resnet18", "--weights", "DEFAULT", *SMALL, "--runs-dir", tmp_path / "runs")
    assert result.code == 2
    line = result.err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"https://download.pytorch.org/models/{RESNET18}" in line
    assert f"put it at {offline / 'checkpoints' / RESNET18}" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("weights, message", [
    ("IMAGENT1K_V1", "unknown resnet50 --weights 'IMAGENT1K_V1'; valid: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT. "
                      "Did you mean 'IMAGENET1K_V1'?"),
    ("missing.pth", "--weights file 'missing.pth' does not exist"),
])
def test_a_name_or_file_that_is_not_there(nv, tmp_path: Path, offline: Path, weights: str, message: str) -> None:
    result = nv("convert", "--arch", "resnet50", "--weights", weights, "-n", "3", "--runs-dir", tmp_path)
    assert result.code == 2 and result.err.strip() == f"error: {message}"


def test_a_network_without_named_weights(nv, tmp_path: Path) -> None:
    result = nv("convert", "--arch", "smallcnn", "--weights", "DEFAULT", "-n", "3", "--runs-dir", tmp_path)
    assert result.code == 2 and "'DEFAULT' is not a file, and smallcnn has no weights by name" in result.err


def test_densenet_files_with_torchvision_old_key_names_load(tmp_path: Path) -> None:
    source = build_network("densenet121", 5)
    old = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in source.state_dict().items()
           if not k.endswith("num_batches_tracked")}  # torchvision's DenseNet file: old names, no batch counts
    assert any("norm.1." in k for k in old)
    torch.save(old, tmp_path / "densenet.pth")
    target = build_network("densenet121", 5)
    load_network_weights(target, tmp_path / "densenet.pth")
    for key, value in source.state_dict().items():
        assert key.endswith("num_batches_tracked") or torch.equal(target.state_dict()[key], value), key


@pytest.mark.skipif(importlib.util.find_spec("safetensors") is None,
                    reason="safetensors is not installed (nvcli[timm] brings it: timm's hub files are safetensors)")
def test_a_safetensors_file_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = build_network("smallcnn", 4)
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    target = build_network("smallcnn", 4)
    load_network_weights(target, tmp_path / "model.safetensors")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_timm_without_timm_names_the_extra(nv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm fails, as where it is not installed
    result = nv("convert", "--arch", "timm/resnet18", "-n", "3", "--runs-dir", tmp_path)
    assert result.code == 2
    assert result.err.strip() == ("error: --arch timm/resnet18 is a timm model and timm is not installed; install "
                                  "the extra: pip install 'nvcli[timm]'")


needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None,
                                reason="timm is not installed (the optional extra: pip install 'nvcli[timm]')")
TIMM_RESNET18_A1 = "resnet18_a1_0-d63eafa0.pth"  # timm's resnet18.a1_in1k release file (its pretrained cfg's url)


@needs_timm
def test_timm_model_by_name_with_a_pretrained_tag(nv, tmp_path: Path, offline: Path) -> None:
    import timm

    missing = nv("convert", "--arch", "timm/resnet18", "--weights", "a1_in1k", "-n", "3", "--runs-dir", tmp_path)
    assert missing.code == 2 and f"put it at {offline / 'checkpoints' / TIMM_RESNET18_A1}" in missing.err
    torch.manual_seed(2)
    path, state = placed(offline, TIMM_RESNET18_A1, timm.create_model("resnet18"))
    result = nv("convert", "--arch", "timm/resnet18", "--weights", "a1_in1k", "-n", "3", "--image-size", "32",
                "--runs-dir", tmp_path, "--name", "t")
    assert result.code == 0, result.err
    assert "total" in result.out and "3904" in result.out  # its ReLUs are units, as torchvision's resnet18's
    assert_backbone_is(tmp_path / "t" / "model.pt", state, "fc.")
    record = json.loads((tmp_path / "t" / "config.json").read_text())["weights"]
    assert record["resolved"] == "resnet18.a1_in1k" and record["sha256"] == sha256(path)
    wrong = nv("convert", "--arch", "timm/resnet18", "--weights", "a1_in1", "-n", "3", "--runs-dir", tmp_path)
    assert wrong.code == 2 and "Did you mean 'a1_in1k'?" in wrong.err


@needs_timm
def test_a_timm_model_without_relu_units_is_refused(nv, tmp_path: Path) -> None:
    result = nv("convert", "--arch", "timm/convnext_tiny", "-n", "3", "--runs-dir", tmp_path)
    assert result.code == 2
    assert "ConvNeXt has no ReLU-type nonlinearity before its classifier head" in result.err


class FakeHub:
    """huggingface_hub's two calls nv makes, offline: a cache holding `files` (repo, filename) -> path."""

    def __init__(self, files: dict[tuple[str, str], Path]) -> None:
        self.files = files

    def try_to_load_from_cache(self, repo_id: str, filename: str) -> str | None:
        found = self.files.get((repo_id, filename))
        return None if found is None else str(found)

    def hf_hub_download(self, repo_id: str, filename: str) -> str:
        raise urllib.error.URLError("[Errno -2] Name or service not known")


@needs_timm
def test_timm_weights_in_the_hugging_face_cache(nv, tmp_path: Path, offline: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    from nvcli.models import pretrained

    torch.manual_seed(3)
    state = timm.create_model("resnet18").state_dict()
    torch.save(state, tmp_path / "pytorch_model.bin")
    monkeypatch.setattr(pretrained, "_hf_module", lambda: FakeHub({
        ("timm/resnet18.tv_in1k", "pytorch_model.bin"): tmp_path / "pytorch_model.bin"}))
    result = nv("convert", "--arch", "timm/resnet18", "--weights", "tv_in1k", "-n", "3", "--image-size", "32",
                "--runs-dir", tmp_path, "--name", "t")
    assert result.code == 0, result.err
    assert_backbone_is(tmp_path / "t" / "model.pt", state, "fc.")
    assert json.loads((tmp_path / "t" / "config.json").read_text())["weights"]["file"] == "pytorch_model.bin"

    # A tag on the hub only, not cached: the URL, and how to fill the cache.
    missing = nv("convert", "--arch", "timm/convnext_tiny", "--weights", "DEFAULT", "-n", "3", "--runs-dir", tmp_path)
    assert missing.code == 2 and ("download https://huggingface.co/timm/convnext_tiny.in12k_ft_in1k/resolve/main/"
                                  "model.safetensors and put it at the Hugging Face cache (huggingface-cli download "
                                  "timm/convnext_tiny.in12k_ft_in1k model.safetensors)") in missing.err
    # Without huggingface_hub, such a tag names the extra.
    monkeypatch.setattr(pretrained, "_hf_module", lambda: None)
    missing = nv("convert", "--arch", "timm/convnext_tiny", "--weights", "DEFAULT", "-n", "3", "--runs-dir", tmp_path)
    assert missing.code == 2 and "huggingface_hub is not installed (pip install 'nvcli[timm]'" in missing.err
