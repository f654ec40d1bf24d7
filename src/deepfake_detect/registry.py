"""The detector registry: names -> architecture factories with their default configs, and
their named weights.

Two axes, as in timm's ``pretrained_cfg`` tags and torchvision's weights enums:

- an **architecture** (``"efficientnet-lite0"``): a factory, a default
  :class:`~deepfake_detect.config.DetectorConfig`, the head, the loss and the outputs;
  ``load_detector("efficientnet-lite0")`` builds it with fresh weights;
- **weights** of an architecture, named by a tag (``"efficientnet-lite0.dfdc_ffhq_sbi"``):
  a shipped folder or a Hub repo, with its licence, training data and metrics (read from the
  weights' own config); ``load_detector("efficientnet-lite0.dfdc_ffhq_sbi")`` loads them and
  ``load_detector()`` loads the weights marked default.

Built-in entries register themselves here when :mod:`deepfake_detect.models` is imported, as
timm's models do; the package's ``__init__`` imports it, and Python runs that before any of the
package's modules, so they are always there. This module imports no model. Any timm
architecture is available as ``"timm:<name>"`` with a one-logit head and timm's preprocessing,
without being listed here: :mod:`deepfake_detect.models` registers a builder for that prefix
(:func:`register_prefix`).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from torch import nn

from .config import PREPROCESSING_FIELDS, DetectorConfig
from .errors import ConfigError, DeepfakeDetectError, UnknownDetectorError
from .formats import CONFIG_NAME, HUB_PREFIX
from .losses import LossFn, check_loss

__all__ = [
    "DetectorEntry",
    "WeightsEntry",
    "register_detector",
    "register_weights",
    "list_detectors",
    "list_weights",
    "get_entry",
    "get_weights",
    "default_weights",
    "register_prefix",
    "TIMM_PREFIX",
    "OUTPUTS",
]

TIMM_PREFIX = "timm:"
#: What a model may return, in order: its logits, then optionally its reconstruction of the input.
OUTPUTS = ("logits", "reconstruction")


@dataclass(frozen=True)
class DetectorEntry:
    """One registered architecture.

    Attributes:
        name: registry name.
        factory: ``factory(**model_kwargs) -> nn.Module``; accepts ``pretrained_backbone``
            and ``backbone_weights`` if it has a pretrained backbone.
        config: default config (preprocessing, output kind, threshold).
        head: names of the submodules that stay trainable when the backbone is frozen.
        freeze_backbone: whether fine-tuning freezes everything but ``head`` by default.
        loss: ``"cross_entropy"`` (2-class softmax), ``"bce"`` (one logit), ``"ae"``
            (``AELoss`` on logit + reconstruction), or a callable
            ``loss(output, labels, inputs) -> scalar`` (see :mod:`deepfake_detect.losses`).
        description: one line for tables.
        outputs: what the model's forward returns: ``("logits",)``, or
            ``("logits", "reconstruction")`` for a tuple ``(logits, x_hat)``.
    """

    name: str
    factory: Callable[..., nn.Module]
    config: DetectorConfig
    head: tuple[str, ...] = ()
    freeze_backbone: bool = False
    loss: Union[str, LossFn] = "bce"
    description: str = ""
    outputs: tuple[str, ...] = ("logits",)

    def build(self, **model_kwargs: Any) -> nn.Module:
        """The architecture with fresh weights.

        Raises:
            ConfigError: a keyword argument the architecture does not take.
        """
        try:
            return self.factory(**model_kwargs)
        except TypeError as e:
            if "keyword argument" not in str(e):
                raise
            raise ConfigError(
                f"{self.name}: model keyword arguments {sorted(model_kwargs)} do not fit its factory ({e})"
            ) from None


@dataclass(frozen=True)
class WeightsEntry:
    """Named weights of a registered architecture: ``load_detector(f"{architecture}.{tag}")``.

    Attributes:
        architecture: the registry name they fit.
        tag: their name (``"dfdc_ffhq_sbi"``).
        source: a folder written by ``save_pretrained`` (shipped inside the package) or a Hub
            repo id ``"hf-hub:org/name"`` (optionally ``@revision``).
        license: the licence of the weights (they inherit their training data's terms).
        description: one line: what they were trained on and how.
        default: whether ``load_detector()`` loads them (at most one entry).
    """

    architecture: str
    tag: str
    source: str
    license: str = ""
    description: str = ""
    default: bool = False

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}"

    @property
    def is_local(self) -> bool:
        return not self.source.startswith(HUB_PREFIX)

    def metadata(self) -> dict[str, Any]:
        """The ``metadata`` of the weights' own ``config.json`` (training data, metrics per
        dataset, recipe), for shipped weights; ``{}`` for Hub weights (not downloaded here)."""
        if not self.is_local:
            return {}
        try:
            data = json.loads((Path(self.source) / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        meta = data.get("metadata") if isinstance(data, dict) else None
        return dict(meta) if isinstance(meta, dict) else {}

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics as recorded with the weights (``metadata["metrics"]``), per dataset prefix."""
        return dict(self.metadata().get("metrics") or {})

    @property
    def recipe(self) -> dict[str, Any]:
        """How the weights were trained (``metadata["recipe"]``)."""
        return dict(self.metadata().get("recipe") or {})


