"""Labelled data in the formats users bring: challenge label files, real/fake folders,
(path, label) lists and torch Datasets. Everything is validated before training starts."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, list_images

__all__ = [
    "LabelFile",
    "LabeledData",
    "as_labeled_data",
    "as_sources",
    "concat_sources",
    "stratified_split",
    "read_label_file",
]

REAL_DIRS = ("real", "0")
FAKE_DIRS = ("fake", "1")


@dataclass
class LabeledData:
    """A sequence of ``(image, label)`` pairs; ``image`` is a path, PIL image, array or tensor.

    ``names`` are what a submission calls each image (file names for label files).
    """

    items: Sequence[Any]
    labels: np.ndarray
    names: list[str]
    description: str = ""
    dataset: Any = None  # a torch Dataset to read images from lazily, else None

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> Any:
        if self.dataset is not None:
            return self.dataset[index][0]
        return self.items[index]

    def subset(self, indices: Sequence[int]) -> LabeledData:
        idx = list(indices)
        if self.dataset is not None:
            import torch.utils.data as tud

            sub = tud.Subset(self.dataset, idx)
            return LabeledData(
                list(range(len(idx))), self.labels[idx], [self.names[i] for i in idx], self.description, sub
            )
        return LabeledData(
            [self.items[i] for i in idx], self.labels[idx], [self.names[i] for i in idx], self.description
        )


def read_label_file(labels_csv: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Parse a challenge label file (header ``img_name,target``; 1 = fake).

    Raises:
        DataError: naming the file, the row (1-based line number) and the value for a missing
            file, an empty file, missing columns, a target other than 0/1, or duplicate names.
    """
    return [(name, target) for name, target, _ in _read_label_rows(labels_csv)]


