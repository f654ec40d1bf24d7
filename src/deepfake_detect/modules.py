"""Small helpers on ``nn.Module`` shared by training, explanations and robustness sweeps."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

__all__ = ["in_head", "frozen", "param_dtype", "freeze_norms", "freeze_norms_under"]


def in_head(name: str, head: Sequence[str]) -> bool:
    """Whether the parameter or module ``name`` lies under one of the ``head`` module names."""
    return any(name == h or name.startswith(h + ".") for h in head)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` for the duration; the previous state restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def param_dtype(model: nn.Module) -> torch.dtype:
    """The floating-point dtype of the model's first parameter (float32 without one)."""
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float32


def freeze_norms(model: nn.Module, head: Sequence[str]) -> None:
    """BatchNorm layers outside ``head`` use and keep their running statistics (eval mode)."""
    _norms_to_eval(model, lambda name: not in_head(name, head))


def freeze_norms_under(model: nn.Module, names: Sequence[str]) -> None:
    """BatchNorm layers under the module ``names`` use and keep their running statistics."""
    _norms_to_eval(model, lambda name: in_head(name, names))


def _norms_to_eval(model: nn.Module, where: Callable[[str], bool]) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and where(name):
            m.eval()
