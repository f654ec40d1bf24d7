"""Robustness sweeps: ROC AUC, accuracy and false alarms of a detector under common image
degradations (JPEG, blur, down/up-scaling, noise), tighter face crops, H.264 video
re-encoding, and white-box adversarial attacks (FGSM, PGD).

    >>> from deepfake_detect.robustness import sweep, plot_sweep
    >>> rows = sweep(detector, "data/val", limit=500)      # a real/ + fake/ folder
    >>> plot_sweep(rows, "robustness.png")

Where the perturbation is applied: every image first goes through the detector's own
preprocessing up to the pixel grid the model sees (decode, RGB, resize/crop to
``config.input_size``); the perturbation is applied to that resized RGB image, and the result
is normalised with the config's mean/std and scored. Degrading the *resized* image (not the
original file) keeps the sweep cheap and makes a level mean the same thing for every input
size; note that a JPEG quality or blur sigma therefore acts at the model's resolution.

Levels (:data:`PERTURBATIONS`):

* ``clean``: level 0, no perturbation (always the first row: the reference).
* ``jpeg``: JPEG re-encoding (Pillow, 4:2:0) at quality 90, 70, 50, 30.
* ``blur``: Gaussian blur, sigma 0.5, 1, 2, 3 pixels (kernel radius ceil(3 sigma), reflected
  borders).
* ``resize``: downscale by 0.75, 0.5, 0.25 then back up to the input size (the config's
  interpolation both ways; Pillow antialiases when shrinking).
* ``noise``: additive Gaussian noise, sigma 2, 5, 10, 20 in 0-255 pixel units, clipped to the
  valid range (not re-quantised to 8 bits).
* ``crop``: the central box of side 0.85, 0.7, 0.6, 0.5 of the image (vertical centre at 55 %,
  :func:`deepfake_detect.augment.center_crop`) resized back: the same face as a tighter face
  detector (MTCNN, RetinaFace, dlib) would crop it.
* ``video``: H.264 re-encoding (libx264 through PyAV, extra ``video``; yuv420p, preset
  medium) at CRF 23, 30, 37, the image encoded as a one-frame video (an intra frame): the
  compression of a face taken from a streamed or re-uploaded clip. Skipped from the default
  list when PyAV is not installed.
* ``fgsm``, ``pgd``: L-infinity attacks of radius ``level / 255`` (levels 1, 2, 4, 8) on the
  [0, 1] RGB image, through the normalisation, on the detector's model in eval mode. Each
  step moves the image in the direction that *increases the loss of the true label* (binary
  cross-entropy on the fake logit, which for a 2-class softmax equals its cross-entropy):
  fakes are pushed towards "real" and reals towards "fake". FGSM is one step of size eps;
  PGD is 10 steps of size eps/4 from a uniform random start in the eps-ball, each followed by
  projection onto the ball and clipping to [0, 1].

Randomness (noise, PGD starts) comes from ``numpy.random.default_rng((seed, level index,
image index))``: the same seed gives the same rows, whatever ``batch_size`` is.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .augment import center_crop
from .data.datasets import LabeledData, as_labeled_data
from .data.preprocess import gaussian_blur, normalize, tensor_to_pil, to_unit_tensor
from .errors import DataError, DeepfakeDetectError
from .heads import fake_log_odds
from .modules import frozen, param_dtype
from .video import h264_available, reencode_h264

if TYPE_CHECKING:
    from .detector import Detector

__all__ = ["PERTURBATIONS", "sweep", "plot_sweep", "perturb"]

#: name -> levels, in order of increasing severity. Units: JPEG quality; blur sigma in pixels;
#: resize factor; noise sigma in 0-255 pixel units; FGSM/PGD epsilon in units of 1/255.
PERTURBATIONS: dict[str, tuple[float, ...]] = {
    "clean": (0,),
    "jpeg": (90, 70, 50, 30),
    "blur": (0.5, 1, 2, 3),
    "resize": (0.75, 0.5, 0.25),
    "noise": (2, 5, 10, 20),
    "crop": (0.85, 0.7, 0.6, 0.5),
    "video": (23, 30, 37),
    "fgsm": (1, 2, 4, 8),
    "pgd": (1, 2, 4, 8),
}
ADVERSARIAL = ("fgsm", "pgd")
PGD_STEPS = 10
# seeds of the random draws per perturbation (fixed: a new perturbation does not change old rows)
_CODES = {"clean": 0, "jpeg": 1, "blur": 2, "resize": 3, "noise": 4, "fgsm": 5, "pgd": 6, "crop": 7, "video": 8}


def sweep(
    detector: Detector,
    data: Any,
    perturbations: Sequence[str] | Mapping[str, Sequence[float]] | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """ROC AUC and accuracy of ``detector`` on ``data`` under each perturbation level.

    Args:
        detector: the detector to test.
        data: labelled images (1 = fake): a :class:`~deepfake_detect.data.LabelFile`, a
            real/fake folder, a list of ``(image, label)`` pairs, or a torch Dataset; both
            classes must be present.
        perturbations: names from :data:`PERTURBATIONS` (default: all), or a mapping
            ``{name: levels}`` to use other levels. The ``clean`` reference row is always
            included, first.
        limit: use a stratified random subset of at most ``limit`` images (the real/fake
            ratio kept, at least one of each), chosen with ``seed``.
        batch_size: images per forward pass (and per attack batch).
        seed: for the subset, the noise and the PGD random starts.

    Returns:
        One dict per (perturbation, level), clean first, then in the order asked:
        ``{"perturbation": str, "level": int | float, "auc": float, "acc": float,
        "false_alarms": float, "n": int}``; ``acc`` and ``false_alarms`` (the share of real
        images scored at or above the threshold) at the detector's ``config.threshold``.

    Raises:
        DeepfakeDetectError: an unknown perturbation name or a bad level.
        MissingDependencyError: ``video`` asked for without PyAV (extra ``video``).
        DataError: bad data, or a single class (the AUC needs both).
        ImageLoadError: an unreadable image.
    """
    from .engine import check_batch_size
    from .metrics import accuracy, roc_auc

    plan = _plan(perturbations)
    check_batch_size(batch_size)
    data = as_labeled_data(data)
    data = _stratified_limit(data, limit, seed)
    labels = data.labels.astype(np.int64)
    if len(np.unique(labels)) < 2:
        raise DataError(f"the robustness sweep needs real and fake images (AUC); got only label {labels[0]}")
    scores = {(name, lv): np.empty(len(data), dtype=np.float32) for name, levels in plan for lv in levels}
    prep = detector.preprocessor()
    resample = prep.resample
    for start in range(0, len(data), batch_size):
        idx = list(range(start, min(start + batch_size, len(data))))
        images = [to_unit_tensor(prep.prepare(data.image(i))) for i in idx]  # (3, h, w) in [0, 1]
        clean = torch.stack(images)
        y = torch.as_tensor(labels[idx], dtype=torch.float32)
        for name, levels in plan:
            for k, level in enumerate(levels):
                if name in ADVERSARIAL:
                    batch = _attack(
                        detector, clean, y, name, float(level) / 255.0, rngs=[_rng(seed, name, k, i) for i in idx]
                    )
                else:
                    batch = torch.stack(
                        [
                            perturb(img, name, level, resample=resample, rng=_rng(seed, name, k, i))
                            for i, img in zip(idx, images, strict=True)
                        ]
                    )
                scores[(name, level)][idx] = _score(detector, batch)
    threshold = float(detector.config.threshold)
    rows = []
    for name, levels in plan:
        for level in levels:
            s = scores[(name, level)]
            rows.append(
                {
                    "perturbation": name,
                    "level": level,
                    "auc": float(roc_auc(labels, s)),
                    "acc": float(accuracy(labels, s, threshold)),
                    "false_alarms": float((s[labels == 0] >= threshold).mean()),
                    "n": int(len(s)),
                }
            )
    return rows


def perturb(
    image: torch.Tensor,
    name: str,
    level: float,
    *,
    resample: int = Image.Resampling.BILINEAR,
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """One non-adversarial perturbation of a (3, H, W) float image in [0, 1]; same shape and range.

    ``name`` is ``"clean"``, ``"jpeg"`` (quality), ``"blur"`` (sigma, px), ``"resize"`` (factor),
    ``"noise"`` (sigma, 0-255 units), ``"crop"`` (side kept, a fraction) or ``"video"`` (H.264
    CRF); ``rng`` draws the noise.
    """
    if name == "clean":
        return image
    if name == "crop":
        return to_unit_tensor(np.asarray(center_crop(tensor_to_pil(image), float(level))))
    if name == "video":
        return to_unit_tensor(np.asarray(reencode_h264(tensor_to_pil(image), int(level))))
    if name == "jpeg":
        buf = io.BytesIO()
        tensor_to_pil(image).save(buf, format="JPEG", quality=int(level))
        buf.seek(0)
        with Image.open(buf) as im:
            return to_unit_tensor(np.asarray(im.convert("RGB")))
    if name == "blur":
        return gaussian_blur(image[None], float(level))[0].clamp_(0.0, 1.0)
    if name == "resize":
        pil = tensor_to_pil(image)
        w, h = pil.size
        small = pil.resize((max(1, round(w * float(level))), max(1, round(h * float(level)))), resample)
        return to_unit_tensor(np.asarray(small.resize((w, h), resample)))
    if name == "noise":
        rng = rng if rng is not None else np.random.default_rng()
        noise = torch.from_numpy(rng.normal(0.0, float(level) / 255.0, size=tuple(image.shape)).astype(np.float32))
        return (image + noise).clamp_(0.0, 1.0)
    raise DeepfakeDetectError(
        f"perturbation {name!r} is not an image degradation; known: "
        f"{[n for n in PERTURBATIONS if n not in ADVERSARIAL]}"
    )


def plot_sweep(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Plot AUC against severity, one line per perturbation, on one panel (a PNG).

    The x axis is the *severity step*, not the level value (levels have different units):
    step 0 is the clean AUC, step k the k-th level of :data:`PERTURBATIONS` order (JPEG 90, 70,
    50, 30 are steps 1-4; FGSM/PGD 1/255 ... 8/255 are steps 1-4). Every line starts at the
    clean point; the legend gives each perturbation's levels.

    Returns:
        ``Path(path)``.
    """
    from .plotting import plot_curves

    rows = list(rows)
    if not rows:
        raise DataError("plot_sweep: no rows to plot")
    clean = [float(r["auc"]) for r in rows if r["perturbation"] == "clean"]
    order: dict[str, list[tuple[Any, float]]] = {}
    for r in rows:
        if r["perturbation"] != "clean":
            order.setdefault(str(r["perturbation"]), []).append((r["level"], float(r["auc"])))
    series: dict[str, tuple[list[float], list[float]]] = {}
    longest = max((len(v) for v in order.values()), default=1)
    if clean:
        series["clean"] = ([0.0, float(longest)], [clean[0], clean[0]])
    for name, points in order.items():
        xs = ([0.0] if clean else []) + [float(k + 1) for k in range(len(points))]
        ys = ([clean[0]] if clean else []) + [a for _, a in points]
        series[f"{name} ({', '.join(_fmt_level(name, lv) for lv, _ in points)})"] = (xs, ys)
    return plot_curves(
        series,
        path,
        xlabel="severity step (0 = clean)",
        ylabel="ROC AUC",
        title=title or "AUC under perturbations",
        ylim=(0.0, 1.0),
        size=(560, 480),
    )


