"""Colour channels and removing one: what `perturb` measures and its figure shows (a leaf both import)."""
from __future__ import annotations

from torch import Tensor

from ..errors import choice_error

CHANNELS = {"red": 0, "green": 1, "blue": 2}
NONE = "none"  # the unperturbed condition
CONDITIONS = (NONE, *CHANNELS)


def channels_for(choice: str) -> list[str]:
    """The channels named by `channel`: one of red, green, blue, or all three."""
    if choice == "all":
        return list(CHANNELS)
    if choice not in CHANNELS:
        raise choice_error("channel", choice, [*CHANNELS, "all"])
    return [choice]


def zero_channel(x: Tensor, channel: str) -> Tensor:
    """A copy of pixel-space images [..., 3, H, W] with `channel` set to zero."""
    out = x.clone()
    out[..., CHANNELS[channel], :, :] = 0
    return out
