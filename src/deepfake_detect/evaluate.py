"""Evaluation: the challenge's metrics of a detector on labelled data, without side effects.

``evaluate`` only reads the detector (anything with ``config`` and ``predict``,
:class:`~deepfake_detect.protocols.Predictor`); to show its metrics in the model card of a later
``save_pretrained``/``push_to_hub``, pass them to :meth:`Detector.record_metrics
<deepfake_detect.Detector.record_metrics>`. :func:`validation_scores` scores a model being
trained through an :class:`~deepfake_detect.engine.InferenceEngine` of its own.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from .config import DetectorConfig
from .data.datasets import LabeledData, as_labeled_data, as_sources, concat_sources
from .distributed import DistContext
from .engine import InferenceEngine
from .errors import DataError
from .metrics import compute_metrics
from .protocols import Predictor

__all__ = ["evaluate", "per_source_metrics", "validation_scores", "describe_data", "check_both_classes"]


def evaluate(
    detector: Predictor,
    data: Any,
    *,
    batch_size: int = 32,
    device: Any = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    errors: str = "raise",
    threshold: float | None = None,
    plot: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The challenge's metrics on labelled data, with the detector's own preprocessing.

    Args:
        detector: the detector to score; it is not modified (see
            :meth:`Detector.record_metrics` to put the result in its model card).
        data: a :class:`~deepfake_detect.data.LabelFile`, a real/fake folder, a list of
            ``(image, label)`` pairs, or a torch Dataset of ``(image, label)``; or several
            of them as a mapping ``{name: data}`` (or a list of datasets), scored per
            source and pooled.
        batch_size, device, progress, num_workers: as for :meth:`Detector.predict`.
        errors: ``"skip"`` leaves unreadable images out of the metrics (``n`` counts
            the scored ones).
        threshold: for ``acc``; default the detector's ``config.threshold``.
        plot: write the ROC curve to this PNG file.

    Returns:
        ``{"auc", "tpr_at_fpr_1e-3", "acc", "ap", "eer", "logloss", "n"}``; for several
        sources ``{name: metrics, ..., "pooled": metrics}`` (``pooled`` also has
        ``auc_mean``, the mean of the sources' AUCs).
    """
    sources = as_sources(data)
    if sources is not None:
        for name, part in sources.items():  # before scoring: AUC needs both classes in each source
            check_both_classes(part.labels, f"source {name!r} ({part.description})")
        data, source_ids = concat_sources(sources)
    else:
        data, source_ids = as_labeled_data(data), None
        check_both_classes(data.labels, data.description or "the data")
    images = [data.image(i) for i in range(len(data))]
    with warnings.catch_warnings():
        if errors == "skip":
            warnings.simplefilter("default")
        scores = detector.predict(
            images, batch_size=batch_size, device=device, progress=progress, num_workers=num_workers, errors=errors
        )
    keep = ~np.isnan(scores)
    threshold = detector.config.threshold if threshold is None else threshold
    if sources is not None:
        assert source_ids is not None
        metrics: dict[str, Any] = per_source_metrics(data.labels, scores, source_ids, list(sources), threshold)
    else:
        metrics = dict(compute_metrics(data.labels[keep], scores[keep], threshold=threshold))
    if plot is not None:
        from .plotting import plot_roc

        plot_roc(data.labels[keep], scores[keep], plot, title=f"{detector.config.architecture}")
    return metrics


def check_both_classes(labels: np.ndarray, where: str) -> None:
    """Raise :class:`DataError` naming ``where`` unless ``labels`` hold both 0 and 1 (AUC needs both)."""
    present = sorted(set(np.unique(labels).tolist()))
    if present != [0, 1]:
        raise DataError(f"{where} has only label(s) {present}; AUC, AP and EER need real (0) and fake (1) images")


def describe_data(data: Any) -> str:
    """A one-line description of labelled data, as :meth:`Detector.record_metrics` records it."""
    sources = as_sources(data)
    merged = concat_sources(sources)[0] if sources is not None else as_labeled_data(data)
    return merged.description or f"{len(merged)} labelled images"


def per_source_metrics(
    labels: np.ndarray, scores: np.ndarray, source_ids: np.ndarray, names: Sequence[str], threshold: float
) -> dict[str, Any]:
    """``{name: metrics, ..., "pooled": metrics + auc_mean}`` over the scored (non-NaN)
    images; ``source_ids[i]`` indexes ``names``."""
    keep = ~np.isnan(scores)
    out: dict[str, Any] = {}
    for k, name in enumerate(names):
        sel = keep & (source_ids == k)
        try:
            out[name] = compute_metrics(labels[sel], scores[sel], threshold=threshold)
        except DataError as e:  # e.g. one class left after unreadable images were skipped
            raise DataError(f"source {name!r}: {e}") from None
    pooled = dict(compute_metrics(labels[keep], scores[keep], threshold=threshold))
    pooled["auc_mean"] = float(np.mean([out[n]["auc"] for n in names]))
    out["pooled"] = pooled
    return out


def validation_scores(
    model: nn.Module,
    config: DetectorConfig,
    data: LabeledData,
    dist: DistContext,
    batch_size: int,
    *,
    crop_faces: bool = False,
) -> np.ndarray:
    """P(fake) of ``model`` (fed as ``config`` says) on ``data``, each process scoring its
    shard and the scores gathered; shape (len(data),). Scored by an
    :class:`~deepfake_detect.engine.InferenceEngine` on the torch backend, as ``predict(...,
    backend="torch")`` scores. ``crop_faces`` scores each image's face as ``predict(...,
    crop_faces=True)`` does (without its warning)."""
    # torch: the weights change every epoch, so an exported graph would be used once and
    # then left in the cache
    engine = InferenceEngine(model, config)
    idx = dist.shard(list(range(len(data))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # images without a face are scored whole, as in predict
        scores = engine.predict(
            [data.image(i) for i in idx], batch_size=batch_size, progress=False, crop_faces=crop_faces, backend="torch"
        )
    out = np.full(len(data), np.nan, dtype=np.float32)
    for part_idx, part_scores in dist.gather((idx, scores)):
        out[part_idx] = part_scores
    return out