# -- internals -------------------------------------------------------------------------------
def _fmt_level(name: str, level: Any) -> str:
    return f"{level:g}/255" if name in ADVERSARIAL else f"{level:g}"


def _plan(perturbations: Sequence[str] | Mapping[str, Sequence[float]] | None) -> list[tuple[str, tuple[Any, ...]]]:
    if perturbations is None:
        asked: dict[str, tuple[Any, ...]] = dict(PERTURBATIONS)
        if not h264_available():
            asked.pop("video")
    elif isinstance(perturbations, Mapping):
        asked = {str(k): tuple(v) for k, v in perturbations.items()}
    elif isinstance(perturbations, str):
        asked = {perturbations: PERTURBATIONS.get(perturbations, ())}
    else:
        asked = {str(n): PERTURBATIONS.get(str(n), ()) for n in perturbations}
    unknown = [n for n in asked if n not in PERTURBATIONS]
    if unknown:
        raise DeepfakeDetectError(f"unknown perturbation(s) {unknown}; known: {list(PERTURBATIONS)}")
    for name, levels in asked.items():
        if not levels:
            raise DeepfakeDetectError(f"perturbation {name!r}: no levels given")
        for lv in levels:
            if not isinstance(lv, (int, float)) or not math.isfinite(lv) or not _valid_level(name, lv):
                raise DeepfakeDetectError(f"perturbation {name!r}: bad level {lv!r} ({_LEVEL_HELP[name]})")
    asked.pop("clean", None)
    return [("clean", (0,))] + list(asked.items())


