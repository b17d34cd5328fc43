"""Training curves for TensorBoard: per epoch, what metrics.csv records, each optimizer group's learning rate and
the head's statistics, written through `torch.utils.tensorboard` (nv's optional `tensorboard` extra).

metrics.csv stays the record; the event files are a view of it that TensorBoard (and other tools) can read.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NvError

if TYPE_CHECKING:
    import torch

    from .engine import EpochRow

EXTRA = "pip install 'nvcli[tensorboard]'"
# metrics.csv's column -> the scalar's tag (train and validation side by side in one TensorBoard chart)
TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train", "val_acc": "accuracy/val"}


def require() -> None:
    """Refuse (NvError, before anything is written) when the tensorboard package is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:
        raise NvError(f"tensorboard curves need the tensorboard package, which is not installed here; install nv's "
                      f"tensorboard extra ({EXTRA}), or train without them", param="tensorboard") from exc


def head_statistics(weight: "torch.Tensor", init: "torch.Tensor | None") -> dict[str, float]:
    """The head's learned share (‖W − W0‖ / ‖W‖ of docs/head-recipe.md: 1 when all of W is change; left out without
    W0), its units with weight (a non-zero weight for at least one class) and its L1 norm Σ|W|."""
    weight = weight.detach().float().cpu()
    stats = {"head/units_with_weight": float((weight != 0).any(dim=0).sum()), "head/l1": float(weight.abs().sum())}
    norm = float(weight.norm())
    if init is not None and init.shape == weight.shape and norm > 0:
        stats["head/learned_share"] = float((weight - init.float()).norm()) / norm
    return stats


class Curves:
    """One training's event files in `log_dir`: `epoch(...)` adds an epoch's scalars, `close()` ends the file."""

    def __init__(self, log_dir: Path) -> None:
        require()
        from torch.utils.tensorboard import SummaryWriter

        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(log_dir=str(log_dir))
        except OSError as exc:
            raise NvError(f"cannot write tensorboard curves into '{log_dir}': {exc.strerror or exc}",
                          param="log_dir") from exc

    def epoch(self, row: EpochRow, lrs: dict[str, float], head: dict[str, float]) -> None:
        """Write epoch `row.epoch`: metrics.csv's `row`, the learning rate of each named group and `head`'s
        statistics, and flush them, so TensorBoard shows the epoch while the next one trains."""
        step = row.epoch
        scalars = {tag: getattr(row, column) for column, tag in TAGS.items()}
        scalars.update({f"lr/{name}": lr for name, lr in lrs.items()}, **head)
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
