"""Pseudo-fakes from real faces: Self-Blended Images (SBI).

After Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022: a real
face is blended with a slightly altered copy of itself inside a soft face-shaped mask. The
result carries the generic traces of face swapping (a blending boundary, a colour and
sharpness mismatch, a small misalignment) without any identity change, so a detector trained
on ``real vs. self-blended`` learns those traces rather than one generator's fingerprints.

This is an independent implementation in numpy and Pillow (OpenCV is used only, if
installed, to find the face with a Haar cascade):

* :func:`self_blend` turns one RGB image into ``(pseudo_fake, mask)``;
* :func:`self_blended_pairs` makes a fixed evaluation set: each real image and one
  pseudo-fake of it;
* :class:`SelfBlendedDataset` wraps a list of real images as a dataset of pseudo-fakes
  (label 1), generated on the fly and reproducible per ``(seed, epoch, index)``;
* :func:`face_swap` puts one person's face on another's head, the classic landmark face
  swap (and Face X-ray's "blended images", Li et al., CVPR 2020); :func:`face_swapped_pairs`
  makes a fixed evaluation set of them: a manipulation with an identity change, which
  self-blends never show a detector.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from torch.utils.data import Dataset

from .data.images import load_image
from .errors import DataError, DeepfakeDetectError, MissingDependencyError
from .face import detect_largest_face
from .landmarks import HULL_REGIONS, face_landmarks, hull_mask, landmarks_available

__all__ = [
    "self_blend",
    "self_blended_pairs",
    "locate_face",
    "SelfBlendedDataset",
    "face_swap",
    "face_swapped_pairs",
    "face_layout",
    "BLEND_RATIOS",
    "HULL_REGION_WEIGHTS",
]

#: The blend ratio (maximum mask value) is drawn uniformly from these; full blends are the
#: most frequent.
BLEND_RATIOS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
#: How often each landmark hull (:data:`deepfake_detect.landmarks.HULL_REGIONS`: full,
#: extended, lower, inner) is the blended region.
HULL_REGION_WEIGHTS: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)

Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# where the face is


def _detect_face(rgb: np.ndarray) -> Box | None:
    """The largest frontal face (OpenCV's Haar cascade, via :mod:`deepfake_detect.face`) at
    least 30 % of the shorter side, as ``(x0, y0, x1, y1)``; None without OpenCV, for small
    images, or when no face is found."""
    h, w = rgb.shape[:2]
    if min(h, w) < 48:
        return None
    try:
        box = detect_largest_face(Image.fromarray(np.ascontiguousarray(rgb), "RGB"), min_size_fraction=0.3)
    except MissingDependencyError:
        return None
    return None if box is None else tuple(float(v) for v in box)  # type: ignore[return-value]


def locate_face(image: Any, face_box: Sequence[float] | None = None) -> tuple[Box | None, np.ndarray | None]:
    """Where :func:`self_blend` puts its mask: ``(face box or None, 468 landmarks or None)``.

    The box is ``face_box`` or the largest face OpenCV's Haar cascade finds (the ``face``
    extra); the landmarks come from MediaPipe Face Mesh in that box (or in the whole image,
    taken as a face crop), when ``ai-edge-litert`` is installed and it finds a face.
    """
    img = load_image(image)
    w, h = img.size
    box = _check_box(face_box, w, h) if face_box is not None else _detect_face(np.asarray(img))
    points = face_landmarks(img, box) if landmarks_available() else None
    return box, points


def _check_box(face_box: Any, w: int, h: int) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in face_box)
    except (TypeError, ValueError):
        raise DataError(f"face_box must be four numbers (x0, y0, x1, y1), got {face_box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise DataError(f"face_box must be finite numbers, got {face_box!r}")
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
    if not (x1 > x0 and y1 > y0):
        raise DataError(f"face_box {face_box!r} is empty: expected x0 < x1 and y0 < y1 (pixels)")
    if not (cx1 > cx0 and cy1 > cy0):
        raise DataError(f"face_box {face_box!r} lies outside the {w}x{h} image")
    return x0, y0, x1, y1


# --------------------------------------------------------------------------------------------
# mask


def _ellipse_region(w: int, h: int, box: Box | None, detected: bool, rng: np.random.Generator) -> np.ndarray:
    """A deformed ellipse over the face (the fallback without landmarks), bool (h, w)."""
    if box is not None:
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ax, ay = bw / 2, bh / 2
        if detected:  # Haar boxes stop around the chin and brows: reach a little lower
            cy += 0.05 * bh
            ay *= 1.1
        cx += rng.uniform(-0.03, 0.03) * bw
        cy += rng.uniform(-0.03, 0.03) * bh
        ax *= rng.uniform(0.9, 1.05)
        ay *= rng.uniform(0.9, 1.05)
    else:  # aligned face crop (FFHQ-like): the face fills the centre
        cx = w * (0.5 + rng.uniform(-0.02, 0.02))
        cy = h * (0.55 + rng.uniform(-0.03, 0.03))
        ax = 0.3 * w * rng.uniform(0.85, 1.1)
        ay = 0.4 * h * rng.uniform(0.85, 1.1)
    # dilation / erosion of the whole region
    grow = rng.uniform(0.85, 1.1)
    ax, ay = max(ax * grow, 0.5), max(ay * grow, 0.5)
    angle = math.radians(rng.uniform(-10.0, 10.0))
    ca, sa = math.cos(angle), math.sin(angle)

    xs = (np.arange(w, dtype=np.float32) + 0.5 - cx)[None, :]
    ys = (np.arange(h, dtype=np.float32) + 0.5 - cy)[:, None]
    u = (xs * ca + ys * sa) / ax
    v = (ys * ca - xs * sa) / ay
    rho = np.sqrt(u * u + v * v)
    if rng.random() < 0.7:  # elastic: a smooth random wobble of the outline
        theta = np.arctan2(v, u)
        boundary = np.ones_like(theta)
        for k in range(2, 6):
            amp = rng.uniform(0.0, 0.12) / k
            boundary += amp * np.cos(k * theta + rng.uniform(0.0, 2 * math.pi))
        inside = rho <= boundary
    else:
        inside = rho <= 1.0
    # a random skew of the mask towards one side
    if rng.random() < 0.3:
        side = rng.integers(4)
        cut = rng.uniform(0.55, 0.9)
        inside &= (u if side < 2 else v) * (1 if side % 2 else -1) <= cut * 1.2
    return inside


def _hull_region(w: int, h: int, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The convex hull of a random face region (:data:`HULL_REGION_WEIGHTS`), scaled by
    0.9-1.1 per axis about its centre and elastically deformed: bool (h, w)."""
    region = HULL_REGIONS[int(rng.choice(len(HULL_REGIONS), p=HULL_REGION_WEIGHTS))]
    centre = landmarks.mean(0)
    points = (landmarks - centre) * rng.uniform(0.9, 1.1, 2).astype(np.float32) + centre
    inside = hull_mask(points, (w, h), region, rng=rng) > 0.5  # type: ignore[arg-type]
    return _elastic(inside, rng, float(np.ptp(landmarks, axis=0).max()))


