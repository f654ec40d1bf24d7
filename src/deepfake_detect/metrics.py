"""Evaluation metrics for binary deepfake detection, in numpy only.

Conventions throughout: label ``1`` = fake (the positive class), ``0`` = real, and a score is
``P(fake)`` (larger means "more likely fake"). The Multi-FFDI challenge ranks submissions by
ROC AUC (:func:`roc_auc`), ties broken by the TPR at FPR = 1e-3 (:func:`tpr_at_fpr`).

Every function accepts lists, tuples or numpy arrays and validates its input: labels must be
0/1, labels and scores must have the same length, and scores must not be NaN (images skipped
with ``errors='skip'`` give NaN scores; drop those rows first). Violations raise
:class:`~deepfake_detect.errors.DataError`.

Equal scores are handled exactly: the ROC and precision-recall curves move through a group of
tied scores in one step, and the AUC counts a tied (fake, real) pair as 1/2.

The plots (``plot_roc``, ``plot_curves``) live in :mod:`deepfake_detect.plotting`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError

__all__ = [
    "roc_curve",
    "roc_auc",
    "tpr_at_fpr",
    "eer",
    "average_precision",
    "accuracy",
    "log_loss",
    "compute_metrics",
]


ArrayLike = Any  # a sequence or numpy array of numbers


# --------------------------------------------------------------------------------------------
# validation


def _as_1d(values: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise DataError(f"{what} must be a 1-D sequence, got a scalar {arr.item()!r}")
    if arr.ndim > 1:
        squeezed = arr.squeeze()
        if squeezed.ndim != 1:
            raise DataError(f"{what} must be 1-D, got an array of shape {arr.shape}")
        arr = squeezed
    return arr


def _check_labels(y_true: ArrayLike) -> np.ndarray:
    y = _as_1d(y_true, "y_true")
    if y.dtype == bool:
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            bad = next((v for v in y.tolist() if not isinstance(v, (int, float, bool))), y.tolist()[0])
            raise DataError(f"labels must be 0 (real) or 1 (fake), got {bad!r}") from None
    ok = (y == 0) | (y == 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"labels must be 0 (real) or 1 (fake), got {y[i].item()!r} at index {i} "
            f"({int((~ok).sum())} bad label(s) in all)"
        )
    return y.astype(np.int64)


def _check(y_true: ArrayLike, y_score: ArrayLike, *, both_classes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to ``(int64 labels, float64 scores)``."""
    y = _check_labels(y_true)
    s = _as_1d(y_score, "y_score")
    try:
        s = s.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError("scores must be numbers (P(fake) per image)") from None
    if len(y) != len(s):
        raise DataError(f"y_true and y_score have different lengths: {len(y)} labels, {len(s)} scores")
    if len(y) == 0:
        raise DataError("no samples: y_true and y_score are empty")
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise DataError(
            f"{n_nan} of {len(s)} scores are NaN; images that could not be read "
            "(errors='skip') give NaN scores: drop those rows (e.g. keep = ~numpy.isnan(scores)) "
            "before computing metrics"
        )
    if both_classes:
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == len(y):
            only = "fake (1)" if n_pos else "real (0)"
            raise DataError(
                f"only one class present (all {len(y)} labels are {only}); "
                "ROC-based metrics need both real and fake samples"
            )
    return y, s


def _distinct_thresholds(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true/false positives at each distinct score, scores sorted descending."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # last index of each group of equal scores
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last].astype(np.float64)
    fps = (last + 1) - tps
    return tps, fps, s_sorted[last]


# --------------------------------------------------------------------------------------------
# metrics


