"""468-point face landmarks and face-hull masks (the ``face`` extra).

The landmark model is MediaPipe's Face Mesh (Apache-2.0, shipped in
``deepfake_detect/assets``; see its NOTICE), run on the CPU by the LiteRT interpreter
(``ai-edge-litert``). It needs no download, so it works offline, and it takes about 2 ms per
face on one core. It expects a face that roughly fills a square crop; :class:`FaceMesh`
makes that crop from a face box (or the whole image for a face crop), runs the model, then
re-centres the crop on the landmarks it found and runs it again.

:func:`hull_mask` turns landmarks into the region a face swap replaces: the convex hull of
the whole face, of the face with the forehead extended, of the lower face, or of the inner
features (eyes, brows, nose, mouth). :mod:`deepfake_detect.synth` blends inside these masks.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from .data.images import load_image
from .errors import DataError, MissingDependencyError

__all__ = [
    "FaceMesh",
    "face_landmarks",
    "landmarks_available",
    "hull_mask",
    "HULL_REGIONS",
    "LANDMARK_MODEL",
    "NUM_LANDMARKS",
]

LANDMARK_MODEL = Path(__file__).parent / "assets" / "face_landmark.tflite"
NUM_LANDMARKS = 468
MESH_INPUT = 192
#: Face-presence probability below which the model is taken to have found no face.
PRESENCE_THRESHOLD = 0.5
#: The crop side around a face box or a landmark box, as a multiple of the box's longer side
#: (MediaPipe uses 1.5 around its detector's box).
ROI_SCALE = 1.5

HullRegion = Literal["full", "extended", "lower", "inner"]
HULL_REGIONS: tuple[str, ...] = ("full", "extended", "lower", "inner")

# Face Mesh topology: indices of facial features (MediaPipe's face_mesh_connections).
_BROWS = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107, 276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
_EYES = (
    33,
    7,
    163,
    144,
    145,
    153,
    154,
    155,
    133,
    246,
    161,
    160,
    159,
    158,
    157,
    173,
    263,
    249,
    390,
    373,
    374,
    380,
    381,
    382,
    362,
    466,
    388,
    387,
    386,
    385,
    384,
    398,
)
_NOSE = (1, 2, 4, 5, 6, 98, 129, 168, 195, 197, 327, 358)
_LIPS = (0, 17, 37, 39, 40, 61, 84, 91, 146, 181, 185, 267, 269, 270, 291, 314, 321, 375, 405, 409)
_INNER = np.array(sorted(set(_BROWS + _EYES + _NOSE + _LIPS)))


def landmarks_available() -> bool:
    """True when the LiteRT interpreter (``ai-edge-litert``, the ``face`` extra) is installed."""
    try:
        _interpreter_class()
    except MissingDependencyError:
        return False
    return True


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except Exception:  # ImportError, or a wheel that does not load on this platform
        raise MissingDependencyError("ai-edge-litert", "face", "face landmarks") from None
    return Interpreter


class FaceMesh:
    """MediaPipe Face Mesh on the CPU. Not thread-safe: make one per thread (or use
    :func:`face_landmarks`, which keeps one per thread).

    Args:
        num_threads: interpreter threads (1 is fastest when several images are processed
            in parallel).

    Raises:
        MissingDependencyError: ``ai-edge-litert`` is not installed.
    """

    def __init__(self, *, num_threads: int = 1) -> None:
        interpreter = _interpreter_class()(model_path=str(LANDMARK_MODEL), num_threads=num_threads)
        interpreter.allocate_tensors()
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]["index"]
        outputs = interpreter.get_output_details()
        self._points = next(o["index"] for o in outputs if int(np.prod(o["shape"])) == 3 * NUM_LANDMARKS)
        self._presence = next(o["index"] for o in outputs if int(np.prod(o["shape"])) == 1)

    def _run(self, img: Image.Image, roi: tuple[float, float, float]) -> tuple[np.ndarray, float]:
        """Landmarks ``(468, 2)`` in image pixels and the face-presence probability for the
        square ``roi = (centre x, centre y, side)``."""
        cx, cy, side = roi
        x0, y0 = cx - side / 2, cy - side / 2
        fill = tuple(int(c) for c in np.asarray(img).reshape(-1, 3).mean(0))
        crop = img.transform(
            (MESH_INPUT, MESH_INPUT),
            Image.Transform.EXTENT,
            (x0, y0, x0 + side, y0 + side),
            Image.Resampling.BILINEAR,
            fillcolor=fill,
        )
        tensor = np.asarray(crop, dtype=np.float32)[None] / 255.0
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._points).reshape(NUM_LANDMARKS, 3)[:, :2]
        logit = float(self._interpreter.get_tensor(self._presence).reshape(-1)[0])
        points = raw * (side / MESH_INPUT) + np.array([x0, y0], dtype=np.float32)
        return points.astype(np.float32), float(1.0 / (1.0 + np.exp(-logit)))

    def __call__(self, image: Any, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """The 468 landmarks of the face in ``image``.

        Args:
            image: a PIL image, a ``uint8`` (H, W, 3) RGB array, or a path.
            box: the face's ``(x0, y0, x1, y1)`` in pixels (e.g. from
                :func:`deepfake_detect.face.detect_largest_face`); ``None`` takes the image
                to be a face crop.

        Returns:
            float32 ``(468, 2)`` ``(x, y)`` pixel coordinates (they may lie a little outside
            the image for a tight crop), or ``None`` when the model finds no face.
        """
        img = _as_rgb(image)
        w, h = img.size
        if box is None:
            roi = (w / 2, h / 2, float(max(w, h)))
        else:
            x0, y0, x1, y1 = (float(v) for v in box)
            roi = ((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0))
        points, presence = self._run(img, roi)
        if presence < PRESENCE_THRESHOLD:
            return None
        lo, hi = points.min(0), points.max(0)  # second pass: the crop centred on the face found
        refined, presence = self._run(img, ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, ROI_SCALE * float(max(hi - lo))))
        return refined if presence >= PRESENCE_THRESHOLD else points


_local = threading.local()


def face_landmarks(image: Any, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
    """:class:`FaceMesh` with one interpreter per thread; see :meth:`FaceMesh.__call__`.

    Raises:
        MissingDependencyError: ``ai-edge-litert`` is not installed
            (``pip install 'deepfake-detect[face]'``).
    """
    mesh = getattr(_local, "mesh", None)
    if mesh is None:
        mesh = _local.mesh = FaceMesh()
    return mesh(image, box)


def _as_rgb(image: Any) -> Image.Image:
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(image), "RGB")
    return load_image(image)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``(N, 2)`` points, counter-clockwise (Andrew's monotone chain)."""
    pts = np.unique(points.astype(np.float64), axis=0)
    if len(pts) < 3:
        return pts

    def half(seq: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-1] - out[-2], p - out[-2]
                if ax * by - ay * bx > 0:  # a left turn: keep
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _region_points(landmarks: np.ndarray, region: str, rng: np.random.Generator | None) -> np.ndarray:
    if region == "full":
        return landmarks
    if region == "inner":
        return landmarks[_INNER]
    brow_y = float(landmarks[list(_BROWS), 1].mean())
    if region == "lower":  # from the eyes down
        eye_y = float(landmarks[list(_EYES), 1].mean())
        return landmarks[landmarks[:, 1] >= eye_y]
    if region == "extended":  # the forehead reaches higher, as a swap that includes it
        grow = 1.3 if rng is None else float(rng.uniform(1.2, 1.6))
        out = landmarks.copy()
        above = out[:, 1] < brow_y
        out[above, 1] = brow_y - (brow_y - out[above, 1]) * grow
        return out
    raise DataError(f"region={region!r}: expected one of {HULL_REGIONS}")


def hull_mask(
    landmarks: np.ndarray, size: tuple[int, int], region: HullRegion = "full", *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A binary face-region mask from landmarks.

    Args:
        landmarks: ``(468, 2)`` pixel coordinates from :func:`face_landmarks`.
        size: ``(width, height)`` of the mask.
        region: ``"full"`` (hull of all points: jaw line to mid-forehead), ``"extended"``
            (the forehead raised by 1.2-1.6x, drawn from ``rng``), ``"lower"`` (from the eyes
            down) or ``"inner"`` (brows, eyes, nose and mouth).
        rng: draws the forehead extension (1.3 without one).

    Returns:
        float32 ``(height, width)`` with 1 inside the hull and 0 outside.
    """
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape != (NUM_LANDMARKS, 2) or not np.isfinite(pts).all():
        raise DataError(f"landmarks must be a finite ({NUM_LANDMARKS}, 2) array, got shape {pts.shape}")
    w, h = size
    hull = _convex_hull(_region_points(pts, region, rng))
    canvas = Image.new("L", (int(w), int(h)), 0)
    if len(hull) >= 3:
        ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in hull], fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0
