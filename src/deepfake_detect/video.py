"""Scoring videos: sample frames evenly, crop the face in each, score, aggregate.

    >>> from deepfake_detect import load_detector
    >>> load_detector().predict_video("clip.mp4")           # P(fake) for the whole clip

Frames are decoded with PyAV (the ``video`` extra) or, without it, OpenCV's
``VideoCapture``. The detectors are image detectors: a video's score is an aggregate of
per-frame scores and carries no temporal evidence.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .data.images import check_input_file
from .errors import DeepfakeDetectError, ImageLoadError, MissingDependencyError
from .protocols import Predictor

__all__ = ["predict_video", "read_frames", "reencode_h264", "h264_available", "VideoLoadError", "AGGREGATES"]

AGGREGATES = ("mean", "median", "max")


class VideoLoadError(ImageLoadError):
    """A video file that could not be opened or decoded, or that has no frames."""

    def __init__(self, source: str, reason: str) -> None:
        self.source, self.reason = source, reason
        DeepfakeDetectError.__init__(self, f"cannot read video {source}: {reason}")


def predict_video(
    detector: Predictor,
    path: str | os.PathLike[str],
    *,
    num_frames: int = 16,
    aggregate: str = "mean",
    crop_faces: bool = True,
    margin: float | None = None,
    batch_size: int = 32,
) -> float:
    """P(fake) for a video: the aggregate of the scores of ``num_frames`` evenly spaced frames.

    Args:
        detector: the image detector scoring each frame (anything with ``config`` and ``predict``).
        path: a video file (anything FFmpeg reads: mp4, avi, mov, webm, ...).
        num_frames: frames sampled evenly from first to last (fewer if the video is shorter).
        aggregate: ``"mean"``, ``"median"`` or ``"max"`` of the frame scores.
        crop_faces: score the largest face of each frame (:func:`deepfake_detect.face.cut_face`);
            frames without a face are scored whole, and one
            :class:`~deepfake_detect.face.NoFaceWarning` says how many.
        margin: overrides the face-crop margin of the detector's crop policy
            (``config.face_crop``; fraction of the face box per side).
        batch_size: frames per forward pass.

    Returns:
        The aggregated P(fake), a float in [0, 1].

    Raises:
        VideoLoadError: (an :class:`ImageLoadError`) the file is missing, unreadable, has no
            video stream or no frames; the message names the file.
        MissingDependencyError: neither PyAV nor OpenCV is installed
            (``pip install 'deepfake-detect[video]'``); or OpenCV is missing with ``crop_faces``.
        DeepfakeDetectError: a bad ``num_frames`` or ``aggregate``.
    """
    if aggregate not in AGGREGATES:
        raise DeepfakeDetectError(f"aggregate={aggregate!r}: expected one of {AGGREGATES}")
    indexed = _read_indexed(path, num_frames)
    frames = [img for _, img in indexed]
    if crop_faces:
        from .face import CropPolicy, NoFaceWarning, cut_face, load_cascade

        cascade = load_cascade()
        policy = CropPolicy.from_config(detector.config.face_crop)  # the crop predict makes
        faces = [cut_face(f, policy, margin=margin, cascade=cascade) for f in frames]
        frames = [face.image for face in faces]
        missed = [f"frame {i}" for (i, _), face in zip(indexed, faces, strict=True) if not face.found]
        if missed:
            warnings.warn(NoFaceWarning(missed, total=len(frames), what=f"sampled frames of {path}"), stacklevel=3)
    scores = detector.predict(frames, batch_size=batch_size, progress=False)
    aggregators: dict[str, Callable[..., Any]] = {"mean": np.mean, "median": np.median, "max": np.max}
    agg = aggregators[aggregate]
    return float(agg(scores))


def read_frames(path: str | os.PathLike[str], *, num_frames: int = 16) -> list[Image.Image]:
    """``num_frames`` RGB frames evenly spaced over the video (all frames if it has fewer).

    Frame ``k`` of ``n`` sampled is the frame at index ``round(k * (total - 1) / (n - 1))``;
    ``total`` is the container's frame count, or the number of frames decoded when the
    container does not say.

    Raises:
        VideoLoadError: missing or unreadable file, no video stream, no frames.
        MissingDependencyError: neither PyAV nor OpenCV is installed.
    """
    return [img for _, img in _read_indexed(path, num_frames)]


def _read_indexed(path: str | os.PathLike[str], num_frames: int) -> list[tuple[int, Image.Image]]:
    """``[(frame index, RGB image)]`` of the sampled frames; see :func:`read_frames`."""
    if not isinstance(num_frames, int) or num_frames < 1:
        raise DeepfakeDetectError(f"num_frames={num_frames!r}: expected an integer >= 1")
    path = Path(path)
    name = str(path)
    check_input_file(path, VideoLoadError, "video")
    try:
        import av  # noqa: F401

        have_av = True
    except ImportError:
        have_av = False
    if have_av:
        frames = _read_av(path, num_frames)
    else:  # PyAV missing: OpenCV reads it, if it is there
        frames = _read_cv2(path, num_frames)
    if not frames:
        raise VideoLoadError(name, "the video has no decodable frames")
    return frames


def _indices(total: int, num_frames: int) -> list[int]:
    if total <= num_frames:
        return list(range(total))
    return sorted({int(round(v)) for v in np.linspace(0, total - 1, num_frames)})


def _read_av(path: Path, num_frames: int) -> list[tuple[int, Image.Image]]:
    import av

    name = str(path)
    try:
        total = _count_frames_av(path)
        if total == 0:
            return []
        wanted = set(_indices(total, num_frames))
        last = max(wanted)
        frames: list[tuple[int, Image.Image]] = []
        with av.open(name) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    frames.append((i, _upright(frame.to_image().convert("RGB"), getattr(frame, "rotation", 0))))
                if i >= last:
                    break
        return frames
    except VideoLoadError:
        raise
    except (_ffmpeg_error(av), OSError, ValueError, IndexError, EOFError) as e:
        raise VideoLoadError(name, f"not a readable video ({type(e).__name__}: {e})") from None


def _upright(img: Image.Image, rotation: int | None) -> Image.Image:
    """The frame as it is shown: turned by the stream's display rotation (degrees
    counterclockwise, e.g. -90 for a phone's portrait video), as OpenCV's reader turns it."""
    return img.rotate(rotation, expand=True) if rotation and rotation % 360 else img


def _ffmpeg_error(av: Any) -> type[BaseException]:
    return getattr(av, "FFmpegError", None) or getattr(av, "AVError", None) or OSError


def _count_frames_av(path: Path) -> int:
    """Frames in the first video stream: the container's count if it has one, else the number
    of decoded frames (exact, at the cost of one decoding pass)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoLoadError(str(path), "the file has no video stream")
        stream = container.streams.video[0]
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def _read_cv2(path: Path, num_frames: int) -> list[tuple[int, Image.Image]]:
    from .face import import_opencv

    cv2 = import_opencv("av", "video", "video input")
    name = str(path)
    cap = cv2.VideoCapture(name)
    try:
        if not cap.isOpened():
            raise VideoLoadError(name, "not a readable video (OpenCV cannot open it)")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if total <= 0:  # unknown: count by grabbing
            while cap.grab():
                total += 1
            cap.release()
            cap = cv2.VideoCapture(name)
        wanted = set(_indices(total, num_frames))
        frames: list[tuple[int, Image.Image]] = []
        i = 0
        while wanted and i <= max(wanted):
            if not cap.grab():
                break
            if i in wanted:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    frames.append((i, Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
            i += 1
        return frames
    finally:
        cap.release()


def h264_available() -> bool:
    """Whether PyAV (extra ``video``) with the libx264 encoder is installed."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


def reencode_h264(image: Image.Image, crf: int, *, preset: str = "medium") -> Image.Image:
    """``image`` encoded as a one-frame H.264 video (libx264, yuv420p, constant rate factor
    ``crf``: 0 is lossless, 23 libx264's default, 51 the worst) and decoded again, as RGB.
    An odd width or height is padded by edge replication for the encoder and cropped after.

    Raises:
        MissingDependencyError: PyAV with libx264 is not installed (extra ``video``).
    """
    if not h264_available():
        raise MissingDependencyError("av", "video", "H.264 re-encoding")
    import av

    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = padded.shape[1], padded.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset}
        for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        frame = next(inp.decode(video=0))
        decoded = frame.to_ndarray(format="rgb24")
    return Image.fromarray(np.ascontiguousarray(decoded[:h, :w]))
