"""Face detection and cropping with OpenCV's Haar cascade (the ``face`` extra).

Detectors are trained on face crops; scoring a whole photo or video frame, where the face is a
small part, gives less reliable scores. ``crop_face`` cuts out the largest frontal face with a
margin; :meth:`Detector.predict(..., crop_faces=True) <deepfake_detect.Detector.predict>` and
:func:`deepfake_detect.video.predict_video` use it.

The Haar cascade (``haarcascade_frontalface_default.xml``, shipped with OpenCV) is fast and
needs no weights download, but finds mainly frontal, upright faces at least 24x24 pixels;
profile or strongly rotated faces are missed (the whole image is then used).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image

from .data.images import describe, load_image
from .data.preprocess import Preprocessor
from .errors import DeepfakeDetectError, ImageLoadError, MissingDependencyError

__all__ = ["detect_largest_face", "crop_face", "crop_face_box", "crop_region", "load_cascade", "NoFaceWarning", "FaceCropPreprocessor"]

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class NoFaceWarning(UserWarning):
    """No face was found in some inputs; they were scored whole. ``.inputs`` names them."""

    def __init__(self, inputs: list[str], *, total: int | None = None, what: str = "input(s)") -> None:
        self.inputs = inputs
        shown = ", ".join(inputs[:5]) + (f", ... ({len(inputs) - 5} more)" if len(inputs) > 5 else "")
        of = f" of {total}" if total is not None else ""
        super().__init__(f"no face found in {len(inputs)}{of} {what}, scored the whole image instead: {shown}")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("opencv-python-headless", "face", "face cropping") from None
    return cv2


def load_cascade() -> Any:
    """OpenCV's frontal-face Haar cascade (a ``cv2.CascadeClassifier``).

    A classifier should not be shared between threads; load one per thread.

    Raises:
        MissingDependencyError: OpenCV is not installed.
        DeepfakeDetectError: the cascade file is missing from the OpenCV installation.
    """
    cv2 = _cv2()
    path = cv2.data.haarcascades + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DeepfakeDetectError(f"cannot load OpenCV's face cascade {path}; reinstall opencv-python-headless")
    return cascade


def detect_largest_face(image: Any, *, cascade: Any = None) -> tuple[int, int, int, int] | None:
    """The largest frontal face in ``image``, as a pixel box ``(x0, y0, x1, y1)`` (x1, y1 exclusive).

    Args:
        image: a PIL image (or anything :func:`~deepfake_detect.data.load_image` reads).
        cascade: a classifier from :func:`load_cascade` to reuse (default: load one).

    Returns:
        The box of the largest detection, or ``None`` when no face is found.

    Raises:
        MissingDependencyError: OpenCV is not installed (``pip install 'deepfake-detect[face]'``).
    """
    cv2 = _cv2()
    img = image if isinstance(image, Image.Image) and image.mode == "RGB" else load_image(image)
    cascade = cascade if cascade is not None else load_cascade()
    gray = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2GRAY)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, w, h = (int(v) for v in max(faces, key=lambda f: int(f[2]) * int(f[3])))
    return (x, y, x + w, y + h)


def crop_face(image: Any, *, margin: float = 0.3, cascade: Any = None) -> tuple[Image.Image, bool]:
    """Crop the largest face with a margin, or return the whole image.

    Args:
        image: a PIL image (or anything :func:`~deepfake_detect.data.load_image` reads).
        margin: added on each side, as a fraction of the face box's width (left/right) and
            height (top/bottom); the crop is clipped to the image.
        cascade: a classifier from :func:`load_cascade` to reuse.

    Returns:
        ``(crop, True)`` when a face was found, ``(the whole RGB image, False)`` otherwise.
    """
    crop, box = crop_face_box(image, margin=margin, cascade=cascade)
    return crop, box is not None


def crop_face_box(image: Any, *, margin: float = 0.3, cascade: Any = None
                  ) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """As :func:`crop_face`, but returns the face box found (``(x0, y0, x1, y1)`` in the
    image's pixels, without the margin) instead of a flag: ``(crop, box)``, or
    ``(the whole RGB image, None)`` when no face is found.
    """
    if margin < 0:
        raise DeepfakeDetectError(f"margin={margin}: must be >= 0")
    img = image if isinstance(image, Image.Image) and image.mode == "RGB" else load_image(image)
    box = detect_largest_face(img, cascade=cascade)
    if box is None:
        return img, None
    return img.crop(crop_region(box, img.size, margin=margin)), box


def crop_region(box: tuple[int, int, int, int], image_size: tuple[int, int], *, margin: float = 0.3
                ) -> tuple[int, int, int, int]:
    """The region :func:`crop_face` cuts for a face ``box``: the box grown by ``margin`` of its
    width (left/right) and height (top/bottom), clipped to ``image_size = (W, H)``."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    W, H = image_size
    return (max(0, int(round(x0 - dx))), max(0, int(round(y0 - dy))),
            min(W, int(round(x1 + dx))), min(H, int(round(y1 + dy))))


class FaceCropPreprocessor:
    """A :class:`~deepfake_detect.data.Preprocessor` that crops the largest face first.

    ``prepare(item)`` loads the image, crops its largest face (:func:`crop_face`) and then
    prepares the crop as the wrapped preprocessor would; items without a face are prepared
    whole and their names collected in ``not_found`` (in no particular order; safe to call
    from several threads, each gets its own cascade). ``to_tensor`` and ``normalize`` are the
    wrapped preprocessor's.
    """

    def __init__(self, prep: Preprocessor, *, margin: float = 0.3) -> None:
        _cv2()  # fail early, in the caller's thread, when OpenCV is missing
        self.prep = prep
        self.margin = margin
        self.not_found: list[Any] = []
        self._local = threading.local()

    def prepare(self, item: Any) -> np.ndarray | torch.Tensor:
        return self.prepare_with_box(item)[0]

    def prepare_with_box(self, item: Any) -> tuple[np.ndarray | torch.Tensor, tuple[int, int, int, int] | None]:
        """``prepare(item)`` and the face box that was cropped (``None``: no face, the whole
        image was prepared), in the image's pixels."""
        img = _tensor_to_pil(item) if isinstance(item, torch.Tensor) else load_image(
            item, max_pixels=self.prep.max_pixels)
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = load_cascade()
        crop, box = crop_face_box(img, margin=self.margin, cascade=cascade)
        if box is None:
            self.not_found.append(item)
        return self.prep.prepare(crop), box

    def to_tensor(self, items: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        return self.prep.to_tensor(items)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        return self.prep.normalize(batch)

    def warn_not_found(self, items: list[Any], *, stacklevel: int = 3) -> None:
        """One :class:`NoFaceWarning` naming the items (in ``items`` order) that had no face."""
        if self.not_found:
            missed = {id(x) for x in self.not_found}
            names = [describe(x) for x in items if id(x) in missed]
            warnings.warn(NoFaceWarning(names, total=len(items)), stacklevel=stacklevel)


def _tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """A (3, H, W) float tensor in [0, 1] -> an RGB PIL image (8-bit)."""
    if t.ndim != 3 or t.shape[0] != 3 or not t.is_floating_point():
        raise ImageLoadError(describe(t), "tensor images must be float (3, H, W) RGB in [0, 1]")
    t = t.detach().to("cpu", torch.float32)
    if not torch.isfinite(t).all():
        raise ImageLoadError(describe(t), "tensor holds NaN or infinite values")
    arr = (t.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")

