"""The parameter-count guard (the challenge allows a single model of at most 200M parameters)."""

from __future__ import annotations

import fnmatch
from typing import Any

import torch

from .errors import ParameterLimitError
from .registry import get_entry

__all__ = ["DEFAULT_MAX_PARAMS", "count_parameters", "check_parameter_limit", "list_timm_models"]

#: The Multi-FFDI challenge's limit: one model of at most 200M parameters.
DEFAULT_MAX_PARAMS = 200_000_000

_BUILD_ONLY = ("pretrained_backbone", "backbone_weights")


def count_parameters(name: str, **model_kwargs: Any) -> int:
    """Parameters of the architecture ``name`` built with ``model_kwargs``.

    The model is built on PyTorch's ``meta`` device: no memory is allocated for weights,
    nothing is downloaded, and a 300M-parameter model is counted in about a second.
    """
    entry = get_entry(name)
    kwargs = {k: v for k, v in model_kwargs.items() if k not in _BUILD_ONLY}
    with torch.device("meta"):
        model = entry.build(**kwargs)
    return sum(p.numel() for p in model.parameters())


def check_parameter_limit(name: str, max_params: int | None = DEFAULT_MAX_PARAMS, **model_kwargs: Any) -> int:
    """Count the parameters of ``name`` and raise if over ``max_params``.

    Returns:
        The parameter count.

    Raises:
        ParameterLimitError: the count is over ``max_params`` (``None`` lifts the limit).
    """
    n = count_parameters(name, **model_kwargs)
    if max_params is not None and n > max_params:
        raise ParameterLimitError(name, n, max_params)
    return n


def list_timm_models(
    pattern: str = "*", *, max_params: int | None = DEFAULT_MAX_PARAMS, pretrained_only: bool = False
) -> list[tuple[str, int]]:
    """timm architectures matching ``pattern`` whose one-logit detector fits ``max_params``.

    Returns:
        ``(timm name, parameter count)`` pairs, largest first: the camp's advice is to take
        the largest model the rules allow. Use the names as ``"timm:<name>"``.
    """
    import timm

    out = []
    for arch in timm.list_models(pattern, pretrained=pretrained_only):
        if not fnmatch.fnmatch(arch, pattern):
            continue
        try:
            n = count_parameters("timm:" + arch)
        except Exception:  # a few timm entries need arguments to build; they are not listed
            continue
        if max_params is None or n <= max_params:
            out.append((arch, n))
    return sorted(out, key=lambda t: (-t[1], t[0]))
