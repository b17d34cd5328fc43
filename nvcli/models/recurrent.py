"""Recurrent sequence models (NeuroView-RNN, Barberan et al. 2022): every hidden state at every time step feeds one
linear classifier; the baseline classifies the last hidden state.

A sample is a sequence stored as [channels, 1, steps] (a one-row image, so the normalisation and the run's
input shape are those of every nv model); steps past a series' end are NaN (the UCR archive's padding). A
spectrogram [1, bands, frames] is a sequence of frames, its bands the features of each step.
Units are (layer, time step, hidden unit), numbered layer-major, then step, then hidden unit (a bidirectional
layer's forward units first, then its backward ones). docs/rnn.md gives the reasons for the code and the masking.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import NvError, choice_error
from .neuroview import FreezableBackbone, Normalize
from .spec import CODES, RECURRENT, TIME_UNITS
from .unit_table import UNIT_COLUMNS as TABLE_COLUMNS
from .units import Layer

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
UNIT_COLUMNS = [c for c in TABLE_COLUMNS if c != "view"]


def hidden_code(h: Tensor, code: str) -> Tensor:
    """A hidden state's code: soft = (h + 1) / 2 (in [0, 1], = sigmoid(2 pre) for a tanh RNN), hard = 1[h > 0]
    with the soft code's gradient (straight-through), raw = h itself (in [-1, 1])."""
    if code == "raw":
        return h
    soft = (h + 1) / 2
    if code == "soft":
        return soft
    return soft + ((h > 0).to(soft.dtype) - soft).detach()


def sequence_input(x: Tensor) -> tuple[Tensor, Tensor]:
    """[B, C, H, T] (NaN after a series' end) -> the sequence [B, T, C x H] with zeros for padding, and the mask
    [B, T]: a series' channels (H = 1), or a spectrogram's bands (C = 1), are the features of each step."""
    if x.dim() != 4:
        raise NvError(f"a recurrent model takes sequences [batch, channels, 1, steps]; got {list(x.shape)}")
    seq = x.flatten(1, 2).transpose(1, 2)
    mask = ~torch.isnan(seq).any(dim=2)
    return torch.nan_to_num(seq, nan=0.0), mask


class Recurrent(nn.Module):
    """Stacked single-layer RNN/GRU/LSTMs that return every layer's hidden states [B, T, D] and the last layer's
    final state [B, D] (D = hidden_size x directions). Padded steps are skipped by packing: their states are 0."""

    def __init__(self, cell: str, in_channels: int, hidden_size: int, layers: int, bidirectional: bool) -> None:
        super().__init__()
        if cell not in CELLS:
            raise choice_error("recurrent cell", cell, RECURRENT)
        directions = 2 if bidirectional else 1
        self.cell, self.width = cell, hidden_size * directions
        self.layers = nn.ModuleList(
            CELLS[cell](in_channels if i == 0 else self.width, hidden_size, batch_first=True,
                        bidirectional=bidirectional) for i in range(layers))

    def forward(self, seq: Tensor, mask: Tensor) -> tuple[list[Tensor], Tensor]:
        lengths = mask.sum(dim=1)
        if (lengths == 0).any():
            raise NvError("a sequence has no value (every step is NaN); remove it from the data")
        # Packing costs time; a batch without padding runs the plain kernels.
        packed = bool((lengths < seq.shape[1]).any())
        states, last, out = [], None, seq
        for layer in self.layers:
            if packed:
                result, final = layer(pack_padded_sequence(out, lengths.cpu(), batch_first=True, enforce_sorted=False))
                out = pad_packed_sequence(result, batch_first=True, total_length=seq.shape[1])[0]
            else:
                out, final = layer(out)
            states.append(out)
            last = final[0] if isinstance(final, tuple) else final  # an LSTM's (h, c)
        # final: [directions, B, H] of the last layer, each direction's state at its own end of the series.
        return states, torch.cat(list(last), dim=1)


class RecurrentNeuroView(FreezableBackbone):
    """NeuroView-RNN: normalise, run the recurrent layers, code every hidden state at every step, one linear head."""

    def __init__(self, cell: str, num_classes: int, *, input_shape: Sequence[int], hidden_size: int = 32,
                 layers: int = 1, bidirectional: bool = False, time_units: str = "all", code: str = "soft",
                 mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,), freeze_backbone: bool = False) -> None:
        super().__init__()
        if code not in CODES:
            raise choice_error("code", code, CODES)
        if time_units not in TIME_UNITS:
            raise choice_error("time units", time_units, TIME_UNITS)
        channels, rows, self.steps = (int(v) for v in input_shape)
        self.code, self.time_units = code, time_units
        self.normalize = Normalize(mean, std)
        self.codes = Recurrent(cell, channels * rows, hidden_size, layers, bidirectional)
        shown = range(layers) if time_units == "all" else [layers - 1]
        width = self.codes.width
        self.layers = [Layer(i, f"{cell}.{index}", self.steps * width, i * self.steps * width, f"{cell}{index + 1}")
                       for i, index in enumerate(shown)]
        self.head = nn.Linear(len(self.layers) * self.steps * width, num_classes)
        self.freeze(freeze_backbone)

    @property
    def width(self) -> int:
        """Hidden units per step and layer (hidden_size x directions)."""
        return self.codes.width

    def units(self) -> pd.DataFrame:
        """The unit table `unit,layer,node,label,step,channel` (step: 0-based time step)."""
        width = self.width
        frames = []
        for layer in self.layers:
            index = np.arange(layer.channels)
            frames.append(pd.DataFrame({"unit": layer.units, "layer": layer.index, "node": layer.node,
                                        "label": layer.label, "step": index // width, "channel": index % width}))
        return pd.concat(frames, ignore_index=True)[UNIT_COLUMNS]

    def features(self, x: Tensor) -> Tensor:
        """The head's input `z` [B, units]: each kept layer's coded hidden states, step-major; 0 at padded steps."""
        seq, mask = sequence_input(self.normalize(x))
        states, _ = self.codes(seq, mask)
        kept = states if self.time_units == "all" else states[-1:]
        keep = mask.unsqueeze(2).to(seq.dtype)
        return torch.cat([(hidden_code(h, self.code) * keep).flatten(1) for h in kept], dim=1)

    def unit_maps(self, x: Tensor) -> list[Tensor]:
        raise NvError("a recurrent model's units are hidden states at time steps, with no spatial map to dissect; "
                      "network dissection applies to image models only")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class RecurrentBaseline(nn.Module):
    """The standard RNN classifier: a linear layer on the last hidden state (each direction's final state)."""

    def __init__(self, cell: str, num_classes: int, *, input_shape: Sequence[int], hidden_size: int = 32,
                 layers: int = 1, bidirectional: bool = False, mean: Sequence[float] = (0.0,),
                 std: Sequence[float] = (1.0,)) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.recurrent = Recurrent(cell, int(input_shape[0]) * int(input_shape[1]), hidden_size, layers, bidirectional)
        self.classifier = nn.Linear(self.recurrent.width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        seq, mask = sequence_input(self.normalize(x))
        return self.classifier(self.recurrent(seq, mask)[1])