_LEVEL_HELP = {
    "clean": "use 0",
    "jpeg": "a quality from 1 to 95",
    "blur": "a sigma in pixels >= 0",
    "resize": "a factor in (0, 1]",
    "noise": "a sigma in 0-255 units >= 0",
    "fgsm": "an epsilon in 1/255 units >= 0",
    "pgd": "an epsilon in 1/255 units >= 0",
    "crop": "a side in (0, 1]",
    "video": "an H.264 CRF from 0 to 51",
}


def _valid_level(name: str, lv: float) -> bool:
    if name == "clean":
        return lv == 0
    if name == "jpeg":
        return 1 <= lv <= 95
    if name in ("resize", "crop"):
        return 0 < lv <= 1
    if name == "video":
        return 0 <= lv <= 51
    return lv >= 0


def _stratified_limit(data: LabeledData, limit: int | None, seed: int) -> LabeledData:
    """At most ``limit`` items, each class in proportion (at least one of each when present)."""
    if limit is None or limit >= len(data):
        return data
    if limit < 2:
        raise DeepfakeDetectError(f"limit={limit}: at least 2 images (one real, one fake) are needed")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(data.labels == c) for c in (0, 1)]
    n_fake = int(round(limit * len(by_class[1]) / len(data)))
    if len(by_class[0]) and len(by_class[1]):
        n_fake = min(max(n_fake, 1), limit - 1)
    n_fake = min(n_fake, len(by_class[1]))
    n_real = min(limit - n_fake, len(by_class[0]))
    keep = list(rng.choice(by_class[0], n_real, replace=False)) + list(rng.choice(by_class[1], n_fake, replace=False))
    return data.subset(sorted(int(i) for i in keep))


