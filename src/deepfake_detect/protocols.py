"""What the modules below the façade take instead of a :class:`~deepfake_detect.Detector`.

Evaluation, fine-tuning, model cards, export, the Hub, explanations, videos and ensembles need a
few members of a detector, never the class itself: these protocols name them, so those modules
import nothing above them (a :class:`~deepfake_detect.Detector` satisfies each one, and an
:class:`~deepfake_detect.engine.InferenceEngine` the ones without ``predict`` or ``source``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from .config import DetectorConfig

__all__ = ["ModelWithConfig", "Predictor", "FineTunable", "SavesPretrained", "EnsembleMember"]


class ModelWithConfig(Protocol):
    """A model and the config that says how to feed it (model cards, export, explanations)."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def config(self) -> DetectorConfig: ...


class Predictor(Protocol):
    """Scores images: ``predict(inputs, **options)`` gives P(fake) per image, as
    :meth:`Detector.predict <deepfake_detect.Detector.predict>` (evaluation, videos)."""

    @property
    def config(self) -> DetectorConfig: ...

    def predict(self, inputs: Any, *args: Any, **kwargs: Any) -> np.ndarray: ...


class FineTunable(Protocol):
    """What fine-tuning changes in place: the ``model``'s weights, and ``config`` (replaced at
    the end by one that describes the fine-tuned weights); ``source`` names the base."""

    config: DetectorConfig

    @property
    def model(self) -> nn.Module: ...

    @property
    def source(self) -> str: ...


class SavesPretrained(Protocol):
    """Writes itself as a detector folder (:meth:`Detector.save_pretrained
    <deepfake_detect.Detector.save_pretrained>`), as the Hub upload needs."""

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path: ...


class EnsembleMember(ModelWithConfig, Protocol):
    """A trained detector that :func:`~deepfake_detect.models.ensemble_of` averages; ``source``
    names it, and its class wraps the ensemble (``type(member)(model, config, source=...)``)."""

    @property
    def source(self) -> str: ...

    def __init__(self, model: nn.Module, config: DetectorConfig, *, source: str = "") -> None: ...
