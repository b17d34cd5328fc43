"""Unit discovery and the NeuroView head: counts, codes, in-place safety, W z + b."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nvcli.errors import NvError
from nvcli.models.archs import build_network, load_network_weights
from nvcli.models.codes import apply_code, reduce_code
from nvcli.models.neuroview import NeuroView, UnitCodes

# Every ReLU call in the feature extractor, computed by hand from the architectures:
# vgg11: 64+128+256+256+512*4 (the paper's 2,752); resnet18: 64 + 2*2*(64+128+256+512);
# densenet121: 121 ReLU calls (stem, 2 per dense layer, 3 transitions, final).
UNIT_COUNTS = {
    "smallcnn": (112, 3), "alexnet": (1152, 5), "vgg11": (2752, 8), "vgg13": (2944, 10), "vgg16": (4224, 13),
    "vgg19": (5504, 16), "vgg11_bn": (2752, 8), "resnet18": (3904, 17), "resnet34": (7616, 33),
    "resnet50": (22720, 49), "densenet121": (41824, 121),
}


@pytest.mark.parametrize("arch", sorted(UNIT_COUNTS))
def test_unit_counts_and_small_inputs(arch: str) -> None:
    units, layers = UNIT_COUNTS[arch]
    model = NeuroView(build_network(arch, 5, 3, 32), 5, input_shape=(3, 32, 32))
    assert model.codes.num_units == units
    assert len(model.layers) == layers
    assert model.head.in_features == units
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()  # autograd would raise if an in-place ReLU clobbered a tensor it saved
    first_conv = next(model.codes.body.parameters())
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0  # the codes carry gradient back


def test_resnet_shared_relu_counted_per_call_with_torchvision_names() -> None:
    model = NeuroView(build_network("resnet18", 3, 3, 32), 3, input_shape=(3, 32, 32))
    names = [layer.node for layer in model.layers]
    assert names[:3] == ["relu", "layer1.0.relu", "layer1.0.relu_1"]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("network", [lambda: build_network("resnet18", 3, 3, 32), lambda: Functional()],
                         ids=["resnet18", "functional"])
def test_unit_layers_are_named_as_torchvision_feature_extraction_names_them(network) -> None:
    """Each layer's `node` is a name torchvision's create_feature_extractor takes, and gives that layer's maps."""
    from torchvision.models.feature_extraction import create_feature_extractor

    model = NeuroView(network(), 2, input_shape=(3, 32, 32)).eval()
    x = torch.rand(2, 3, 32, 32)
    extractor = create_feature_extractor(network(), return_nodes=[layer.node for layer in model.layers]).eval()
    extractor.load_state_dict(model.codes._network.state_dict(), strict=False)
    maps = extractor(x)
    with torch.no_grad():
        pre = model.codes.maps(x)
    for layer, before in zip(model.layers, pre):  # each named node's output is that layer's rectified pre-activation
        assert torch.allclose(maps[layer.node], before.clamp(min=0), atol=1e-5), layer.node


class Functional(nn.Module):
    """A model mixing functional relu, an in-place relu_, a module called twice, and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 2)
        self.fc_act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.act(x - 0.5)  # the same module called a second time
        x = torch.relu_(x * 2 - 1)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.fc_act(x))  # ReLU inside the head: not a unit


def test_functional_inplace_and_repeated_calls_are_units() -> None:
    codes = UnitCodes(Functional(), input_shape=(3, 8, 8))
    assert [layer.channels for layer in codes.layers] == [4, 6, 6, 6]
    assert [layer.node for layer in codes.layers] == ["relu", "act", "act_1", "relu_"]


class SideEffect(nn.Module):
    """An in-place ReLU whose result is discarded: only its effect on `x` matters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        F.relu(x, inplace=True)
        x = torch.relu(self.conv2(x))
        return torch.flatten(x, 1)


def test_side_effect_of_an_inplace_relu_is_kept() -> None:
    torch.manual_seed(0)
    net = SideEffect()
    x = torch.randn(2, 3, 6, 6)
    pre1 = net.conv1(x)
    pre2 = net.conv2(torch.relu(pre1))
    expected = torch.cat([torch.sigmoid(p).flatten(2).max(2).values for p in (pre1, pre2)], dim=1)
    torch.testing.assert_close(UnitCodes(net, input_shape=(3, 6, 6))(x), expected)


