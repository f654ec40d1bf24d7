"""Training augmentations, applied to images already at the detector's input size.

Presets: ``"camp"`` (horizontal and vertical flips, the camp baseline's), ``"default"``
(flip, random resized crop, small rotation, colour jitter, JPEG re-compression, Gaussian
blur: the artefacts a detector meets in the wild), ``"crossdomain"`` (the same, plus crops
from tight to loose and more frequent blur, down-scaling and compression on both classes, so
that neither crop scale nor sharpness can stand in for "fake"), ``"crossscale"`` (crossdomain
with crops down to half the side, as tight as the inner-face crops of other face detectors,
and stronger JPEG), ``"crossvideo"`` (crossscale with tighter crops and, instead of JPEG
for some images, an H.264 round trip as a video frame; needs PyAV, extra ``video``),
``"none"``. A callable
``f(image: PIL.Image, rng: numpy.random.Generator) -> PIL.Image`` (or a one-argument
callable such as a torchvision transform on PIL images) is accepted too.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from typing import Any, Union

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from .errors import DeepfakeDetectError, MissingDependencyError
from .video import h264_available, reencode_h264

__all__ = [
    "Augment",
    "get_augment",
    "camp_augment",
    "default_augment",
    "crossdomain_augment",
    "crossscale_augment",
    "crossvideo_augment",
    "center_crop",
    "PRESETS",
]

Augment = Callable[[Image.Image, np.random.Generator], Image.Image]


def camp_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Random horizontal and vertical flips, each with probability 1/2."""
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return img


def _rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotation by up to 8 degrees either way, the corners filled with the mean colour."""
    return img.rotate(
        float(rng.uniform(-8, 8)),
        resample=Image.Resampling.BILINEAR,
        fillcolor=tuple(int(c) for c in np.asarray(img).reshape(-1, 3).mean(0)),
    )


def _jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation each scaled by 0.8-1.2."""
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(float(rng.uniform(0.8, 1.2)))
    return img


def _jpeg(img: Image.Image, rng: np.random.Generator, min_quality: int = 40) -> Image.Image:
    """JPEG re-compression at quality ``min_quality``-95."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(min_quality, 96)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def default_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Flip; resized crop (80-100 % area); rotation up to 8 degrees; colour jitter;
    JPEG re-compression at quality 40-95; Gaussian blur. Output keeps the input size.

    Geometric resampling is applied sparingly (30 % and 20 % of images): it smooths the
    pixel-level traces of generators that detectors rely on."""
    w, h = img.size
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        area = rng.uniform(0.8, 1.0)
        ratio = np.exp(rng.uniform(np.log(0.9), np.log(1.1)))
        cw = int(round(min(w, w * np.sqrt(area * ratio))))
        ch = int(round(min(h, h * np.sqrt(area / ratio))))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.2:
        img = _rotate(img, rng)
    if rng.random() < 0.5:
        img = _jitter(img, rng)
    if rng.random() < 0.3:
        img = _jpeg(img, rng)
    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.1, 1.2))))
    return img


def center_crop(img: Image.Image, side: float, *, center: tuple[float, float] = (0.5, 0.55)) -> Image.Image:
    """The box of ``side`` times the image's width and height around ``center`` (fractions of
    width and height; the default sits a little below the middle, where a face crop's inner
    face is), resized back to the image's size (bilinear). ``side`` 1.0 returns the image."""
    if not 0.0 < side <= 1.0:
        raise DeepfakeDetectError(f"side={side!r}: expected a fraction in (0, 1]")
    if side == 1.0:
        return img
    return img.resize(img.size, Image.Resampling.BILINEAR, box=_center_box(img.size, side, center))


