"""A unit's code from its pre-activation (soft, hard or raw), reduced to one number per unit (max or mean)."""
from __future__ import annotations

import torch
from torch import Tensor


def apply_code(pre: Tensor, code: str) -> Tensor:
    """A unit's code from its pre-activation: soft = sigmoid, hard = step (sigmoid gradient), raw = ReLU."""
    if code == "soft":
        return torch.sigmoid(pre)
    if code == "hard":
        soft = torch.sigmoid(pre)
        return soft + ((pre > 0).to(soft.dtype) - soft).detach()
    return torch.relu(pre)


def reduce_code(pre: Tensor, code: str, reduce: str) -> Tensor:
    """One number per unit: the code of a [B, C, ...] pre-activation reduced over all non-channel axes."""
    flat = pre.flatten(2) if pre.dim() > 2 else pre.unsqueeze(-1)
    if reduce == "max":
        # Every code is monotonic, so max(code(x)) == code(max(x)): reduce the map first and apply the
        # code to [B, C] only. max(dim) saves indices, not the map, for backward.
        return apply_code(flat.max(dim=2).values, code)
    # sum / n rather than mean: sum's backward is a broadcast view, mean's materialises a full map.
    return apply_code(flat, code).sum(dim=2) / flat.shape[2]
