"""Face detection and cropping with OpenCV's Haar cascade (the ``face`` extra).

Detectors are trained on face crops; scoring a whole photo or video frame, where the face is a
small part, gives less reliable scores. :func:`cut_face` cuts out the largest frontal face as a
:class:`CropPolicy` says (margin, square). The policy travels with a detector's config
(``DetectorConfig.face_crop``; the class is defined in :mod:`deepfake_detect.config`), and every
crop is made by that one function with it: :meth:`Detector.predict(..., crop_faces=True)
<deepfake_detect.Detector.predict>` and ``Detector.finetune(..., crop_faces=True)`` (through
:class:`FaceCropPreprocessor`), :func:`deepfake_detect.video.predict_video` and the service
(``deepfake-detect serve --crop-faces``); :func:`crop_face` and :func:`crop_face_box` are views of it.
Self-blending (:mod:`deepfake_detect.synth`) finds faces with the same detector.

The Haar cascade (``haarcascade_frontalface_default.xml``, shipped with OpenCV) is fast and
needs no weights download, but finds mainly frontal, upright faces at least 24x24 pixels;
profile or strongly rotated faces are missed (the whole image is then used).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import CropPolicy, DetectorConfig
from .data.images import describe, load_image
from .data.preprocess import Preprocessor, tensor_to_pil
from .errors import DeepfakeDetectError, MissingDependencyError

__all__ = [
    "detect_largest_face",
    "cut_face",
    "FaceCrop",
    "crop_face",
    "crop_face_box",
    "load_cascade",
    "thread_cascade",
    "NoFaceWarning",
    "FaceCropPreprocessor",
    "CropPolicy",
]

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class NoFaceWarning(UserWarning):
    """No face was found in some inputs; they were scored whole. ``.inputs`` names them."""

    def __init__(self, inputs: list[str], *, total: int | None = None, what: str = "input(s)") -> None:
        self.inputs = inputs
        shown = ", ".join(inputs[:5]) + (f", ... ({len(inputs) - 5} more)" if len(inputs) > 5 else "")
        of = f" of {total}" if total is not None else ""
        super().__init__(f"no face found in {len(inputs)}{of} {what}, scored the whole image instead: {shown}")


#: OpenCV's package bootstrap swaps modules in ``sys.modules`` while it loads: a thread that
#: imports cv2 while another one is importing it can get a half-loaded module (no
#: ``cv2.data``). Training's worker threads import it at the same moment, so it is serialised.
_CV2_IMPORT = threading.Lock()


def import_opencv(package: str = "opencv-python-headless", extra: str = "face", feature: str = "face cropping") -> Any:
    """The ``cv2`` module, imported by one thread at a time (see ``_CV2_IMPORT``).

    Raises:
        MissingDependencyError: naming ``package`` and the ``extra`` that installs it.
    """
    with _CV2_IMPORT:
        try:
            import cv2
        except ImportError:
            raise MissingDependencyError(package, extra, feature) from None
    return cv2


def load_cascade() -> Any:
    """OpenCV's frontal-face Haar cascade (a ``cv2.CascadeClassifier``).

    A classifier should not be shared between threads; load one per thread.

    Raises:
        MissingDependencyError: OpenCV is not installed.
        DeepfakeDetectError: the cascade file is missing from the OpenCV installation.
    """
    cv2 = import_opencv()
    path = cv2.data.haarcascades + CASCADE_FILE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DeepfakeDetectError(f"cannot load OpenCV's face cascade {path}; reinstall opencv-python-headless")
    return cascade


_local = threading.local()


def thread_cascade() -> Any:
    """This thread's cascade from :func:`load_cascade`, loaded once per thread (a classifier
    must not be shared between threads)."""
    if not hasattr(_local, "cascade"):
        _local.cascade = load_cascade()
    return _local.cascade


def detect_largest_face(
    image: Any, *, cascade: Any = None, min_size_fraction: float = 0.0
) -> tuple[int, int, int, int] | None:
    """The largest frontal face in ``image``, as a pixel box ``(x0, y0, x1, y1)`` (x1, y1 exclusive).

    Args:
        image: a PIL image (or anything :func:`~deepfake_detect.data.load_image` reads).
        cascade: a classifier from :func:`load_cascade` to use (default: this thread's,
            :func:`thread_cascade`).
        min_size_fraction: ignore faces smaller than this fraction of the image's shorter
            side (at least 24 pixels either way).

    Returns:
        The box of the largest detection, or ``None`` when no face is found.

    Raises:
        MissingDependencyError: OpenCV is not installed (``pip install 'deepfake-detect[face]'``).
    """
    cv2 = import_opencv()
    img = image if isinstance(image, Image.Image) and image.mode == "RGB" else load_image(image)
    cascade = cascade if cascade is not None else thread_cascade()
    gray = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2GRAY)
    side = max(24, int(min_size_fraction * min(img.size)))
    try:
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    except cv2.error:  # e.g. minSize larger than the image
        return None
    if len(faces) == 0:
        return None
    x, y, w, h = (int(v) for v in max(faces, key=lambda f: int(f[2]) * int(f[3])))
    return (x, y, x + w, y + h)


@dataclass(frozen=True)
class FaceCrop:
    """What :func:`cut_face` made of an image.

    Attributes:
        image: what is scored: the face crop, or the whole RGB image when no face was found.
        box: the face found, ``(x0, y0, x1, y1)`` in the image's pixels before the policy's
            margin; ``None``: no face.
        region: where ``image`` lies in the image, ``policy.crop_box(box, size)``; ``None``:
            no face (``image`` is the whole image).
    """

    image: Image.Image
    box: tuple[int, int, int, int] | None = None
    region: tuple[int, int, int, int] | None = None

    @property
    def found(self) -> bool:
        return self.box is not None


def cut_face(
    image: Any, policy: CropPolicy | None = None, *, margin: float | None = None, cascade: Any = None
) -> FaceCrop:
    """Cut the largest face out of ``image`` as ``policy`` says: the one face crop of the library
    (prediction, fine-tuning, videos and the service all make theirs here).

    Args:
        image: a PIL image (or anything :func:`~deepfake_detect.data.load_image` reads).
        policy: margin and squareness (default :class:`CropPolicy()`: square, margin 0.2);
            a detector's is ``CropPolicy.from_config(detector.config.face_crop)``.
        margin: overrides the policy's margin (kept for older calls).
        cascade: a classifier from :func:`load_cascade` to reuse (default: this thread's).

    Returns:
        A :class:`FaceCrop`: the crop ``image.crop(policy.crop_box(box, image.size))``, the
        face box and the crop's region; the whole RGB image (``box`` and ``region`` ``None``)
        when no face is found.
    """
    policy = policy or CropPolicy()
    if margin is not None:
        if margin < 0:
            raise DeepfakeDetectError(f"margin={margin}: must be >= 0")
        policy = CropPolicy(margin=margin, square=policy.square)
    img = image if isinstance(image, Image.Image) and image.mode == "RGB" else load_image(image)
    box = detect_largest_face(img, cascade=cascade)
    if box is None:
        return FaceCrop(img)
    region = policy.crop_box(box, img.size)
    return FaceCrop(img.crop(region), box, region)


def crop_face(
    image: Any, policy: CropPolicy | None = None, *, margin: float | None = None, cascade: Any = None
) -> tuple[Image.Image, bool]:
    """Crop the largest face as ``policy`` says, or return the whole image (:func:`cut_face`).

    Args:
        image: a PIL image (or anything :func:`~deepfake_detect.data.load_image` reads).
        policy: margin and squareness (default :class:`CropPolicy()`: square, margin 0.2).
        margin: overrides the policy's margin (kept for older calls).
        cascade: a classifier from :func:`load_cascade` to reuse.

    Returns:
        ``(crop, True)`` when a face was found, ``(the whole RGB image, False)`` otherwise.
    """
    face = cut_face(image, policy, margin=margin, cascade=cascade)
    return face.image, face.found


def crop_face_box(
    image: Any, policy: CropPolicy | None = None, *, margin: float | None = None, cascade: Any = None
) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """As :func:`crop_face`, but returns the face box found (``(x0, y0, x1, y1)`` in the
    image's pixels, before the policy's margin) instead of a flag: ``(crop, box)``, or
    ``(the whole RGB image, None)`` when no face is found. The crop is
    ``image.crop(policy.crop_box(box, image.size))`` (:func:`cut_face`)."""
    face = cut_face(image, policy, margin=margin, cascade=cascade)
    return face.image, face.box


class FaceCropPreprocessor:
    """A :class:`~deepfake_detect.data.Preprocessor` that crops the largest face first.

    ``prepare(item)`` loads the image, crops its largest face (:func:`cut_face` with
    ``policy``) and then prepares the crop as the wrapped preprocessor would; items without
    a face are prepared
    whole and their names collected in ``not_found`` (in no particular order; safe to call
    from several threads, each gets its own cascade). ``to_tensor`` and ``normalize`` are the
    wrapped preprocessor's.
    """

    def __init__(self, prep: Preprocessor, *, policy: CropPolicy | None = None) -> None:
        import_opencv()  # fail early, in the caller's thread, when OpenCV is missing
        self.prep = prep
        self.policy = policy or CropPolicy()
        self.not_found: list[Any] = []

    @classmethod
    def from_config(cls, config: DetectorConfig, prep: Preprocessor | None = None) -> FaceCropPreprocessor:
        """The face-crop preprocessing of a detector with ``config``: its crop policy
        (``config.face_crop``) around ``prep`` (default: ``Preprocessor(config)``)."""
        return cls(prep or Preprocessor(config), policy=CropPolicy.from_config(config.face_crop))

    def prepare(self, item: Any) -> np.ndarray | torch.Tensor:
        return self.prepare_with_box(item)[0]

    def prepare_with_box(self, item: Any) -> tuple[np.ndarray | torch.Tensor, tuple[int, int, int, int] | None]:
        """``prepare(item)`` and the face box that was cropped (``None``: no face, the whole
        image was prepared), in the image's pixels."""
        img = (
            tensor_to_pil(item) if isinstance(item, torch.Tensor) else load_image(item, max_pixels=self.prep.max_pixels)
        )
        face = cut_face(img, self.policy)
        if not face.found:
            self.not_found.append(item)
        return self.prep.prepare(face.image), face.box

    @property
    def height(self) -> int:
        return self.prep.height

    @property
    def width(self) -> int:
        return self.prep.width

    def to_tensor(self, items: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        return self.prep.to_tensor(items)

    def to_array(self, items: list[np.ndarray | torch.Tensor]) -> np.ndarray:
        return self.prep.to_array(items)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        return self.prep.normalize(batch)

    def warn_not_found(self, items: list[Any], *, stacklevel: int = 3) -> None:
        """One :class:`NoFaceWarning` naming the items (in ``items`` order) that had no face."""
        if self.not_found:
            missed = {id(x) for x in self.not_found}
            names = [describe(x) for x in items if id(x) in missed]
            warnings.warn(NoFaceWarning(names, total=len(items)), stacklevel=stacklevel)