def _elastic(inside: np.ndarray, rng: np.random.Generator, face_size: float) -> np.ndarray:
    """Move each pixel of a mask along a smooth random field (up to ~4 % of the face size),
    as the paper's elastic mask deformation."""
    h, w = inside.shape
    amp = rng.uniform(0.0, 0.04) * max(face_size, 1.0)
    field = []
    for _ in range(2):
        coarse = rng.uniform(-1.0, 1.0, (4, 4)).astype(np.float32)
        field.append(np.asarray(Image.fromarray(coarse, "F").resize((w, h), Image.Resampling.BICUBIC)) * amp)
    ys = np.clip(np.rint(np.arange(h)[:, None] + field[1]), 0, h - 1).astype(np.intp)
    xs = np.clip(np.rint(np.arange(w)[None, :] + field[0]), 0, w - 1).astype(np.intp)
    return inside[ys, xs]


def _soften(inside: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur a bool region into a soft mask, float32 with maximum 1 (or all 0)."""
    h, w = inside.shape
    mask = Image.fromarray(inside.astype(np.uint8) * 255, "L")
    scale = min(w, h)
    mask = mask.filter(ImageFilter.GaussianBlur(max(0.3, rng.uniform(0.01, 0.05) * scale)))
    if rng.random() < 0.5:  # keep the soft edge inside the region (as an erosion), blur again
        arr = np.asarray(mask)
        mask = Image.fromarray(np.where(arr >= 250, 255, 0).astype(np.uint8), "L")
        mask = mask.filter(ImageFilter.GaussianBlur(max(0.3, rng.uniform(0.01, 0.04) * scale)))
    out = np.asarray(mask, dtype=np.float32) / 255.0
    peak = float(out.max())
    if peak > 0:
        out /= peak
    return out


def _face_mask(
    w: int, h: int, box: Box | None, detected: bool, landmarks: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """The soft blend mask, float32 (h, w) with maximum 1: a landmark hull when landmarks
    are known, else an ellipse."""
    inside = _hull_region(w, h, landmarks, rng) if landmarks is not None else None
    if inside is None or not inside.any():
        inside = _ellipse_region(w, h, box, detected, rng)
    return _soften(inside, rng)


# --------------------------------------------------------------------------------------------
# the altered copy


def _colour(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < 0.5:  # per-channel shift
        arr = arr + rng.uniform(-20.0, 20.0, 3).astype(np.float32)
    # brightness and contrast, always
    mean = float(arr.mean())
    contrast = rng.uniform(0.85, 1.15)
    brightness = rng.uniform(-0.1, 0.1) * 255.0
    arr = (arr - mean) * contrast + mean + brightness
    img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:  # hue and saturation
        hsv = np.asarray(img.convert("HSV")).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-6, 7))) % 256
        hsv[..., 1] = np.clip(np.rint(hsv[..., 1] * rng.uniform(0.85, 1.15)), 0, 255)
        img = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    return img


def _sharpness(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    scale = max(1.0, min(w, h) / 256.0)
    kind = rng.integers(3)
    if kind == 0:  # blur
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.3) * scale))
    if kind == 1:  # down- and up-scaling (loss of detail)
        f = rng.uniform(0.4, 0.75)
        small = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
        return small.resize((w, h), Image.Resampling.BILINEAR)
    return ImageEnhance.Sharpness(img).enhance(rng.uniform(1.8, 3.5))


def _geometric(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scale by 0.95-1.05 about the centre and shift by up to 3 % (edges replicated)."""
    w, h = img.size
    s = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    pad = int(math.ceil(0.1 * max(w, h))) + 2
    padded = Image.fromarray(np.pad(np.asarray(img), ((pad, pad), (pad, pad), (0, 0)), mode="edge"), "RGB")
    cx, cy = w / 2.0, h / 2.0
    # output pixel p maps to input (p - c - t) / s + c, shifted by the padding
    data = (1 / s, 0.0, (-cx - tx) / s + cx + pad, 0.0, 1 / s, (-cy - ty) / s + cy + pad)
    return padded.transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


def _alter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _geometric(_sharpness(_colour(img, rng), rng), rng)


# --------------------------------------------------------------------------------------------
# public API


def _blend(
    img: Image.Image,
    rng: np.random.Generator,
    box: Box | None,
    detected: bool,
    landmarks: np.ndarray | None,
    transformed: str,
) -> tuple[Image.Image, np.ndarray]:
    w, h = img.size
    original = np.asarray(img)
    if transformed == "random":
        transformed = "source" if rng.random() < 0.5 else "target"
    altered = np.asarray(_alter(img, rng))
    source, target = (altered, original) if transformed == "source" else (original, altered)
    mask = _face_mask(w, h, box, detected, landmarks, rng)
    mask *= float(rng.choice(BLEND_RATIOS))
    m = mask[..., None]
    blended = np.rint(source.astype(np.float32) * m + target.astype(np.float32) * (1.0 - m))
    out = np.where(m > 0, np.clip(blended, 0, 255).astype(np.uint8), target)
    return Image.fromarray(out, "RGB"), mask


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _non_negative(name: str, value: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or number != value:
        raise DeepfakeDetectError(f"{name}={value!r}: must be a non-negative int")
    return number


def _check_transformed(transformed: str) -> str:
    if transformed not in ("random", "source", "target"):
        raise DeepfakeDetectError(f"transformed={transformed!r}: expected 'random', 'source' or 'target'")
    return transformed


def self_blend(
    image: Image.Image,
    *,
    rng: np.random.Generator | int | None = None,
    face_box: Sequence[float] | None = None,
    face: tuple[Sequence[float] | None, np.ndarray | None] | None = None,
    transformed: Literal["random", "source", "target"] = "random",
) -> tuple[Image.Image, np.ndarray]:
    """Make a self-blended pseudo-fake of a real face image.

    The *source* (the face pasted in) and the *target* (the background it is pasted onto) are
    both ``image``; one of them is altered: brightness/contrast always, with probability 1/2
    each an RGB channel shift and a hue/saturation shift, then one sharpness change (Gaussian
    blur, down-and-up scaling, or sharpening), then a small geometric transform (scale
    0.95-1.05 about the centre, shift up to 3 % of the size). The blend is
    ``source * mask + target * (1 - mask)``.

    The mask follows the face's landmarks, as in the paper: the convex hull of the 468 Face
    Mesh points of one region drawn with :data:`HULL_REGION_WEIGHTS` (the whole face, the
    face with a raised forehead, the lower face, or the inner features), scaled by 0.9-1.1
    per axis and elastically deformed. Landmarks come from ``face`` if given, else from
    :func:`locate_face` (needs the ``face`` extra). Without landmarks the mask is an ellipse
    over ``face_box``, the largest face OpenCV's Haar cascade finds, or the centre of an
    aligned face crop (centre ``(0.5 W, 0.55 H)``, semi-axes ``0.3 W x 0.4 H``), its outline
    deformed by a random wobble, growth or cut. Either region is then blurred with a
    Gaussian of random width (sometimes eroded first), scaled to a maximum of 1 and
    multiplied by a blend ratio drawn from :data:`BLEND_RATIOS`.

    Args:
        image: the real face, a PIL image (any mode is converted to RGB; a path or ``uint8``
            HWC array is accepted too, read with :func:`deepfake_detect.data.load_image`).
        rng: a numpy Generator (or an int seed); the same seed gives the same result.
            ``None``: fresh randomness.
        face_box: ``(x0, y0, x1, y1)`` in pixels: where to look for landmarks, and the
            ellipse's box when none are found.
        face: ``(box, landmarks)`` as :func:`locate_face` returns them (either may be
            ``None``), to skip the search when blending the same image again.
        transformed: which side is altered: ``"random"`` (either, with probability 1/2, as
            in the paper), ``"source"`` (the pasted face; then every pixel where
            ``mask == 0`` is exactly the original) or ``"target"`` (the background).

    Returns:
        ``(fake, mask)``: an RGB image of the input's size and the float32 ``(H, W)`` blend
        mask in ``[0, 1]`` (the weight of the source at each pixel).

    Raises:
        ImageLoadError: ``image`` cannot be read or converted to RGB.
        DataError: ``face_box`` is not four numbers or lies outside the image, or
            the landmarks in ``face`` are not a (468, 2) array.
        DeepfakeDetectError: ``transformed`` is not one of the three choices.
    """
    img = load_image(image)
    rng = _as_rng(rng)
    _check_transformed(transformed)
    if face is not None:
        box, landmarks = face
        box = _check_box(box, *img.size) if box is not None else None
        return _blend(img, rng, box, box is not None, landmarks, transformed)
    box, landmarks = locate_face(img, face_box)
    return _blend(img, rng, box, face_box is None and box is not None, landmarks, transformed)


def self_blended_pairs(
    real_images: Sequence[str | os.PathLike[str] | Image.Image | np.ndarray],
    *,
    seed: int = 0,
) -> list[tuple[Image.Image, int]]:
    """A fixed, reproducible evaluation set from real images: each real image (label 0)
    followed by one self-blended pseudo-fake of it (label 1).

    Fake ``i`` is ``self_blend(real_images[i], rng=numpy.random.default_rng([seed, i]))``,
    so the set is the same on every call and machine with the same ``face`` extra (with it,
    the mask follows the face's landmarks; without it, an ellipse). Pass the result to ``Detector.evaluate`` to
    measure how a detector does on a blending manipulation it may never have seen.

    Args:
        real_images: image paths, PIL images or ``uint8`` HWC arrays of real faces.
        seed: a non-negative int.

    Returns:
        ``2 * len(real_images)`` pairs ``(RGB PIL image, label)``, decoded in memory.

    Raises:
        ImageLoadError: an image cannot be read; the message names it.
        DeepfakeDetectError: ``seed`` is not a non-negative int.
    """
    seed = _non_negative("seed", seed)
    out: list[tuple[Image.Image, int]] = []
    for i, source in enumerate(real_images):
        image = load_image(source)
        fake, _ = self_blend(image, rng=np.random.default_rng([seed, i]))
        out += [(image, 0), (fake, 1)]
    return out


class SelfBlendedDataset(Dataset):
    """Real face images turned into self-blended pseudo-fakes, generated on the fly.

    ``dataset[i]`` is ``(fake: PIL.Image, 1)``, made by :func:`self_blend` from
    ``real_images[i]`` with a Generator seeded from ``(seed, epoch, i)``: the same item is
    the same image within an epoch, and a different blend in the next one after
    :meth:`set_epoch`. Mix it with real images (label 0) for SBI training, e.g.
    ``ConcatDataset([reals, SelfBlendedDataset(real_paths)])``.

    Face boxes and landmarks (:func:`locate_face`) are cached per index (per process).

    Args:
        real_images: image paths, PIL images or ``uint8`` arrays.
        seed: a non-negative int.
        transformed: passed to :func:`self_blend`.
    """

    def __init__(
        self,
        real_images: Sequence[str | os.PathLike[str] | Image.Image | np.ndarray],
        *,
        seed: int = 0,
        transformed: Literal["random", "source", "target"] = "random",
    ) -> None:
        self.images = list(real_images)
        self.seed = _non_negative("seed", seed)
        self.epoch = 0
        self.transformed = _check_transformed(transformed)
        self._faces: dict[int, tuple[Box | None, np.ndarray | None]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: each epoch draws new blends, reproducibly."""
        self.epoch = _non_negative("epoch", epoch)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def targets(self) -> list[int]:
        """Every label: 1 (fake)."""
        return [1] * len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        n = len(self.images)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} images")
        img = load_image(self.images[i])
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if i not in self._faces:
            self._faces[i] = locate_face(img)
        box, points = self._faces[i]
        fake, _ = _blend(img, rng, box, box is not None, points, self.transformed)
        return fake, 1


# --------------------------------------------------------------------------------------------
# face swaps: another person's face


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) mapping ``src`` points onto ``dst``
    in least squares (Umeyama's closed form)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, float(np.sign(np.linalg.det(u @ vt))) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sigma) @ sign) / max(float(s.var(0).sum()), 1e-12))
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def _landmarks_of(image: Image.Image, given: np.ndarray | None, which: str) -> np.ndarray:
    if given is not None:
        pts = np.asarray(given, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise DataError(f"{which}_landmarks must be a finite (468, 2) array, got shape {pts.shape}")
        return pts
    if not landmarks_available():
        raise MissingDependencyError("ai-edge-litert", "face", "face_swap (face landmarks)")
    _, found = locate_face(image)
    if found is None:
        raise DataError(f"face_swap: no face landmarks found in the {which} image")
    return np.asarray(found, dtype=np.float64)


def face_layout(points: np.ndarray) -> np.ndarray:
    """Landmarks ``(N, 2)`` centred and scaled to unit norm: the face's layout (pose and
    expression) wherever and however large it is. Faces with close layouts swap well."""
    centred = np.asarray(points, dtype=np.float64) - np.mean(points, axis=0)
    return centred / max(float(np.linalg.norm(centred)), 1e-9)


def face_swap(
    target: Any,
    source: Any,
    *,
    rng: np.random.Generator | int | None = None,
    target_landmarks: np.ndarray | None = None,
    source_landmarks: np.ndarray | None = None,
) -> tuple[Image.Image, np.ndarray]:
    """Put ``source``'s face on ``target``'s head: a landmark face swap.

    The source image is moved by the similarity transform (rotation, uniform scale, shift)
    that best maps its 468 Face Mesh landmarks onto the target's, its colours are matched to
    the target's inside the face (per-channel mean and standard deviation), and it is blended
    through the target's landmark hull, shrunk and feathered so that the seam lies (almost
    all) inside the face. Without ``rng`` the blend is fixed: the whole-face hull, shrunk by
    4 % of the face's size and feathered by a Gaussian of 3 %. With ``rng`` the hull region is drawn with
    :data:`HULL_REGION_WEIGHTS`, the shrink from 0-6 %, the feather from 1-5 %, and the colour
    match is skipped one time in five.

    Args:
        target: the face that keeps its head, hair and background (path, PIL image or array).
        source: the face pasted in, ideally another person in a similar pose.
        rng: a numpy Generator or int seed for the random blend; ``None``: the fixed one.
        target_landmarks, source_landmarks: ``(468, 2)`` pixel coordinates, to skip finding
            them (:func:`locate_face`).

    Returns:
        ``(fake, mask)``: an RGB image of ``target``'s size and the float32 ``(H, W)`` blend
        mask in ``[0, 1]`` (the weight of the source face).

    Raises:
        MissingDependencyError: landmarks are needed and the ``face`` extra is missing.
        DataError: no face landmarks in one of the images, or malformed given landmarks.
    """
    tgt, src = load_image(target), load_image(source)
    pts_t = _landmarks_of(tgt, target_landmarks, "target")
    pts_s = _landmarks_of(src, source_landmarks, "source")
    gen = None if rng is None else _as_rng(rng)
    w, h = tgt.size
    inverse = np.linalg.inv(np.vstack([_similarity(pts_s, pts_t), [0.0, 0.0, 1.0]]))[:2]
    moved = np.asarray(
        src.transform((w, h), Image.Transform.AFFINE, tuple(inverse.ravel()), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    base = np.asarray(tgt, dtype=np.float32)
    if gen is None:
        region, shrink, feather, match = "full", 0.04, 0.03, True
    else:
        region = HULL_REGIONS[int(gen.choice(len(HULL_REGIONS), p=HULL_REGION_WEIGHTS))]
        shrink, feather, match = gen.uniform(0.0, 0.06), gen.uniform(0.01, 0.05), bool(gen.random() < 0.8)
    inside = hull_mask(pts_t.astype(np.float32), (w, h), region, rng=gen) > 0.5  # type: ignore[arg-type]
    face_size = float(np.ptp(pts_t, axis=0).max())
    mask_img = Image.fromarray(inside.astype(np.uint8) * 255, "L")
    if round(shrink * face_size) >= 1:
        mask_img = mask_img.filter(ImageFilter.MinFilter(2 * round(shrink * face_size) + 1))
    mask_img = mask_img.filter(ImageFilter.GaussianBlur(max(0.5, feather * face_size)))
    mask = np.asarray(mask_img, dtype=np.float32) / 255.0
    core = mask > 0.5
    if match and core.sum() > 16:
        for c in range(3):
            ms, ss = moved[..., c][core].mean(), moved[..., c][core].std() + 1e-6
            mt, st = base[..., c][core].mean(), base[..., c][core].std()
            moved[..., c] = (moved[..., c] - ms) * (st / ss) + mt
    m = mask[..., None]
    out = np.clip(np.rint(moved * m + base * (1.0 - m)), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB"), mask


def face_swapped_pairs(
    real_images: Sequence[str | os.PathLike[str] | Image.Image | np.ndarray],
    *,
    groups: Sequence[Any] | None = None,
    seed: int = 0,
    candidates: int = 3,
) -> list[tuple[Image.Image, int]]:
    """A fixed evaluation set of face swaps among real images: each real image (label 0)
    followed by the fixed :func:`face_swap` of another image's face onto it (label 1).

    The face pasted onto image ``i`` is, as in Face X-ray, one whose landmarks (centred and
    scaled) lie close to image ``i``'s: one of its ``candidates`` nearest among the images of
    other ``groups`` (e.g. other videos or identities; default: every image its own group),
    drawn with ``numpy.random.default_rng([seed, i])``. Images without face landmarks are
    left out, with their fakes.

    Raises:
        MissingDependencyError: the ``face`` extra is missing.
        ImageLoadError: an image cannot be read; the message names it.
        DataError: fewer than two groups have a face, or ``groups`` has another length.
    """
    seed = _non_negative("seed", seed)
    if groups is not None and len(groups) != len(real_images):
        raise DataError(f"groups has {len(groups)} entries for {len(real_images)} images")
    if not landmarks_available():
        raise MissingDependencyError("ai-edge-litert", "face", "face_swapped_pairs (face landmarks)")
    images, points, names = [], [], []
    for i, item in enumerate(real_images):
        image = load_image(item)
        _, pts = locate_face(image)
        if pts is not None:
            images.append(image)
            points.append(np.asarray(pts, dtype=np.float64))
            names.append(groups[i] if groups is not None else i)
    if len(set(names)) < 2:
        raise DataError(f"face_swapped_pairs: faces found in {len(images)} images of fewer than two groups")
    flat = np.stack([face_layout(p).ravel() for p in points])
    out: list[tuple[Image.Image, int]] = []
    for i, image in enumerate(images):
        dist = np.linalg.norm(flat - flat[i], axis=1)
        dist[[j for j, g in enumerate(names) if g == names[i]]] = np.inf
        near = np.argsort(dist)[: max(1, min(candidates, int(np.isfinite(dist).sum())))]
        j = int(np.random.default_rng([seed, i]).choice(near))
        fake, _ = face_swap(image, images[j], target_landmarks=points[i], source_landmarks=points[j])
        out += [(image, 0), (fake, 1)]
    return out
