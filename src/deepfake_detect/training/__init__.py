"""Fine-tuning: :class:`TrainConfig` (the recipe), :class:`Trainer` (the loop, in small steps),
:class:`CheckpointDir` (the output folder and its crash recovery) and :func:`finetune`.

``Detector.finetune(train, val, **kwargs)`` is ``finetune`` on the detector; ``evaluate``
and ``per_source_metrics`` live in :mod:`deepfake_detect.evaluate` (still importable from here).
"""

from __future__ import annotations

from ..evaluate import evaluate, per_source_metrics
from .checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, HISTORY_NAME, STATE_NAME, CheckpointDir
from .config import TrainConfig
from .trainer import Trainer, TrainResult, finetune

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "CheckpointDir",
    "finetune",
    "evaluate",
    "per_source_metrics",
    "CHECKPOINT_LAST",
    "CHECKPOINT_BEST",
    "STATE_NAME",
    "HISTORY_NAME",
]
