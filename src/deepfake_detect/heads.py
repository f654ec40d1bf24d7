"""Model outputs -> P(fake): the one place that knows how a head's logits become a score.

A registry entry declares what its model returns (:attr:`DetectorEntry.outputs`): the
first element is always the logits, (N, 2) for ``output="softmax"`` (class 1 is "fake") or
(N, 1) for ``output="sigmoid"``; ``("logits", "reconstruction")`` models return a tuple
whose second element is the reconstructed input. Prediction, training, explanations,
robustness sweeps and export all read scores through these functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import OUTPUT_KINDS  # ``DetectorConfig.output`` values, defined with the config

__all__ = ["OUTPUT_KINDS", "logits_of", "p_fake", "fake_log_odds", "output_part", "PFakeModel"]


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model output: the output itself, or the first element of a tuple/list."""
    return output[0] if isinstance(output, (tuple, list)) else output


def output_part(output: Any, outputs: tuple[str, ...], name: str) -> Any:
    """The part ``name`` of a model output declared as ``outputs`` (e.g. ``("logits",
    "reconstruction")``); ``None`` when the model does not return it."""
    if name not in outputs:
        return None
    if len(outputs) == 1:
        return output
    k = outputs.index(name)
    return output[k] if isinstance(output, (tuple, list)) and len(output) > k else None


def p_fake(output: Any, kind: str) -> torch.Tensor:
    """P(fake) in [0, 1], shape (N,), float32, from a model output.

    ``kind="softmax"``: ``softmax(logits, 1)[:, 1]``; ``"sigmoid"``: ``sigmoid(logits[:, 0])``.
    """
    logits = logits_of(output).float()
    logits = logits.reshape(logits.shape[0], -1)
    if kind == "softmax":
        return torch.softmax(logits, dim=1)[:, 1]
    return torch.sigmoid(logits[:, 0])


def fake_log_odds(output: Any, kind: str) -> torch.Tensor:
    """The log-odds of "fake", shape (N,), float32 (what :func:`p_fake` is the sigmoid of).

    Sigmoid heads: the logit. 2-class softmax heads: ``logit[1] - logit[0]``; more classes:
    ``logit[1] - logsumexp(other logits)``.
    """
    logits = logits_of(output).float()
    logits = logits.reshape(logits.shape[0], -1)
    if kind == "softmax":
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        others = torch.cat([logits[:, :1], logits[:, 2:]], dim=1)
        return logits[:, 1] - torch.logsumexp(others, dim=1)
    return logits[:, 0]


class PFakeModel(nn.Module):
    """Wraps a detector's model: (N, 3, H, W) normalised RGB -> P(fake), shape (N,) (for export).

    ``output="softmax"``: ``softmax(logits, 1)[:, 1]``; ``"sigmoid"``: ``sigmoid(logits[:, 0])``.
    A tuple output (``ae-classifier``'s ``(logits, x_hat)``) uses its first element.
    """

    def __init__(self, model: nn.Module, output: str) -> None:
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return p_fake(self.model(x), self.output)
