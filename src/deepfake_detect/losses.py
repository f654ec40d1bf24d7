"""Training losses: ``loss(output, labels, inputs) -> scalar``, by name or as a callable.

``labels`` is a float tensor of 0/1 (1 = fake), shape (N,); ``inputs`` is the normalised
(N, 3, H, W) batch the model saw (reconstruction losses compare against it). A registry
entry names its loss (``register_detector(..., loss="bce")``) or passes its own callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DeepfakeDetectError
from .heads import logits_of

__all__ = ["LossFn", "LOSSES", "make_loss", "check_loss", "AELoss"]

LossFn = Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]
#: The built-in losses by name.
LOSSES = ("cross_entropy", "bce", "ae")


class AELoss(nn.Module):
    """``alpha * BCEWithLogits(logits, labels) + beta * MSE(x_hat, x)``.

    Args (forward): ``logits`` (N, 1) or (N,), ``x_hat`` and ``x`` (N, 3, H, W) in the
    normalised input space, ``labels`` (N,) with 1 = fake.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.bce_loss = nn.BCEWithLogitsLoss()
        self.mse_loss = nn.MSELoss()

    def forward(self, logits: torch.Tensor, x_hat: torch.Tensor, labels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        cls_loss = self.bce_loss(logits.reshape(-1), labels.reshape(-1).to(logits.dtype))
        return self.alpha * cls_loss + self.beta * self.mse_loss(x_hat, x)


def _cross_entropy(label_smoothing: float) -> LossFn:
    ce = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return lambda out, y, x: ce(logits_of(out).float(), y.long())


def _bce(label_smoothing: float) -> LossFn:
    def bce(out: Any, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        target = y * (1 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits_of(out).float().reshape(len(y), -1)[:, 0], target)

    return bce


def _ae(label_smoothing: float) -> LossFn:
    ae = AELoss()
    return lambda out, y, x: ae(out[0].float(), out[1].float(), y, x)


_FACTORIES: dict[str, Callable[[float], LossFn]] = {"cross_entropy": _cross_entropy, "bce": _bce, "ae": _ae}


def check_loss(loss: Union[str, LossFn]) -> Union[str, LossFn]:
    """``loss`` if it is a built-in name or a callable.

    Raises:
        DeepfakeDetectError: anything else, listing the names.
    """
    if callable(loss) or loss in _FACTORIES:
        return loss
    raise DeepfakeDetectError(f"loss={loss!r}: expected one of {LOSSES} or a callable loss(output, labels, inputs)")


def make_loss(loss: Union[str, LossFn], label_smoothing: float = 0.0) -> LossFn:
    """The loss function for a name (``"cross_entropy"``, ``"bce"``, ``"ae"``) or a callable
    (returned as it is; ``label_smoothing`` applies to the built-in ones only)."""
    check_loss(loss)
    return loss if callable(loss) else _FACTORIES[loss](label_smoothing)