class _Registry:
    def __init__(self) -> None:
        self._entries: dict[str, DetectorEntry] = {}
        self._weights: dict[str, WeightsEntry] = {}
        self._prefixes: dict[str, Callable[[str], DetectorEntry]] = {}

    def add(self, entry: DetectorEntry) -> None:
        prefix = next((p for p in (TIMM_PREFIX, *self._prefixes) if entry.name.startswith(p)), None)
        if prefix is not None:
            raise DeepfakeDetectError(f"detector names may not start with {prefix!r}: {entry.name!r}")
        if entry.name in self._entries:
            raise DeepfakeDetectError(f"a detector named {entry.name!r} is already registered; choose another name")
        self._entries[entry.name] = entry

    def add_prefix(self, prefix: str, entry_for: Callable[[str], DetectorEntry]) -> None:
        if not prefix.endswith(":"):
            raise DeepfakeDetectError(f"name prefix {prefix!r}: expected a name ending in ':'")
        self._prefixes[prefix] = entry_for

    def add_weights(self, w: WeightsEntry) -> None:
        if w.architecture not in self._entries:
            raise DeepfakeDetectError(f"weights {w.name!r}: register the architecture {w.architecture!r} first")
        if not w.tag or "." in w.tag or "/" in w.tag:
            raise DeepfakeDetectError(f"weights tag {w.tag!r}: expected a non-empty name without '.' or '/'")
        if w.name in self._weights:
            raise DeepfakeDetectError(f"weights named {w.name!r} are already registered; choose another tag")
        if w.default and any(o.default for o in self._weights.values()):
            raise DeepfakeDetectError(f"weights {w.name!r}: another entry is already the default")
        self._weights[w.name] = w

    def weights(self) -> dict[str, WeightsEntry]:
        return dict(self._weights)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> DetectorEntry:
        if name in self._entries:
            return self._entries[name]
        prefix = next((p for p in self._prefixes if name.startswith(p)), None)
        if prefix is not None:
            return self._prefixes[prefix](name)
        if name in self._weights:
            return self._entries[self._weights[name].architecture]
        close = difflib.get_close_matches(name, list(self._entries) + list(self._weights), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownDetectorError(
            f"unknown detector {name!r}.{hint} Registered: {', '.join(self.names())}; any timm "
            f"architecture as 'timm:<name>'; a folder written by save_pretrained; or a Hub repo id."
        )

    def __contains__(self, name: str) -> bool:
        return name in self._entries


_REGISTRY = _Registry()


_CONFIG_FIELDS = (*PREPROCESSING_FIELDS, "output", "threshold")


def register_detector(
    name: str,
    factory: Callable[..., nn.Module] | None = None,
    *,
    config: DetectorConfig | None = None,
    head: tuple[str, ...] = (),
    freeze_backbone: bool = False,
    loss: Union[str, LossFn, None] = None,
    outputs: tuple[str, ...] | None = None,
    description: str = "",
    **config_fields: Any,
) -> Any:
    """Register an architecture factory under ``name``.

    The factory takes keyword arguments (``model_kwargs``) and returns an ``nn.Module``
    whose forward maps (N, 3, H, W) normalised RGB to logits: (N, 2) for
    ``output="softmax"``, (N, 1) for ``output="sigmoid"``; or a tuple as declared by
    ``outputs``. It should accept ``pretrained_backbone`` and ``backbone_weights`` if it
    has a pretrained backbone.

    Args:
        name: the registry name (not starting with ``"timm:"``, no ``"."``).
        factory: the factory; without it, ``register_detector`` is a decorator.
        config: the default :class:`DetectorConfig` (preprocessing, output, threshold);
            its ``architecture`` is set to ``name``. Default: ``DetectorConfig(name)``.
        head: submodules trained when the backbone is frozen.
        freeze_backbone: freeze everything but ``head`` when fine-tuning by default.
        loss: ``"cross_entropy"``, ``"bce"``, ``"ae"`` or a callable
            ``loss(output, labels, inputs) -> scalar``; default: cross-entropy for softmax
            heads, BCE-with-logits for one logit, ``"ae"`` for reconstruction models.
        outputs: what the forward returns; default ``("logits", "reconstruction")`` with
            ``loss="ae"``, else ``("logits",)``.
        description: one line for tables (default: the factory's docstring's first line).
        **config_fields: deprecated: ``input_size=``, ``resize=``, ... as
            :class:`DetectorConfig` fields; pass ``config=DetectorConfig(...)`` instead.

    Example::

        register_detector("my-net", MyNet, config=DetectorConfig("my-net", input_size=256), head=("fc",))

    Returns:
        ``factory`` (or, without it, a decorator that registers and returns its argument).

    Raises:
        DeepfakeDetectError: ``name`` is already registered, an unknown loss or output, or
            an unknown keyword.
    """
    config = _entry_config(name, config, config_fields)
    loss = check_loss(loss if loss is not None else _default_loss(config.output, outputs))
    if outputs is None:
        outputs = OUTPUTS if loss == "ae" else ("logits",)
    outputs = tuple(outputs)
    if not outputs or outputs[0] != "logits" or any(o not in OUTPUTS for o in outputs):
        raise DeepfakeDetectError(f"outputs={outputs!r}: expected 'logits' first, then any of {OUTPUTS[1:]}")
    if "." in name:
        raise DeepfakeDetectError(f"detector names may not contain '.' (it separates a weights tag): {name!r}")

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY.add(
            DetectorEntry(
                name=name,
                factory=fn,
                config=config,
                head=tuple(head),
                freeze_backbone=freeze_backbone,
                loss=loss,
                description=description or (fn.__doc__ or "").strip().split("\n")[0],
                outputs=outputs,
            )
        )
        return fn

    return register(factory) if factory is not None else register


def _default_loss(output: str, outputs: tuple[str, ...] | None) -> str:
    if outputs is not None and "reconstruction" in outputs:
        return "ae"
    return "cross_entropy" if output == "softmax" else "bce"


def _entry_config(name: str, config: DetectorConfig | None, fields: dict[str, Any]) -> DetectorConfig:
    unknown = sorted(set(fields) - set(_CONFIG_FIELDS))
    if unknown:
        raise DeepfakeDetectError(f"register_detector got unknown keyword(s) {unknown}")
    if fields:
        warnings.warn(
            f"register_detector({name!r}, {', '.join(f'{k}=' for k in fields)}...) is deprecated; "
            "pass config=DetectorConfig(...) instead",
            DeprecationWarning,
            stacklevel=3,
        )
    base = config if config is not None else DetectorConfig(architecture=name)
    return dataclasses.replace(base, architecture=name, **{k: v for k, v in fields.items() if v is not None})


def register_weights(
    architecture: str,
    tag: str,
    source: str | os.PathLike[str],
    *,
    license: str = "",
    description: str = "",
    default: bool = False,
) -> WeightsEntry:
    """Name weights of a registered architecture: afterwards
    ``load_detector(f"{architecture}.{tag}")`` loads them.

    Args:
        source: a folder written by ``save_pretrained`` or ``"hf-hub:org/name"``
            (``"hf-hub:org/name@revision"`` pins a revision).
        license: shown by ``deepfake-detect models`` and :func:`list_weights`.
        description: shown by ``deepfake-detect models`` and :func:`list_weights`.
        default: ``load_detector()`` loads these weights (at most one entry).

    Raises:
        DeepfakeDetectError: an unknown architecture, a duplicate name, a second default.
    """
    src = os.fspath(source)
    entry = WeightsEntry(architecture, tag, src, license=license, description=description, default=default)
    _REGISTRY.add_weights(entry)
    return entry


def list_weights(pattern: str = "*") -> list[str]:
    """Names ``"<architecture>.<tag>"`` of the registered weights matching ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY.weights() if fnmatch.fnmatch(n, pattern))


def get_weights(name: str) -> WeightsEntry | None:
    """The :class:`WeightsEntry` named ``"<architecture>.<tag>"``, or None."""
    return _REGISTRY.weights().get(name)


def default_weights() -> WeightsEntry:
    """The weights ``load_detector()`` loads.

    Raises:
        UnknownDetectorError: no registered weights are marked default.
    """
    for w in _REGISTRY.weights().values():
        if w.default:
            return w
    raise UnknownDetectorError("no registered weights are marked default (register_weights(..., default=True))")


def list_detectors(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered architecture names matching a shell-style ``pattern``, sorted; with
    ``pretrained=True`` the named weights (``"<architecture>.<tag>"``) instead.

    Any timm architecture is usable as ``"timm:<name>"`` too; see
    :func:`deepfake_detect.list_timm_models` for those under the parameter limit.
    """
    if pretrained:
        return list_weights(pattern)
    return [n for n in _REGISTRY.names() if fnmatch.fnmatch(n, pattern)]


def get_entry(name: str) -> DetectorEntry:
    """The registry entry for ``name`` (``"timm:<arch>"`` included).

    Raises:
        UnknownDetectorError: with the closest registered names.
    """
    return _REGISTRY.get(name)


def register_prefix(prefix: str, entry_for: Callable[[str], DetectorEntry]) -> None:
    """Resolve every name that starts with ``prefix`` (e.g. ``"timm:"``) and is not registered
    itself with ``entry_for(name)``, a :class:`DetectorEntry` built when asked for. A family of
    architectures too large to list (every timm model) is registered this way:
    :mod:`deepfake_detect.models` registers :data:`TIMM_PREFIX`. Registered names may not start
    with a registered prefix.

    Raises:
        DeepfakeDetectError: a prefix that does not end in ``":"``.
    """
    _REGISTRY.add_prefix(prefix, entry_for)