def _rng(seed: int, name: str, level_index: int, image_index: int) -> np.random.Generator:
    return np.random.default_rng((int(seed), _CODES[name], level_index, image_index))


def _score(detector: Detector, batch01: torch.Tensor) -> np.ndarray:
    """P(fake) for an (N, 3, H, W) batch in [0, 1], through the detector's inference engine
    (its ``predict_tensor``: the optimised torch model, as ``predict`` runs it)."""
    x = normalize(batch01.float(), detector.config).contiguous(memory_format=torch.channels_last)
    return detector.engine.predict_tensor(x).float().cpu().numpy()


def _attack(
    detector: Detector, x01: torch.Tensor, y: torch.Tensor, name: str, eps: float, rngs: list[np.random.Generator]
) -> torch.Tensor:
    """FGSM or PGD (L-inf radius ``eps`` in [0, 1] units) against the true labels ``y`` (N,)."""
    if eps <= 0:
        return x01
    model = detector.model
    device, dtype = detector.device, param_dtype(model)
    x = x01.to(device, dtype)
    target = y.to(device, torch.float32)

    def gradient_sign(x_adv: torch.Tensor) -> torch.Tensor:
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            z = fake_log_odds(model(normalize(x_adv, detector.config)), detector.config.output)
            loss = F.binary_cross_entropy_with_logits(z, target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
        return grad.sign()

    with frozen(model):
        if name == "fgsm":
            adv = (x + eps * gradient_sign(x)).clamp(0.0, 1.0)
        else:
            start = np.stack([r.uniform(-eps, eps, size=tuple(x.shape[1:])) for r in rngs]).astype(np.float32)
            adv = (x + torch.from_numpy(start).to(device, dtype)).clamp(0.0, 1.0)
            step = eps / 4.0
            for _ in range(PGD_STEPS):
                adv = adv + step * gradient_sign(adv)
                adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0.0, 1.0)
    return adv.detach().float().cpu()