def roc_curve(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact ROC curve.

    Returns:
        ``(fpr, tpr, thresholds)``, 1-D float arrays of equal length. Point ``k`` is the
        operating point of the rule "fake if score >= thresholds[k]"; the curve starts at
        ``(0, 0)`` with threshold ``+inf`` and ends at ``(1, 1)``. Equal scores form a single
        point (the curve moves diagonally through a group of ties); no point is dropped.

    Raises:
        DataError: bad labels, length mismatch, NaN scores, or only one class present.
    """
    y, s = _check(y_true, y_score, both_classes=True)
    tps, fps, thr = _distinct_thresholds(y, s)
    n_pos, n_neg = tps[-1], fps[-1]
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, thr]
    return fpr, tpr, thresholds


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s``, ties given the average of the ranks they span."""
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted) != 0) + 1]
    ends = np.r_[starts[1:], len(s)]  # exclusive
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve, exactly.

    Computed as the Mann-Whitney statistic from average ranks: the fraction of (fake, real)
    pairs in which the fake scores higher, a tied pair counting 1/2. This equals the
    trapezoidal area under :func:`roc_curve`.

    Raises:
        DataError: only one class present, labels other than 0/1, ``y_true`` and ``y_score``
            of different lengths, or NaN scores.
    """
    y, s = _check(y_true, y_score, both_classes=True)
    ranks = _average_ranks(s)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def tpr_at_fpr(y_true: ArrayLike, y_score: ArrayLike, max_fpr: float = 1e-3) -> float:
    """True-positive rate at a false-positive rate of at most ``max_fpr`` (default 1e-3).

    Convention: the largest TPR among the points of the exact :func:`roc_curve` whose FPR is
    ``<= max_fpr``, i.e. the best detection rate reachable by an actual score threshold
    without exceeding the false-alarm budget. No interpolation between points is done, so
    with fewer than ``1 / max_fpr`` real images only thresholds with zero false positives
    count (the value is conservative). ``(0, 0)`` is always a point, so the result is >= 0.

    Raises:
        DataError: as :func:`roc_auc`, or ``max_fpr`` outside [0, 1].
    """
    if not (0.0 <= float(max_fpr) <= 1.0):
        raise DataError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    fpr, tpr, _ = roc_curve(y_true, y_score)
    # tiny tolerance so that e.g. 1/1000 <= 1e-3 despite rounding
    ok = fpr <= max_fpr * (1 + 1e-12)
    return float(tpr[ok].max())


def eer(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Equal error rate: where the false-positive rate equals the false-negative rate.

    Found on the exact ROC curve: between the two consecutive points where
    ``FPR - FNR`` (``FNR = 1 - TPR``) changes sign, the curve is interpolated linearly and
    the common value at the crossing is returned.

    Raises:
        DataError: as :func:`roc_auc`.
    """
    fpr, tpr, _ = roc_curve(y_true, y_score)
    d = fpr + tpr - 1.0  # FPR - FNR: -1 at (0, 0), +1 at (1, 1), non-decreasing
    i = int(np.argmax(d >= 0))
    if d[i] == 0 or i == 0:
        return float(fpr[i])
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision, step-wise: ``sum_k (R_k - R_{k-1}) * P_k``.

    The same definition as scikit-learn's ``average_precision_score`` (no interpolation):
    ``P_k`` and ``R_k`` are precision and recall of "fake if score >= t_k" at each distinct
    score ``t_k`` (tied scores enter together), ``R_0 = 0``.

    Raises:
        DataError: bad input (see :func:`roc_auc`) or no fake (label 1) sample.
    """
    y, s = _check(y_true, y_score)
    if y.sum() == 0:
        raise DataError("average precision needs at least one fake (label 1) sample; all labels are 0")
    tps, fps, _ = _distinct_thresholds(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def accuracy(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of correct decisions with "fake if score >= threshold"."""
    y, s = _check(y_true, y_score)
    return float(np.mean((s >= threshold).astype(np.int64) == y))


def log_loss(y_true: ArrayLike, y_score: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log) of the scores as ``P(fake)``.

    Scores are clipped to ``[eps, 1 - eps]`` so that confident mistakes cost a finite amount.

    Raises:
        DataError: bad input (see :func:`roc_auc`) or scores outside [0, 1] (e.g. logits).
    """
    y, s = _check(y_true, y_score)
    lo, hi = float(np.min(s)), float(np.max(s))
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(
            f"log loss needs probabilities in [0, 1], got scores from {lo:g} to {hi:g} "
            "(apply a sigmoid to logits first)"
        )
    p = np.clip(s, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def compute_metrics(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> dict[str, float | int]:
    """All metrics at once.

    Returns:
        A dict with keys, in this order: ``"auc"``, ``"tpr_at_fpr_1e-3"``, ``"acc"`` (at
        ``threshold``), ``"ap"``, ``"eer"``, ``"logloss"`` (floats) and ``"n"`` (int, the
        number of samples).

    Raises:
        DataError: as :func:`roc_auc` and :func:`log_loss`.
    """
    y, s = _check(y_true, y_score, both_classes=True)
    return {
        "auc": roc_auc(y, s),
        "tpr_at_fpr_1e-3": tpr_at_fpr(y, s, 1e-3),
        "acc": accuracy(y, s, threshold),
        "ap": average_precision(y, s),
        "eer": eer(y, s),
        "logloss": log_loss(y, s),
        "n": int(len(y)),
    }