def _center_box(size: tuple[int, int], side: float, center: tuple[float, float]) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom, in pixels) that :func:`center_crop` cuts from an
    image of ``size``: ``side`` times its width and height around ``center``, kept inside it."""
    w, h = size
    cw, ch = max(1, int(round(w * side))), max(1, int(round(h * side)))
    x0 = int(round(min(max(center[0] * w - cw / 2, 0), w - cw)))
    y0 = int(round(min(max(center[1] * h - ch / 2, 0), h - ch)))
    return x0, y0, x0 + cw, y0 + ch


def _cross_augment(
    img: Image.Image,
    rng: np.random.Generator,
    *,
    crop_p: float,
    side_in_area: bool,
    min_side: float,
    down_shift: float,
    jpeg_min: int,
    h264_p: float = 0.0,
) -> Image.Image:
    w, h = img.size
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < crop_p:
        # crossdomain draws the crop's area uniformly (its v2-v4 recipe); crossscale its side
        side = float(np.sqrt(rng.uniform(min_side, 1.0))) if side_in_area else float(rng.uniform(min_side, 1.0))
        center = (0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, down_shift))
        img = center_crop(img, side, center=center)
    if rng.random() < 0.2:
        img = _rotate(img, rng)
    if rng.random() < 0.5:
        img = _jitter(img, rng)
    if rng.random() < 0.2:
        f = rng.uniform(0.4, 0.9)
        small = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
        img = small.resize((w, h), Image.Resampling.BILINEAR)
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.5))))
    if rng.random() < h264_p:
        img = _h264(img, rng)
    elif rng.random() < 0.4:
        img = _jpeg(img, rng, jpeg_min)
    return img


def _h264(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An H.264 round trip (CRF 18-42, libx264 preset "medium" or "veryfast") at 0.6-1.0 of
    the size, resized back: a face cut from a compressed video frame, whose macroblocks do not
    line up with the crop's pixel grid."""
    w, h = img.size
    f = float(rng.uniform(0.6, 1.0))
    small = img.resize((max(2, round(w * f)), max(2, round(h * f))), Image.Resampling.BILINEAR) if f < 0.98 else img
    coded = reencode_h264(small, int(rng.integers(18, 43)), preset=str(rng.choice(["medium", "veryfast"])))
    return coded.resize((w, h), Image.Resampling.BILINEAR) if coded.size != (w, h) else coded


def crossdomain_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """For training on several sources: flip; with probability 1/2 a crop of 45-100 % of the
    area near the centre (a loose FFHQ-like crop becomes a tight DFDC-like one); rotation up
    to 8 degrees (20 %); colour jitter (50 %); down- and up-scaling by 0.4-0.9 (20 %);
    Gaussian blur (20 %); JPEG re-compression at quality 40-95 (40 %). Output keeps the
    input size."""
    return _cross_augment(img, rng, crop_p=0.5, side_in_area=True, min_side=0.45, down_shift=0.05, jpeg_min=40)


def crossscale_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """:func:`crossdomain_augment` for any crop scale: with probability 0.6 a crop of 0.45-1.0
    of the side (uniform in the side, centred 0.5-0.6 down the image), so tight inner-face
    crops and loose ones are both common, and JPEG re-compression down to quality 30."""
    return _cross_augment(img, rng, crop_p=0.6, side_in_area=False, min_side=0.45, down_shift=0.1, jpeg_min=30)


def crossvideo_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """:func:`crossscale_augment` with crops more often (0.7) and down to 0.4 of the side, and
    with probability 0.3 an H.264 round trip (CRF 18-42, at 0.6-1.0 of the size) in place of
    the JPEG step: faces cut from compressed video.

    Raises:
        MissingDependencyError: PyAV with libx264 is not installed (extra ``video``).
    """
    if not h264_available():
        raise MissingDependencyError("av", "video", 'the "crossvideo" augmentation')
    return _cross_augment(img, rng, **_CROSSVIDEO)


#: :func:`crossvideo_augment`'s settings of :func:`_cross_augment`.
_CROSSVIDEO: dict[str, Any] = dict(
    crop_p=0.7, side_in_area=False, min_side=0.4, down_shift=0.1, jpeg_min=30, h264_p=0.3
)


def _none(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img


PRESETS: dict[str, Augment] = {
    "none": _none,
    "camp": camp_augment,
    "default": default_augment,
    "crossdomain": crossdomain_augment,
    "crossscale": crossscale_augment,
    "crossvideo": crossvideo_augment,
}


def get_augment(augment: Union[str, Callable[..., Any], None]) -> Augment | None:
    """Resolve a preset name or a callable; ``None``/``"none"`` -> ``None`` (no augmentation)."""
    if augment is None or augment == "none":
        return None
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise DeepfakeDetectError(f"augment={augment!r}: expected one of {sorted(PRESETS)} or a callable")
        return PRESETS[augment]
    if not callable(augment):
        raise DeepfakeDetectError(f"augment={augment!r}: expected a preset name or a callable")
    try:
        n_args = len(
            [
                p
                for p in inspect.signature(augment).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        )
    except (TypeError, ValueError):
        n_args = 1
    if n_args >= 2:
        return augment
    return lambda img, rng: augment(img)


def apply_augment(augment: Augment, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augment an (H, W, 3) uint8 array; the result has the same shape."""
    h, w = image.shape[:2]
    out = augment(Image.fromarray(image), rng)
    if isinstance(out, Image.Image):
        if out.mode != "RGB":
            out = out.convert("RGB")
        if out.size != (w, h):
            out = out.resize((w, h), Image.Resampling.BILINEAR)
        return np.array(out, dtype=np.uint8)
    arr = np.asarray(out)
    if arr.shape != image.shape or arr.dtype != np.uint8:
        raise DeepfakeDetectError(
            f"augment returned {type(out).__name__} {getattr(arr, 'shape', '')}; "
            f"expected a PIL image or a uint8 array of shape {image.shape}"
        )
    return arr
