"""The detector registry: names -> architecture factories with their default configs.

Built-in entries are registered when :mod:`deepfake_detect.models` is imported. Any timm
architecture is available as ``"timm:<name>"`` with a one-logit head and timm's
preprocessing, without being listed here.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .config import DetectorConfig
from .errors import DeepfakeDetectError, UnknownDetectorError

__all__ = ["DetectorEntry", "register_detector", "list_detectors", "get_entry", "TIMM_PREFIX"]

TIMM_PREFIX = "timm:"
LOSSES = ("cross_entropy", "bce", "ae")


@dataclass(frozen=True)
class DetectorEntry:
    """One registered architecture.

    Attributes:
        name: registry name.
        factory: ``factory(**model_kwargs) -> nn.Module``; accepts ``pretrained_backbone``
            and ``backbone_weights``.
        config: default config (preprocessing, output kind, threshold).
        head: names of the submodules that stay trainable when the backbone is frozen.
        freeze_backbone: whether fine-tuning freezes everything but ``head`` by default.
        loss: ``"cross_entropy"`` (2-class softmax), ``"bce"`` (one logit) or ``"ae"``
            (``AELoss`` on logit + reconstruction).
        description: one line for tables.
    """

    name: str
    factory: Callable[..., nn.Module]
    config: DetectorConfig
    head: tuple[str, ...] = ()
    freeze_backbone: bool = False
    loss: str = "bce"
    description: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, **model_kwargs: Any) -> nn.Module:
        return self.factory(**{**self.model_kwargs, **model_kwargs})


class _Registry:
    def __init__(self) -> None:
        self._entries: dict[str, DetectorEntry] = {}
        self._builtins_loaded = False

    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            from . import models  # noqa: F401  (registers the built-in entries)

    def add(self, entry: DetectorEntry) -> None:
        self._load_builtins()
        if entry.name.startswith(TIMM_PREFIX):
            raise DeepfakeDetectError(f"detector names may not start with {TIMM_PREFIX!r}: {entry.name!r}")
        if entry.name in self._entries:
            raise DeepfakeDetectError(
                f"a detector named {entry.name!r} is already registered; choose another name"
            )
        self._entries[entry.name] = entry

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def get(self, name: str) -> DetectorEntry:
        self._load_builtins()
        if name in self._entries:
            return self._entries[name]
        if name.startswith(TIMM_PREFIX):
            return _timm_entry(name)
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownDetectorError(
            f"unknown detector {name!r}.{hint} Registered: {', '.join(self.names())}; any timm "
            f"architecture as 'timm:<name>'; a folder written by save_pretrained; or a Hub repo id."
        )

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._entries


_REGISTRY = _Registry()


def register_detector(
    name: str,
    *,
    input_size: int | tuple[int, int] = 224,
    resize: str = "squash",
    crop_pct: float = 1.0,
    interpolation: str = "bilinear",
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    output: str = "sigmoid",
    threshold: float = 0.5,
    head: tuple[str, ...] = (),
    freeze_backbone: bool = False,
    loss: str | None = None,
    description: str = "",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register an architecture factory under ``name`` (a decorator).

    The factory takes keyword arguments (``model_kwargs``) and returns an ``nn.Module``
    whose forward maps (N, 3, H, W) normalised RGB to logits: (N, 2) for
    ``output="softmax"``, (N, 1) for ``output="sigmoid"``; a tuple whose first element is
    the logits is accepted too. It should accept ``pretrained_backbone`` and
    ``backbone_weights`` if it has a pretrained backbone.

    Example::

        @register_detector("my-net", input_size=256, head=("fc",))
        def my_net(**kwargs):
            return MyNet(**kwargs)

    Raises:
        DeepfakeDetectError: ``name`` is already registered.
    """
    cfg_kwargs: dict[str, Any] = {}
    if mean is not None:
        cfg_kwargs["mean"] = mean
    if std is not None:
        cfg_kwargs["std"] = std
    config = DetectorConfig(
        architecture=name, input_size=input_size, resize=resize, crop_pct=crop_pct,
        interpolation=interpolation, output=output, threshold=threshold, **cfg_kwargs,
    )
    loss = loss or ("cross_entropy" if output == "softmax" else "bce")
    if loss not in LOSSES:
        raise DeepfakeDetectError(f"loss={loss!r}: expected one of {LOSSES}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY.add(DetectorEntry(
            name=name, factory=factory, config=config, head=tuple(head), freeze_backbone=freeze_backbone,
            loss=loss, description=description or (factory.__doc__ or "").strip().split("\n")[0],
        ))
        return factory

    return decorator


def list_detectors(pattern: str = "*") -> list[str]:
    """Registered detector names matching a shell-style ``pattern``, sorted.

    Any timm architecture is usable as ``"timm:<name>"`` too; see
    :func:`deepfake_detect.list_timm_models` for those under the parameter limit.
    """
    return [n for n in _REGISTRY.names() if fnmatch.fnmatch(n, pattern)]


def get_entry(name: str) -> DetectorEntry:
    """The registry entry for ``name`` (``"timm:<arch>"`` included).

    Raises:
        UnknownDetectorError: with the closest registered names.
    """
    return _REGISTRY.get(name)


def _timm_entry(name: str) -> DetectorEntry:
    import timm

    arch = name[len(TIMM_PREFIX):]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(TIMM_PREFIX + c) for c in close)}?" if close else ""
        raise UnknownDetectorError(f"timm has no architecture {arch!r}.{hint}")
    pcfg = timm.models.get_pretrained_cfg(arch)
    pcfg = pcfg.to_dict() if pcfg is not None else {}
    size = tuple(pcfg.get("input_size", (3, 224, 224))[1:])
    classifier = pcfg.get("classifier", "fc")
    head = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    interpolation = pcfg.get("interpolation", "bicubic")
    config = DetectorConfig(
        architecture=name, input_size=size, resize="crop", crop_pct=float(pcfg.get("crop_pct", 0.875)),
        interpolation=interpolation if interpolation in ("nearest", "bilinear", "bicubic") else "bicubic",
        mean=tuple(pcfg.get("mean", (0.485, 0.456, 0.406))), std=tuple(pcfg.get("std", (0.229, 0.224, 0.225))),
        output="sigmoid",
    )

    def factory(*, pretrained_backbone: bool = False, backbone_weights: Any = None, **kwargs: Any) -> nn.Module:
        from .models._backbone import create_timm

        kwargs.setdefault("num_classes", 1)
        return create_timm(arch, pretrained=pretrained_backbone, weights=backbone_weights, **kwargs)

    return DetectorEntry(name=name, factory=factory, config=config, head=head, loss="bce",
                         description=f"timm {arch}, one-logit head")
