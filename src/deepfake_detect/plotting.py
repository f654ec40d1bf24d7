"""PNG plots drawn with Pillow only: :func:`plot_roc` and the generic :func:`plot_curves`
(several named lines with a legend), used by ``evaluate(plot=...)`` and the robustness sweep."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .metrics import roc_auc, roc_curve, tpr_at_fpr

__all__ = ["plot_roc", "plot_curves"]

ArrayLike = Any  # a sequence or numpy array of numbers

# --------------------------------------------------------------------------------------------
# plotting (Pillow only)

_PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
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


class _Canvas:
    """A white image with a plot area: data -> pixel mapping and text measuring."""

    GRID, AXIS, TEXT = (232, 232, 232), (60, 60, 60), (20, 20, 20)

    def __init__(
        self, size: tuple[int, int], xlim: tuple[float, float], ylim: tuple[float, float], title: str | None
    ) -> None:
        from PIL import Image, ImageDraw, ImageFont

        self.width, self.height = int(size[0]), int(size[1])
        try:  # a scalable font (Pillow >= 10.1 with FreeType): the 10 px default runs words together
            self.font = ImageFont.load_default(size=12)
        except (TypeError, ImportError, OSError):
            self.font = ImageFont.load_default()
        self.img = Image.new("RGB", (self.width, self.height), "white")
        self.draw = ImageDraw.Draw(self.img)
        (self.x0, self.x1), (self.y0, self.y1) = xlim, ylim
        _, self.th = self.text_size("0123456789")
        self.left, self.right = 16 + self.th + 8 + self.text_size("0.00")[0] + 10, 16
        self.top = 14 + (self.th + 10 if title else 0)
        self.bottom = 14 + self.th + 8 + self.th + 10
        self.pw, self.ph = self.width - self.left - self.right, self.height - self.top - self.bottom
        if self.pw < 20 or self.ph < 20:
            raise DataError(f"plot size {size} is too small")

    def text_size(self, text: str) -> tuple[int, int]:
        box = self.draw.textbbox((0, 0), text, font=self.font)
        return int(box[2] - box[0]), int(box[3] - box[1])

    def px(self, x: np.ndarray | float) -> Any:
        return (np.asarray(x) - self.x0) / (self.x1 - self.x0) * (self.pw - 1)

    def py(self, y: np.ndarray | float) -> Any:
        return (1.0 - (np.asarray(y) - self.y0) / (self.y1 - self.y0)) * (self.ph - 1)

    def axes(self) -> None:
        """Grid, ticks and tick labels."""
        d, left, top, pw, ph, th = self.draw, self.left, self.top, self.pw, self.ph, self.th
        for v in _nice_ticks(self.x0, self.x1):
            xp = left + float(self.px(v))
            d.line([(xp, top), (xp, top + ph - 1)], fill=self.GRID)
            d.line([(xp, top + ph), (xp, top + ph + 4)], fill=self.AXIS)
            label = _fmt_tick(v)
            tw, _ = self.text_size(label)
            d.text((xp - tw / 2, top + ph + 7), label, fill=self.TEXT, font=self.font)
        for v in _nice_ticks(self.y0, self.y1):
            yp = top + float(self.py(v))
            d.line([(left, yp), (left + pw - 1, yp)], fill=self.GRID)
            d.line([(left - 5, yp), (left - 1, yp)], fill=self.AXIS)
            label = _fmt_tick(v)
            tw, _ = self.text_size(label)
            d.text((left - 8 - tw, yp - th / 2 - 1), label, fill=self.TEXT, font=self.font)

    def labels(self, title: str | None, xlabel: str, ylabel: str) -> None:
        from PIL import Image, ImageDraw

        if title:
            tw, _ = self.text_size(title)
            self.draw.text(((self.width - tw) / 2, 10), title, fill=self.TEXT, font=self.font)
        if xlabel:
            tw, _ = self.text_size(xlabel)
            self.draw.text(
                (self.left + (self.pw - tw) / 2, self.height - self.th - 12), xlabel, fill=self.TEXT, font=self.font
            )
        if ylabel:
            tw, _ = self.text_size(ylabel)
            tmp = Image.new("L", (tw + 4, self.th + 6), 0)
            ImageDraw.Draw(tmp).text((2, 1), ylabel, fill=255, font=self.font)
            tmp = tmp.rotate(90, expand=True)
            self.img.paste(
                Image.new("RGB", tmp.size, self.TEXT), (10, int(self.top + (self.ph - tmp.size[1]) / 2)), tmp
            )


def _draw_curves(
    c: _Canvas,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    markers: bool | None,
    diagonal: bool,
    annotations: Sequence[tuple[float, float, str]],
) -> tuple[dict, list]:
    """Curves on a plot-area layer drawn at 2x and downsampled (anti-aliased lines); the layer
    also clips whatever lies outside the axes. Returns (colour per series, annotation notes)."""
    from PIL import Image, ImageDraw

    ss = 2
    layer = Image.new("RGBA", (c.pw * ss, c.ph * ss), (255, 255, 255, 0))
    ld = ImageDraw.Draw(layer)
    if diagonal:
        lo, hi = max(c.x0, c.y0), min(c.x1, c.y1)
        n_dash = 40
        for k in range(n_dash if hi > lo else 0):
            a = lo + (hi - lo) * k / n_dash
            b = lo + (hi - lo) * (k + 0.5) / n_dash
            ld.line(
                [(ss * float(c.px(a)), ss * float(c.py(a))), (ss * float(c.px(b)), ss * float(c.py(b)))],
                fill=(150, 150, 150, 255),
                width=ss,
            )
    colours = {}
    for k, (name, (xs, ys)) in enumerate(data.items()):
        colour = colours[name] = _PALETTE[k % len(_PALETTE)]
        ok = np.isfinite(xs) & np.isfinite(ys)
        pxs, pys = ss * c.px(xs), ss * c.py(ys)
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1  # runs of finite points
        for run in np.split(np.arange(len(xs)), breaks):
            if run.size and ok[run[0]] and run.size > 1:
                ld.line(
                    list(zip(pxs[run].tolist(), pys[run].tolist(), strict=True)),
                    fill=colour + (255,),
                    width=2 * ss,
                    joint="curve",
                )
        if markers if markers is not None else len(xs) <= 30:
            r = 3.5 * ss
            for xv, yv in zip(pxs[ok].tolist(), pys[ok].tolist(), strict=True):
                ld.ellipse([xv - r, yv - r, xv + r, yv + r], fill=colour + (255,))
    notes = []
    for ax, ay, text in annotations:
        if not (math.isfinite(ax) and math.isfinite(ay)):
            continue
        xv, yv = float(c.px(ax)), float(c.py(ay))
        r = 5 * ss
        ld.ellipse([ss * xv - r, ss * yv - r, ss * xv + r, ss * yv + r], outline=(214, 39, 40, 255), width=ss * 2)
        notes.append((xv, yv, text))
    layer = layer.resize((c.pw, c.ph), Image.Resampling.LANCZOS)
    c.img.paste(layer, (c.left, c.top), layer)
    return colours, notes


def _draw_notes(c: _Canvas, notes: list[tuple[float, float, str]]) -> None:
    for xv, yv, text in notes:
        tw, _ = c.text_size(text)
        tx = xv + 9 if xv + 9 + tw < c.pw - 2 else xv - 9 - tw
        ty = min(max(yv + 6, 2), c.ph - c.th - 4)
        tx, ty = c.left + tx, c.top + ty
        c.draw.rectangle([tx - 2, ty - 1, tx + tw + 2, ty + c.th + 3], fill=(255, 255, 255))
        c.draw.text((tx, ty), text, fill=(214, 39, 40), font=c.font)
    c.draw.rectangle([c.left - 1, c.top - 1, c.left + c.pw, c.top + c.ph], outline=c.AXIS)


def _draw_legend(c: _Canvas, data: dict[str, tuple[np.ndarray, np.ndarray]], colours: dict) -> None:
    """The legend in the corner holding the fewest data points."""
    if not data:
        return
    entries, th = list(data), c.th
    lw = min(max(c.text_size(n)[0] for n in entries) + 34, c.pw - 8)
    lh = min(len(entries) * (th + 8) + 8, c.ph - 8)
    corners = {
        "lower right": (c.pw - lw - 6, c.ph - lh - 6),
        "upper left": (6, 6),
        "upper right": (c.pw - lw - 6, 6),
        "lower left": (6, c.ph - lh - 6),
    }
    all_x = np.concatenate([c.px(v[0]) for v in data.values()])
    all_y = np.concatenate([c.py(v[1]) for v in data.values()])

    def crowd(corner: tuple[float, float]) -> int:
        cx, cy = corner
        return int(np.sum((all_x >= cx) & (all_x <= cx + lw) & (all_y >= cy) & (all_y <= cy + lh)))

    cx, cy = min(corners.values(), key=crowd)
    cx, cy = c.left + cx, c.top + cy
    c.draw.rectangle([cx, cy, cx + lw, cy + lh], fill="white", outline=(180, 180, 180))
    for k, name in enumerate(entries):
        ey = cy + 6 + k * (th + 8)
        c.draw.line([(cx + 6, ey + th / 2 + 1), (cx + 26, ey + th / 2 + 1)], fill=colours[name], width=3)
        c.draw.text((cx + 30, ey), name, fill=c.TEXT, font=c.font)


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
    canvas = _Canvas(size, (x0, x1), (y0, y1), title)
    canvas.axes()
    colours, notes = _draw_curves(canvas, data, markers, diagonal, annotations)
    _draw_notes(canvas, notes)
    _draw_legend(canvas, data, colours)
    canvas.labels(title, xlabel, ylabel)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.img.save(out, format="PNG")
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
    auc = roc_auc(y_true, y_score)  # validates: 0/1 labels, both classes, no NaN
    y, s = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    fpr, tpr, _ = roc_curve(y, s)
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
