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

Two small plotting helpers draw PNGs with Pillow only: :func:`plot_roc` and the generic
:func:`plot_curves` (several named lines with a legend).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
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
    "plot_roc",
    "plot_curves",
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


# --------------------------------------------------------------------------------------------
# plotting (Pillow only)

_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]


def _nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw - 1e-12 * mag)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:.4f}".rstrip("0").rstrip(".")


def _auto_limits(values: Iterable[np.ndarray]) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(v.min() for v in finite))
    hi = float(max(v.max() for v in finite))
    if hi == lo:
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.04
    return lo - pad, hi + pad


def plot_curves(
    series: Mapping[str, tuple[ArrayLike, ArrayLike]],
    path: str | os.PathLike[str],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    markers: bool | None = None,
    diagonal: bool = False,
    annotations: Sequence[tuple[float, float, str]] = (),
    size: tuple[int, int] = (480, 480),
) -> Path:
    """Draw named line series on one pair of axes and save a PNG (Pillow only).

    Args:
        series: ``{name: (xs, ys)}``; each is drawn as a line in its own colour and listed in
            the legend. NaN/inf values break the line.
        path: the PNG file to write (parent folders are created).
        xlabel, ylabel, title: axis labels and the title above the plot.
        xlim, ylim: axis ranges; default from the data with a small margin.
        markers: dots at the data points; default: for series of at most 30 points.
        diagonal: draw the dashed ``y = x`` chance line (for ROC curves).
        annotations: ``(x, y, text)`` points marked with a ring and labelled.
        size: image ``(width, height)`` in pixels.

    Returns:
        ``Path(path)``.
    """
    from PIL import Image, ImageDraw, ImageFont

    data = {}
    for name, xy in series.items():
        xs, ys = (np.asarray(a, dtype=np.float64).ravel() for a in xy)
        if xs.shape != ys.shape:
            raise DataError(f"series {name!r}: xs and ys have different lengths ({xs.size} vs {ys.size})")
        data[str(name)] = (xs, ys)
    x0, x1 = xlim if xlim is not None else _auto_limits(v[0] for v in data.values())
    y0, y1 = ylim if ylim is not None else _auto_limits(v[1] for v in data.values())
    if not (x1 > x0 and y1 > y0):
        raise DataError(f"empty axis range: xlim=({x0}, {x1}), ylim=({y0}, {y1})")

    width, height = int(size[0]), int(size[1])
    font = ImageFont.load_default()
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def text_size(text: str) -> tuple[int, int]:
        box = draw.textbbox((0, 0), text, font=font)
        return box[2] - box[0], box[3] - box[1]

    _, th = text_size("0123456789")
    left, right = 16 + th + 8 + text_size("0.00")[0] + 10, 16
    top = 14 + (th + 10 if title else 0)
    bottom = 14 + th + 8 + th + 10
    pw, ph = width - left - right, height - top - bottom
    if pw < 20 or ph < 20:
        raise DataError(f"plot size {size} is too small")

    def px(x: np.ndarray | float) -> np.ndarray | float:
        return (np.asarray(x) - x0) / (x1 - x0) * (pw - 1)

    def py(y: np.ndarray | float) -> np.ndarray | float:
        return (1.0 - (np.asarray(y) - y0) / (y1 - y0)) * (ph - 1)

    # grid, ticks and tick labels
    grid, axis_c, text_c = (232, 232, 232), (60, 60, 60), (20, 20, 20)
    for v in _nice_ticks(x0, x1):
        xp = left + float(px(v))
        draw.line([(xp, top), (xp, top + ph - 1)], fill=grid)
        draw.line([(xp, top + ph), (xp, top + ph + 4)], fill=axis_c)
        label = _fmt_tick(v)
        tw, _ = text_size(label)
        draw.text((xp - tw / 2, top + ph + 7), label, fill=text_c, font=font)
    for v in _nice_ticks(y0, y1):
        yp = top + float(py(v))
        draw.line([(left, yp), (left + pw - 1, yp)], fill=grid)
        draw.line([(left - 5, yp), (left - 1, yp)], fill=axis_c)
        label = _fmt_tick(v)
        tw, _ = text_size(label)
        draw.text((left - 8 - tw, yp - th / 2 - 1), label, fill=text_c, font=font)

    # curves on a plot-area layer drawn at 2x and downsampled (anti-aliased lines); the layer
    # also clips whatever lies outside the axes
    ss = 2
    layer = Image.new("RGBA", (pw * ss, ph * ss), (255, 255, 255, 0))
    ld = ImageDraw.Draw(layer)
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        if hi > lo:
            n_dash = 40
            for k in range(n_dash):
                a = lo + (hi - lo) * k / n_dash
                b = lo + (hi - lo) * (k + 0.5) / n_dash
                ld.line([(ss * float(px(a)), ss * float(py(a))), (ss * float(px(b)), ss * float(py(b)))],
                        fill=(150, 150, 150, 255), width=ss)
    colours = {}
    for k, (name, (xs, ys)) in enumerate(data.items()):
        colour = _PALETTE[k % len(_PALETTE)]
        colours[name] = colour
        ok = np.isfinite(xs) & np.isfinite(ys)
        pxs, pys = ss * px(xs), ss * py(ys)
        # split into runs of finite points
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1
        for run in np.split(np.arange(len(xs)), breaks):
            if run.size and ok[run[0]]:
                pts = list(zip(pxs[run].tolist(), pys[run].tolist()))
                if len(pts) > 1:
                    ld.line(pts, fill=colour + (255,), width=2 * ss, joint="curve")
        show = markers if markers is not None else len(xs) <= 30
        if show:
            r = 3.5 * ss
            for xv, yv in zip(pxs[ok].tolist(), pys[ok].tolist()):
                ld.ellipse([xv - r, yv - r, xv + r, yv + r], fill=colour + (255,))
    notes = []
    for ax, ay, text in annotations:
        if not (math.isfinite(ax) and math.isfinite(ay)):
            continue
        xv, yv = float(px(ax)), float(py(ay))
        r = 5 * ss
        ld.ellipse([ss * xv - r, ss * yv - r, ss * xv + r, ss * yv + r], outline=(214, 39, 40, 255), width=ss * 2)
        notes.append((xv, yv, text))
    layer = layer.resize((pw, ph), Image.Resampling.LANCZOS)
    img.paste(layer, (left, top), layer)
    for xv, yv, text in notes:
        tw, _ = text_size(text)
        tx = xv + 9 if xv + 9 + tw < pw - 2 else xv - 9 - tw
        ty = min(max(yv + 6, 2), ph - th - 4)
        tx, ty = left + tx, top + ty
        draw.rectangle([tx - 2, ty - 1, tx + tw + 2, ty + th + 3], fill=(255, 255, 255))
        draw.text((tx, ty), text, fill=(214, 39, 40), font=font)
    draw.rectangle([left - 1, top - 1, left + pw, top + ph], outline=axis_c)

    # legend in the corner holding the fewest data points
    if data:
        entries = list(data)
        lw = max(text_size(n)[0] for n in entries) + 34
        lh = len(entries) * (th + 8) + 8
        lw, lh = min(lw, pw - 8), min(lh, ph - 8)
        corners = {
            "lower right": (pw - lw - 6, ph - lh - 6), "upper left": (6, 6),
            "upper right": (pw - lw - 6, 6), "lower left": (6, ph - lh - 6),
        }
        all_x = np.concatenate([px(v[0]) for v in data.values()])
        all_y = np.concatenate([py(v[1]) for v in data.values()])

        def crowd(c: tuple[float, float]) -> int:
            cx, cy = c
            return int(np.sum((all_x >= cx) & (all_x <= cx + lw) & (all_y >= cy) & (all_y <= cy + lh)))

        cx, cy = min(corners.values(), key=crowd)
        cx, cy = left + cx, top + cy
        draw.rectangle([cx, cy, cx + lw, cy + lh], fill="white", outline=(180, 180, 180))
        for k, name in enumerate(entries):
            ey = cy + 6 + k * (th + 8)
            draw.line([(cx + 6, ey + th / 2 + 1), (cx + 26, ey + th / 2 + 1)], fill=colours[name], width=3)
            draw.text((cx + 30, ey), name, fill=text_c, font=font)

    # axis labels and title
    if title:
        tw, _ = text_size(title)
        draw.text(((width - tw) / 2, 10), title, fill=text_c, font=font)
    if xlabel:
        tw, _ = text_size(xlabel)
        draw.text((left + (pw - tw) / 2, height - th - 12), xlabel, fill=text_c, font=font)
    if ylabel:
        tw, _ = text_size(ylabel)
        tmp = Image.new("L", (tw + 4, th + 6), 0)
        ImageDraw.Draw(tmp).text((2, 1), ylabel, fill=255, font=font)
        tmp = tmp.rotate(90, expand=True)
        img.paste(Image.new("RGB", tmp.size, text_c), (10, int(top + (ph - tmp.size[1]) / 2)), tmp)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")
    return out


def plot_roc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    size: tuple[int, int] = (480, 480),
) -> Path:
    """Draw the ROC curve to a PNG (Pillow only) and return ``Path(path)``.

    Shows the exact curve (:func:`roc_curve`), the dashed chance diagonal, the AUC in the
    legend and a ring at the operating point of :func:`tpr_at_fpr` with FPR <= 1e-3.

    Raises:
        DataError: as :func:`roc_auc`.
    """
    y, s = _check(y_true, y_score, both_classes=True)
    fpr, tpr, _ = roc_curve(y, s)
    auc = roc_auc(y, s)
    t3 = tpr_at_fpr(y, s, 1e-3)
    ok = fpr <= 1e-3 * (1 + 1e-12)
    f3 = float(fpr[ok][np.argmax(tpr[ok])])
    return plot_curves(
        {f"ROC (AUC = {auc:.4f})": (fpr, tpr)},
        path,
        xlabel="false positive rate (real called fake)",
        ylabel="true positive rate (fake detected)",
        title=title if title is not None else f"ROC curve, AUC = {auc:.4f} (n = {len(y)})",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        markers=False,
        diagonal=True,
        annotations=[(f3, t3, f"TPR@FPR 1e-3 = {t3:.3f}")],
        size=size,
    )