def _read_label_rows(labels_csv: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    """:func:`read_label_file`'s rows with the line each ends on: ``(img_name, target, line)``."""
    path = Path(labels_csv)
    if path.is_dir():
        raise DataError(f"label file {path} is a folder, not a file")
    if not path.is_file():
        raise DataError(f"label file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"label file {path} is not UTF-8 text ({e})") from None
    except OSError as e:
        raise DataError(f"label file {path} cannot be read ({e.strerror or e})") from None
    if not text.strip():
        raise DataError(f"label file {path} is empty; expected a header 'img_name,target' and one row per image")
    try:
        return _parse_label_rows(path, text)
    except csv.Error as e:  # e.g. a field over csv's size limit
        raise DataError(f"label file {path} is not a readable CSV file ({e})") from None


def _parse_label_rows(path: Path, text: str) -> list[tuple[str, int, int]]:
    reader = csv.reader(io.StringIO(text, newline=""))  # line_num then counts the lines an editor shows
    header = [h.strip() for h in next(reader)]
    missing = [c for c in ("img_name", "target") if c not in header]
    if missing:
        raise DataError(
            f"label file {path}, line 1: header {header} lacks column(s) {missing}; expected 'img_name,target'"
        )
    i_name, i_target = header.index("img_name"), header.index("target")
    rows: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    for row in reader:
        line_no = reader.line_num  # the last line of the row (a quoted field may span lines)
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(i_name, i_target):
            raise DataError(f"label file {path}, line {line_no}: expected {len(header)} columns, got {row!r}")
        name, target = row[i_name].strip(), row[i_target].strip()
        if not name:
            raise DataError(f"label file {path}, line {line_no}: empty img_name")
        if target not in ("0", "1"):
            try:
                f = float(target)
            except ValueError:
                f = None
            if f not in (0.0, 1.0):
                raise DataError(f"label file {path}, line {line_no}: target {target!r} for {name!r} is not 0 or 1")
            target = str(int(f))  # "1.0" is accepted as 1
        if name in seen:
            raise DataError(
                f"label file {path}, line {line_no}: duplicate img_name {name!r} (first on line {seen[name]})"
            )
        seen[name] = line_no
        rows.append((name, int(target), line_no))
    if not rows:
        raise DataError(f"label file {path} has a header but no rows")
    return rows


class LabelFile(LabeledData):
    """A challenge label file and the folder holding its images.

    ``LabelFile("train_label.txt", "train/")``: reads and checks every row and that every
    listed image exists, at once, so a typo is found before training starts.

    Raises:
        DataError: see :func:`read_label_file`; also for a listed image that does not exist.
    """

    def __init__(self, labels_csv: str | os.PathLike[str], image_dir: str | os.PathLike[str]) -> None:
        rows = _read_label_rows(labels_csv)
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise DataError(f"image folder {image_dir} (for label file {labels_csv}) does not exist")
        present = {p.name for p in image_dir.iterdir()}
        absent = [(n, line) for n, _, line in rows if n not in present and not (image_dir / n).is_file()]
        if absent:
            shown = ", ".join(f"{n!r} (line {line})" for n, line in absent[:5])
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise DataError(
                f"label file {labels_csv}: {len(absent)} listed image(s) not found in {image_dir}: {shown}{more}"
            )
        super().__init__(
            items=[image_dir / n for n, _, _ in rows],
            labels=np.array([t for _, t, _ in rows], dtype=np.int64),
            names=[n for n, _, _ in rows],
            description=f"{labels_csv} ({len(rows)} images in {image_dir})",
        )
        self.labels_csv, self.image_dir = Path(labels_csv), image_dir


def _from_folder(root: Path) -> LabeledData:
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    real = next((subdirs[d] for d in REAL_DIRS if d in subdirs), None)
    fake = next((subdirs[d] for d in FAKE_DIRS if d in subdirs), None)
    if real is None or fake is None:
        raise DataError(
            f"folder {root} must have subfolders 'real/' and 'fake/' (or '0/' and '1/'); found "
            f"{sorted(subdirs) or 'none'}. For a challenge label file use LabelFile(labels_csv, image_dir)"
        )
    pairs = [(p, 0) for p in list_images(real)] + [(p, 1) for p in list_images(fake)]
    if not pairs:
        raise DataError(f"folder {root}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under real/ or fake/")
    return LabeledData(
        [p for p, _ in pairs],
        np.array([t for _, t in pairs], dtype=np.int64),
        [str(Path(p).relative_to(root)) for p, _ in pairs],
        f"{root} (real/ and fake/ folders)",
    )


def _from_pairs(pairs: Sequence[Any]) -> LabeledData:
    items, labels, names = [], [], []
    for i, pair in enumerate(pairs):
        try:
            image, label = pair
        except (TypeError, ValueError):
            raise DataError(f"item {i}: expected an (image, label) pair, got {type(pair).__name__}") from None
        label = _check_label(label, f"item {i}")
        items.append(image)
        labels.append(label)
        names.append(Path(image).name if isinstance(image, (str, os.PathLike)) else str(i))
    if not items:
        raise DataError("no training items: the list of (image, label) pairs is empty")
    for i, image in enumerate(items):
        if isinstance(image, (str, os.PathLike)) and not Path(image).is_file():
            raise DataError(f"item {i}: image file {image} does not exist")
    return LabeledData(items, np.array(labels, dtype=np.int64), names, f"{len(items)} (image, label) pairs")


def _check_label(label: Any, where: str) -> int:
    try:
        value = float(label)
    except (TypeError, ValueError):
        value = None
    if value not in (0.0, 1.0):
        raise DataError(f"{where}: label {label!r} is not 0 (real) or 1 (fake)")
    return int(value)


def _from_dataset(dataset: Any) -> LabeledData:
    n = len(dataset)
    if n == 0:
        raise DataError(f"dataset {type(dataset).__name__} is empty")
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = getattr(dataset, "labels", None)
    if targets is not None and len(targets) == n:
        labels = [_check_label(t, f"dataset {type(dataset).__name__} index {i}") for i, t in enumerate(targets)]
    else:  # read each item once to learn its label
        labels = [_check_label(dataset[i][1], f"dataset {type(dataset).__name__} index {i}") for i in range(n)]
    return LabeledData(
        list(range(n)),
        np.array(labels, dtype=np.int64),
        [str(i) for i in range(n)],
        f"{type(dataset).__name__} ({n} items)",
        dataset,
    )


def as_labeled_data(data: Any) -> LabeledData:
    """Accept every supported data format and return a checked :class:`LabeledData`.

    Accepted: a :class:`LabelFile`; a folder with ``real/`` and ``fake/`` (or ``0/`` and
    ``1/``) subfolders; a list of ``(image, label)`` pairs (1 = fake); a torch ``Dataset``
    yielding ``(image, label)``.

    Raises:
        DataError: naming what is wrong and where.
    """
    if isinstance(data, LabeledData):
        return data
    if isinstance(data, (str, os.PathLike)):
        root = Path(data)
        if root.is_dir():
            return _from_folder(root)
        raise DataError(
            f"{root} is not a folder; pass a folder with real/ and fake/ subfolders, "
            "or LabelFile(labels_csv, image_dir) for a challenge label file"
        )
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (list, tuple)):
        return _from_dataset(data)
    if isinstance(data, (list, tuple)):
        return _from_pairs(data)
    raise DataError(
        f"unsupported data {type(data).__name__}: pass a LabelFile, a real/fake folder, "
        "a list of (image, label) pairs or a torch Dataset"
    )


def stratified_split(data: Any, val_fraction: float = 0.2, *, seed: int = 0) -> tuple[LabeledData, LabeledData]:
    """Split into train and validation parts keeping the real/fake ratio of each.

    Returns:
        ``(train, val)`` as :class:`LabeledData`; the same ``seed`` gives the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: expected a value between 0 and 1")
    data = as_labeled_data(data)
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(data.labels == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val_idx += idx[:n_val].tolist()
        train_idx += idx[n_val:].tolist()
    return data.subset(sorted(train_idx)), data.subset(sorted(val_idx))


class _Concatenated:
    """Several LabeledData read as one torch-style dataset of ``(image, label)``."""

    def __init__(self, parts: Sequence[LabeledData]) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        i = index - int(self.offsets[k])
        return self.parts[k].image(i), int(self.parts[k].labels[i])


def as_sources(data: Any) -> dict[str, LabeledData] | None:
    """Several labelled datasets, by name, or ``None`` when ``data`` is one dataset.

    Accepted: a mapping ``{name: data}`` (each value any format :func:`as_labeled_data`
    takes), or a list/tuple whose every element is a :class:`LabeledData`, a folder, or a
    torch Dataset (named ``source0``, ``source1``, ...). A list of ``(image, label)`` pairs
    is one dataset.

    Raises:
        DataError: an empty mapping, or a source that is not valid data (named).
    """
    if isinstance(data, Mapping):
        if not data:
            raise DataError("an empty mapping of data sources: pass at least one {name: data}")
        out = {}
        for name, part in data.items():
            try:
                out[str(name)] = as_labeled_data(part)
            except DataError as e:
                raise DataError(f"data source {name!r}: {e}") from None
        return out
    if (
        isinstance(data, (list, tuple))
        and data
        and all(
            isinstance(d, (LabeledData, str, os.PathLike))
            or (hasattr(d, "__getitem__") and hasattr(d, "__len__") and not isinstance(d, (list, tuple)))
            for d in data
        )
    ):
        return {f"source{i}": as_labeled_data(d) for i, d in enumerate(data)}
    return None


def concat_sources(sources: Mapping[str, LabeledData]) -> tuple[LabeledData, np.ndarray]:
    """One :class:`LabeledData` over every source, and the source index (0, 1, ... in the
    mapping's order) of each of its images. Names become ``"source/name"``."""
    parts = list(sources.values())
    if len(parts) == 1:
        only = parts[0]
        return only, np.zeros(len(only), dtype=np.int64)
    labels = np.concatenate([p.labels for p in parts]).astype(np.int64)
    names = [f"{name}/{n}" for name, p in sources.items() for n in p.names]
    ids = np.concatenate([np.full(len(p), k, dtype=np.int64) for k, p in enumerate(parts)])
    desc = " + ".join(f"{name}: {p.description or f'{len(p)} images'}" for name, p in sources.items())
    return LabeledData(list(range(len(labels))), labels, names, desc, _Concatenated(parts)), ids