def test_inplace_relu_does_not_clobber_pre_activations() -> None:
    # After an in-place ReLU the captured tensor would be >= 0 and a soft code >= 0.5 everywhere.
    torch.manual_seed(0)
    model = NeuroView(build_network("alexnet", 4, 3, 64), 4, input_shape=(3, 64, 64), reduce="mean").eval()
    x = torch.rand(4, 3, 64, 64)
    maps = model.unit_maps(x)
    for layer_maps in maps:
        assert layer_maps.min() < 0
    z = torch.cat([torch.sigmoid(m).mean(dim=(2, 3)) for m in maps], dim=1)
    torch.testing.assert_close(model.features(x), z)  # the codes are computed from those maps
    assert z.min() < 0.5


def test_codes_in_unit_interval_and_logits_equal_w_z_plus_b() -> None:
    torch.manual_seed(0)
    model = NeuroView(build_network("smallcnn", 4, 3, 32), 4, input_shape=(3, 32, 32)).eval()
    x = torch.rand(3, 3, 32, 32)
    z = model.features(x)
    assert z.shape == (3, model.codes.num_units)
    assert z.min() >= 0 and z.max() <= 1
    w, b = model.head.weight, model.head.bias
    by_hand = torch.stack([torch.stack([sum(w[c, u] * z[i, u] for u in range(z.shape[1])) + b[c]
                                        for c in range(4)]) for i in range(3)])
    torch.testing.assert_close(model(x), by_hand, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("code", ["soft", "hard", "raw"])
def test_max_reduction_before_the_code_equals_after(code: str) -> None:
    pre = torch.randn(4, 5, 6, 7, requires_grad=True)
    fast = reduce_code(pre, code, "max")
    slow = apply_code(pre, code).flatten(2).max(dim=2).values
    torch.testing.assert_close(fast, slow)


def test_mean_reduction_and_hard_code_gradient() -> None:
    pre = torch.randn(2, 3, 4, 4, requires_grad=True)
    torch.testing.assert_close(reduce_code(pre, "soft", "mean"), torch.sigmoid(pre).mean(dim=(2, 3)))
    hard = apply_code(pre, "hard")
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    hard.sum().backward()
    s = torch.sigmoid(pre.detach())
    torch.testing.assert_close(pre.grad, s * (1 - s))  # straight-through: the sigmoid's gradient


def test_one_input_channel_for_spectrograms() -> None:
    model = NeuroView(build_network("alexnet", 3, 1, 64), 3, input_shape=(1, 64, 96), mean=[0.0], std=[1.0])
    assert model(torch.rand(2, 1, 64, 96)).shape == (2, 3)


def test_standard_weights_load_and_head_is_skipped(tmp_path) -> None:
    torch.manual_seed(1)
    imagenet_like = build_network("resnet18", 1000, 3, 64)
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet_like.state_dict(), path)
    target = build_network("resnet18", 10, 3, 64)
    skipped = load_network_weights(target, path)
    assert sorted(skipped) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(target.layer4[1].conv2.weight, imagenet_like.layer4[1].conv2.weight)
    grey = build_network("resnet18", 10, 1, 64)
    load_network_weights(grey, path)
    torch.testing.assert_close(grey.conv1.weight, imagenet_like.conv1.weight.mean(dim=1, keepdim=True))


def test_weights_of_another_architecture_are_refused(tmp_path) -> None:
    path = tmp_path / "vgg.pth"
    torch.save(build_network("smallcnn", 10).state_dict(), path)
    with pytest.raises(NvError, match="does not fit|shares no tensor"):
        load_network_weights(build_network("resnet18", 10), path)


def test_untraceable_or_reluless_models_get_clear_errors() -> None:
    class NoRelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.conv(x))

    class Dynamic(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(x) if x.sum() > 0 else x

    with pytest.raises(NvError, match="no ReLU"):
        UnitCodes(NoRelu(), input_shape=(3, 8, 8))
    with pytest.raises(NvError, match="cannot trace"):
        UnitCodes(Dynamic(), input_shape=(3, 8, 8))


def test_every_architecture_name_checked_without_torch_builds_a_network() -> None:
    """models.spec lists the names so that a typo is refused before torch loads; each must build."""
    import torchvision.models

    from nvcli.models import archs
    from nvcli.models.spec import BUILTIN_ARCHS, TORCHVISION

    assert set(archs.BUILTIN) == set(BUILTIN_ARCHS)
    assert all(callable(getattr(torchvision.models, name, None)) for name in TORCHVISION)
