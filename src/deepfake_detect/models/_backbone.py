"""timm models: backbones with local or downloaded ImageNet weights (never hanging offline), and
the registry entry of any timm architecture as ``"timm:<name>"`` (:func:`timm_entry`).

timm is imported when a model or entry is built, not with the package (importing it takes
seconds, and ``deepfake-detect --help`` needs none of it)."""

from __future__ import annotations

import difflib
import os
from typing import Any

from torch import nn

from ..config import DetectorConfig
from ..errors import HubError, UnknownDetectorError, WeightsError
from ..registry import TIMM_PREFIX, DetectorEntry
from ..weights import load_matching_weights, read_state_dict


def create_timm(
    architecture: str,
    *,
    pretrained: bool = False,
    weights: str | os.PathLike[str] | None = None,
    **timm_kwargs: Any,
) -> nn.Module:
    """``timm.create_model(architecture, pretrained=False, **timm_kwargs)``, then ImageNet weights.

    Args:
        pretrained: fetch timm's pretrained weights from the Hugging Face Hub (or its cache).
            Offline with nothing cached this fails within seconds with a
            :class:`~deepfake_detect.errors.HubError` that says how to pass local weights.
        weights: a local ``.safetensors`` or state-dict file in timm's key names; takes
            precedence over ``pretrained``. A classifier of another shape is dropped.
    """
    import timm

    model = timm.create_model(architecture, pretrained=False, **timm_kwargs)
    if weights is None and not pretrained:
        _init_classifier(model)
        return model
    head = _head_names(model)
    source = str(weights) if weights is not None else _fetch_pretrained(architecture)
    left = load_matching_weights(model, read_state_dict(source), source=source, head=head)
    if left:  # the classifier was not in the file (another number of classes)
        _init_classifier(model)
    return model


def _init_classifier(model: nn.Module) -> None:
    """Small weights and zero bias for a fresh linear classifier.

    Some timm families initialise classifiers for 1000 classes (EfficientNet: uniform in
    +-1/sqrt(out_features)); with one output that gives logits in the tens and a first
    epoch spent undoing them. Starting near P(fake) = 0.5 trains faster and more stably.
    """
    get = getattr(model, "get_classifier", None)
    classifier = get() if callable(get) else None
    if isinstance(classifier, nn.Linear):
        nn.init.normal_(classifier.weight, std=0.01)
        if classifier.bias is not None:
            nn.init.zeros_(classifier.bias)


def _head_names(model: nn.Module) -> tuple[str, ...]:
    name = getattr(model, "pretrained_cfg", {}).get("classifier")
    names = (name,) if isinstance(name, str) else tuple(name or ())
    return names + ("head", "fc", "classifier")


def _fetch_pretrained(architecture: str) -> str:
    import timm

    from ..hub import download_file

    cfg = timm.models.get_pretrained_cfg(architecture)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise WeightsError(
            f"timm has no Hub-hosted pretrained weights for {architecture!r}; pass "
            "backbone_weights=PATH to a local .safetensors or state-dict file instead"
        )
    filename = getattr(cfg, "hf_hub_filename", None) or "model.safetensors"
    try:
        return download_file(repo, filename)
    except HubError as e:
        raise HubError(
            f"cannot get ImageNet weights for {architecture!r} from {repo}: {e}. Without "
            "network, pass backbone_weights=PATH (a .safetensors or state-dict file in "
            "timm's key names), or build without pretrained_backbone"
        ) from None


def timm_entry(name: str) -> DetectorEntry:
    """The registry entry of ``"timm:<arch>"``: timm's architecture with a one-logit head (BCE),
    its classifier as the head, and timm's preprocessing (centre crop, its mean and std).

    Raises:
        UnknownDetectorError: timm has no such architecture (with close names).
    """
    import timm

    arch = name[len(TIMM_PREFIX) :]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(TIMM_PREFIX + c) for c in close)}?" if close else ""
        raise UnknownDetectorError(f"timm has no architecture {arch!r}.{hint}")
    found = timm.models.get_pretrained_cfg(arch)
    pcfg: dict[str, Any] = found.to_dict() if found is not None else {}
    size = tuple(pcfg.get("input_size", (3, 224, 224))[1:])
    classifier = pcfg.get("classifier", "fc")
    head = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    interpolation = pcfg.get("interpolation", "bicubic")
    config = DetectorConfig(
        architecture=name,
        input_size=size,
        resize="crop",
        crop_pct=float(pcfg.get("crop_pct", 0.875)),
        interpolation=interpolation if interpolation in ("nearest", "bilinear", "bicubic") else "bicubic",
        mean=tuple(pcfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(pcfg.get("std", (0.229, 0.224, 0.225))),
        output="sigmoid",
    )

    def factory(*, pretrained_backbone: bool = False, backbone_weights: Any = None, **kwargs: Any) -> nn.Module:
        kwargs.setdefault("num_classes", 1)
        return create_timm(arch, pretrained=pretrained_backbone, weights=backbone_weights, **kwargs)

    return DetectorEntry(
        name=name, factory=factory, config=config, head=head, loss="bce", description=f"timm {arch}, one-logit head"
    )
