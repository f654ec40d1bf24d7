"""Reading images robustly: every mode to RGB, EXIF orientation, first frame of animations,
a pixel limit against decompression bombs, and errors that name the file and the reason."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageLoadError

__all__ = [
    "ImageInput",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "ERROR_MODES",
    "REFUSED_FORMATS",
    "list_images",
    "load_image",
    "describe",
    "flatten_inputs",
]

#: File suffixes treated as images when a folder is scanned (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"})

#: Default largest image accepted, in pixels (width x height): 8,000 x 8,000. Larger
#: files are refused before decoding so a decompression bomb cannot exhaust memory.
#: Override per call with ``max_pixels=`` (``Detector.predict(..., max_pixels=...)``).
MAX_IMAGE_PIXELS = 64_000_000

#: ``errors=`` values of ``Detector.predict`` and ``evaluate``: what an image that cannot be read
#: does: ``"raise"`` its :class:`~deepfake_detect.errors.ImageLoadError`, or ``"skip"`` it (NaN score).
ERROR_MODES = ("raise", "skip")

#: PIL formats never opened, whatever the file is called: PIL has EPS files rendered by the
#: Ghostscript interpreter (a PostScript program from the file would run) and WMF/EMF files
#: by the operating system's renderer. Every other format PIL can read is accepted.
REFUSED_FORMATS = frozenset({"EPS", "WMF"})
_REFUSED_MAGIC = (b"%!PS", b"\xc5\xd0\xd3\xc6", b"\xd7\xcd\xc6\x9a", b"\x01\x00\x00\x00")

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray, Any]  # Any: a torch.Tensor


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by their path relative to it.

    Hidden files and folders (starting with ``.``) are skipped.

    Raises:
        ImageLoadError: ``folder`` is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageLoadError(str(root), "not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / f)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def describe(source: Any) -> str:
    """A short name for an input, used in messages and reports."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source):,} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    shape = getattr(source, "shape", None)
    return f"<{type(source).__name__} shape={tuple(shape)}>" if shape is not None else f"<{type(source).__name__}>"


_VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

#: Leading bytes of the formats read here, to tell a damaged file from one that is not an image.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def load_image(
    source: ImageInput, *, draft_size: tuple[int, int] | None = None, max_pixels: int | None = MAX_IMAGE_PIXELS
) -> Image.Image:
    """Open ``source`` as an RGB PIL image.

    Args:
        source: a file path, the bytes of an image file (read in memory, nothing written
            to disk), a PIL image, or an HWC/HW ``uint8`` numpy array.
        draft_size: ``(width, height)`` the image will be resized to; JPEG files are then
            decoded at the smallest DCT scale that is still at least this large (faster).
        max_pixels: refuse images with more pixels than this, from the header, before decoding
            (``None``: no limit of this library's own; PIL's check still refuses more than
            ``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 million pixels).

    Applies the EXIF orientation, takes the first frame of animations, and converts every
    mode (1, L, LA, P, PA, RGBA, CMYK, YCbCr, LAB, HSV, I;16, I, F) to 8-bit RGB.

    Raises:
        ImageLoadError: naming the file and why (missing, empty, not an image, truncated,
            too many pixels, unreadable, or a format in :data:`REFUSED_FORMATS`).
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source, describe(source))
    if isinstance(source, np.ndarray):
        return _from_array(source)
    fp: Path | io.BytesIO
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = describe(source)
        if len(source) == 0:
            raise ImageLoadError(name, "file is empty (0 bytes)")
        fp = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        fp = Path(source)
        name = str(fp)
        check_input_file(fp)
    else:
        raise ImageLoadError(
            describe(source),
            "unsupported input type; pass a path, bytes, PIL image, HWC uint8 numpy array, or CHW float tensor",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=_open_formats())
    except UnidentifiedImageError:
        head = fp.getvalue()[:16] if isinstance(fp, io.BytesIO) else _head(fp)
        if head.startswith(_REFUSED_MAGIC):
            raise ImageLoadError(
                name,
                "looks like an EPS/PostScript or WMF/EMF file: these are not read, as PIL "
                "would have them rendered by an external program",
            ) from None
        known = next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)
        if known is not None:  # PIL gives up on the header's contents, not on what the file is
            raise ImageLoadError(name, f"a damaged or unsupported {known} file (starts with {head!r})") from None
        if Path(name).suffix.lower() in _VIDEO_SUFFIXES:
            raise ImageLoadError(
                name, "a video, not an image: score it with `deepfake-detect predict-video` or Detector.predict_video"
            ) from None
        raise ImageLoadError(name, f"not an image file (starts with {head!r})") from None
    except Image.DecompressionBombError as e:
        if max_pixels is not None and max_pixels < 2 * (Image.MAX_IMAGE_PIXELS or 0):
            # PIL's limit is the higher one and refused first: the caller's limit is what applies
            raise ImageLoadError(
                name, f"over the limit of {max_pixels:,} pixels (a guard against decompression bombs; PIL: {e})"
            ) from None
        raise ImageLoadError(
            name,
            f"refused as a possible decompression bomb ({e}); this is PIL's own limit, "
            "raise PIL.Image.MAX_IMAGE_PIXELS as well as max_pixels= to read it",
        ) from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(name, f"unreadable image ({e})") from None
    except Exception as e:  # PIL's plugins raise many other types (RuntimeError, ...) for malformed files
        raise ImageLoadError(name, f"unreadable image ({_reason(e)})") from e
    with img:
        w, h = img.size
        if w <= 0 or h <= 0:
            raise ImageLoadError(name, f"image has no pixels ({w}x{h})")
        if max_pixels is not None and w * h > max_pixels:
            raise ImageLoadError(
                name,
                f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                "(a guard against decompression bombs; raise it with max_pixels=)",
            )
        try:
            if draft_size is not None and img.format == "JPEG" and img.mode in ("RGB", "L") and not _rotated(img):
                img.draft(img.mode, draft_size)
            img.load()
            return _to_rgb(img, name)
        except ImageLoadError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
            reason = str(e) or type(e).__name__
            if "truncated" in reason:
                reason = f"file is truncated ({reason})"
            raise ImageLoadError(name, f"cannot decode image: {reason}") from None
        except Exception as e:  # struct.error, TypeError, RuntimeError, ... from a malformed file
            raise ImageLoadError(name, f"cannot decode image: {_reason(e)}") from e


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _open_formats() -> list[str]:
    Image.init()  # registers every plugin, including any a user installed (HEIF, ...)
    return [f for f in Image.ID if f not in REFUSED_FORMATS]


def check_input_file(path: Path, error: type[ImageLoadError] = ImageLoadError, kind: str = "image") -> None:
    """Raise ``error`` naming ``path`` if it is missing, inaccessible, a folder, or empty."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise error(str(path), "file does not exist") from None
    except OSError as e:
        raise error(str(path), f"cannot access file ({e.strerror or e})") from None
    if path.is_dir():
        raise error(str(path), f"is a folder, not {'an' if kind[0] in 'aeiou' else 'a'} {kind} file")
    if size == 0:
        raise error(str(path), "file is empty (0 bytes)")


