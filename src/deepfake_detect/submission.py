"""Challenge submissions: ``img_name,y_pred`` with y_pred = P(fake)."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.datasets import LabeledData
from .data.images import list_images
from .errors import DataError
from .weights import atomic_path

if TYPE_CHECKING:
    from .detector import Detector

__all__ = ["image_names", "check_output_path", "check_unique_names", "write_submission", "predict_submission"]


def image_names(source: Any) -> tuple[list[Any], list[str]]:
    """``(inputs, names)`` for a folder (names relative to it), a label file (its
    ``img_name`` column), or a list of paths (file names)."""
    if isinstance(source, LabeledData):
        return [source.image(i) for i in range(len(source))], list(source.names)
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    inputs: list[Any] = []
    names: list[str] = []
    for item in source:
        path = Path(item)
        if path.is_dir():
            files = list_images(path)
            inputs += files
            names += [f.relative_to(path).as_posix() for f in files]
        else:
            inputs.append(path)
            names.append(path.name)
    return inputs, names


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DataError` now if a file cannot be written at ``path`` (a folder there, a
    parent that is a file, no permission), so a long scoring run does not end in that error.
    Creates missing parent folders, as writing would."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder; give a file name such as {path / 'submission.csv'}")
    blocking = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocking is not None:
        raise DataError(f"cannot write {path}: {blocking} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot write {path}: cannot create folder {path.parent} ({e.strerror or e})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(f"cannot write {path}: no file can be created in {path.parent} ({e.strerror or e})") from None


def check_unique_names(names: Sequence[str], inputs: Sequence[Any] | None = None) -> None:
    """Raise :class:`DataError` if an ``img_name`` repeats: a submission must name each image once.
    ``inputs`` (the paths behind ``names``) make the message say where each copy came from."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            j = first[name]
            where = f" ({inputs[j]} and {inputs[i]})" if inputs is not None else ""
            raise DataError(
                f"img_name {name!r} would appear twice in the submission{where}; score one folder at a "
                "time, or rename one of the images"
            )
        first[name] = i


def write_submission(
    names: list[str],
    scores: np.ndarray,
    path: str | os.PathLike[str],
    *,
    skip_nan: bool = True,
    verdicts: Sequence[str] | None = None,
    name_column: str = "img_name",
) -> int:
    """Write ``img_name,y_pred`` rows atomically (the challenge's format), plus a third
    column ``verdict`` when ``verdicts`` are given (e.g. ``[config.verdict(s) for s in
    scores]``; scorers that read columns by name ignore it). Rows whose score is NaN
    (unreadable images under ``errors="skip"``) are left out when ``skip_nan``.
    ``name_column`` names the first column (``"video"`` for ``predict-video``). Returns the
    number of rows."""
    if len(names) != len(scores):
        raise DataError(f"{len(names)} names but {len(scores)} scores")
    if verdicts is not None and len(verdicts) != len(scores):
        raise DataError(f"{len(verdicts)} verdicts but {len(scores)} scores")
    check_unique_names(names)
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([name_column, "y_pred"] + (["verdict"] if verdicts is not None else []))
        for k, (name, score) in enumerate(zip(names, scores, strict=True)):
            if skip_nan and np.isnan(score):
                continue
            writer.writerow([name, f"{float(score):.6f}"] + ([verdicts[k]] if verdicts is not None else []))
            rows += 1
    return rows


def predict_submission(
    detector: Detector, source: Any, path: str | os.PathLike[str], **predict_kwargs: Any
) -> tuple[list[str], np.ndarray]:
    """Score a folder, a :class:`~deepfake_detect.data.LabelFile` or paths, and write the CSV.

    With ``errors="skip"`` unreadable images are left out of the CSV (and reported by a
    :class:`~deepfake_detect.SkippedImagesWarning`). Returns ``(names, scores)``.
    """
    inputs, names = image_names(source)
    check_unique_names(names, inputs)
    check_output_path(path)
    scores = detector.predict(inputs, **predict_kwargs)
    write_submission(names, scores, path)
    return names, scores
