"""An ensemble detector: several registered architectures averaged into one model.

The members share one preprocessing (the ensemble's config: input size, resize, mean, std),
so one image tensor feeds them all and the whole ensemble is one ``nn.Module``: it predicts,
exports to ONNX, fine-tunes, saves and counts parameters like any other detector. Its
output is one logit: the (optionally weighted) mean of the members' log-odds of "fake".
Averaging log-odds rather than probabilities keeps a confident member confident, and for
members that agree it equals each of them.

Build one from trained detectors with :func:`ensemble_of`; its weights are the members'
weights under ``members.<i>.``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import torch
from torch import nn

from ..errors import ConfigError
from ..guard import check_parameter_limit
from ..heads import fake_log_odds
from ..protocols import EnsembleMember
from ..registry import get_entry

__all__ = ["Ensemble", "ensemble_of"]

MemberT = TypeVar("MemberT", bound=EnsembleMember)

#: ``load_detector("ensemble")`` without members: two fresh EfficientNet-Lite0 (the default's architecture).
DEFAULT_MEMBERS = ({"architecture": "efficientnet-lite0"}, {"architecture": "efficientnet-lite0"})


class Ensemble(nn.Module):
    """Members' fake log-odds averaged: (N, 3, H, W) normalised RGB -> (N, 1) logits.

    Args:
        members: one mapping per member, ``{"architecture": registry name, "model_kwargs":
            {...}, "output": "sigmoid" | "softmax"}`` (``output`` defaults to the
            architecture's own). Default: :data:`DEFAULT_MEMBERS`.
        weights: one non-negative weight per member (normalised to sum 1); default equal.
        pretrained_backbone, backbone_weights: passed to every member's factory (when set),
            as ``load_detector`` passes them to any architecture's.
    """

    def __init__(
        self,
        members: Sequence[Mapping[str, Any]] = DEFAULT_MEMBERS,
        weights: Sequence[float] | None = None,
        *,
        pretrained_backbone: bool = False,
        backbone_weights: Any = None,
    ) -> None:
        super().__init__()
        if not members:
            raise ConfigError(
                "an ensemble needs at least one member: build one with "
                "deepfake_detect.models.ensemble_of([detector, ...]) or pass members=[{'architecture': ...}]"
            )
        modules, kinds = [], []
        for i, spec in enumerate(members):
            if not isinstance(spec, Mapping) or "architecture" not in spec:
                raise ConfigError(f"ensemble member {i}: expected a mapping with an 'architecture' key, got {spec!r}")
            if spec["architecture"] == "ensemble":
                raise ConfigError(f"ensemble member {i}: ensembles do not nest")
            entry = get_entry(spec["architecture"])
            kwargs = dict(spec.get("model_kwargs") or {})
            if pretrained_backbone:
                kwargs["pretrained_backbone"] = True
            if backbone_weights is not None:
                kwargs["backbone_weights"] = backbone_weights
            modules.append(entry.build(**kwargs))
            kinds.append(spec.get("output") or entry.config.output)
        w = [1.0] * len(members) if weights is None else [float(v) for v in weights]
        if len(w) != len(members) or any(not v >= 0 for v in w) or sum(w) <= 0:
            raise ConfigError(
                f"ensemble weights={list(weights or [])}: expected {len(members)} non-negative numbers, not all zero"
            )
        self.members = nn.ModuleList(modules)
        self.kinds = tuple(kinds)
        self.register_buffer("member_weights", torch.tensor(w) / sum(w), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        odds = torch.stack([fake_log_odds(m(x), k) for m, k in zip(self.members, self.kinds, strict=True)], dim=1)
        weights = cast(torch.Tensor, self.member_weights)  # a buffer
        return (odds * weights.to(odds)).sum(dim=1, keepdim=True)


def ensemble_of(
    detectors: Sequence[MemberT],
    weights: Sequence[float] | None = None,
    threshold: float | None = None,
    max_params: int | None = 200_000_000,
    *,
    suspicious_threshold: float | None = None,
) -> MemberT:
    """One detector that averages the fake log-odds of ``detectors`` (trained weights kept).

    Args:
        detectors: detectors with the same preprocessing (``DetectorConfig.preprocessing``);
            the ensemble is one of their class (a :class:`~deepfake_detect.Detector` for
            detectors), built as ``type(detectors[0])(model, config, source=...)``.
        weights: one weight per detector; default equal.
        threshold: the ensemble's decision threshold on P(fake); default the members' mean.
            Set it on held-out data: the members' thresholds need not carry over.
        suspicious_threshold: the lower bound of the ``suspicious`` verdict, below
            ``threshold``; default none (verdicts ``real``/``fake`` only): the members' bands
            were set for their own scores, not the ensemble's.
        max_params: the parameter limit for all members together (the challenge's 200M;
            ``None`` lifts it).

    Raises:
        ConfigError: the detectors preprocess differently, or the weights do not fit.
        ParameterLimitError: the members together exceed ``max_params``.
    """
    if not detectors:
        raise ConfigError("ensemble_of: give at least one detector")
    first = detectors[0].config
    for i, det in enumerate(detectors[1:], start=1):  # the members see the same input tensor
        for name, value in det.config.preprocessing.items():
            if value != first.preprocessing[name]:
                raise ConfigError(
                    f"ensemble_of: detector {i} has {name}={value!r}, detector 0 "
                    f"{first.preprocessing[name]!r}; members must share their preprocessing"
                )
    specs = [
        {"architecture": d.config.architecture, "model_kwargs": dict(d.config.model_kwargs), "output": d.config.output}
        for d in detectors
    ]
    kwargs: dict[str, Any] = {"members": specs}
    if weights is not None:
        kwargs["weights"] = [float(w) for w in weights]
    check_parameter_limit("ensemble", max_params, **kwargs)
    model = Ensemble(**kwargs)
    for member, det in zip(model.members, detectors, strict=True):
        member.load_state_dict(det.model.state_dict())
    if threshold is None:
        threshold = sum(d.config.threshold for d in detectors) / len(detectors)
    config = first.replace(
        architecture="ensemble",
        model_kwargs=kwargs,
        output="sigmoid",
        threshold=float(threshold),
        suspicious_threshold=None if suspicious_threshold is None else float(suspicious_threshold),
        metadata={"members": [d.source for d in detectors]},
    )
    wrap = type(detectors[0])  # the façade's class: this module builds no detector of its own
    return wrap(model.eval(), config, source="ensemble_of(" + ", ".join(d.source for d in detectors) + ")")