def _rotated(img: Image.Image) -> bool:
    try:
        return img.getexif().get(0x0112, 1) not in (1, None)
    except Exception:
        return False


def _head(path: Path, n: int = 16) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    if getattr(img, "is_animated", False):
        img.seek(0)
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:
        pass  # a broken EXIF block is not worth refusing the pixels for
    mode = img.mode
    if mode == "RGB":
        return img.copy() if img.readonly else img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0
        elif mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
    if mode == "LA":
        img = img.convert("L")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageLoadError(name, f"cannot convert mode {mode} to RGB ({e})") from None


def _from_array(arr: np.ndarray) -> Image.Image:
    name = describe(arr)
    if arr.dtype != np.uint8:
        raise ImageLoadError(name, f"numpy images must be uint8 HWC, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageLoadError(name, "numpy images must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(name, "image has no pixels")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB")


def iter_paths(items: Iterable[Any]) -> list[Any]:
    """Expand folders into their sorted image files; keep everything else as is."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            out.extend(list_images(item))
        else:
            out.append(item)
    return out


def flatten_inputs(inputs: Any) -> list[Any]:
    """What ``Detector.predict`` takes, as a flat list of single images: a path or a folder
    (its sorted image files), one image (PIL, HWC array, bytes, CHW tensor), an NCHW tensor
    (one item per image), or an iterable of these.

    Raises:
        ImageLoadError: ``inputs`` is none of these (the message says what is accepted).
    """
    if isinstance(inputs, (str, os.PathLike)):
        if Path(inputs).is_dir():
            return iter_paths([inputs])
        return [inputs]
    if isinstance(inputs, torch.Tensor):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if isinstance(inputs, (np.ndarray, bytes, bytearray, memoryview)) or hasattr(inputs, "getpixel"):
        return [inputs]
    if not isinstance(inputs, Iterable):
        raise ImageLoadError(describe(inputs), "unsupported input; pass a path, folder, image, or a list of them")
    out: list[Any] = []
    for item in inputs:
        if isinstance(item, torch.Tensor) and item.ndim == 4:
            out.extend(item)
        else:
            out.append(item)
    return iter_paths(out)
