"""Cross-dataset protocol helpers: challenge-format sources, leak-free hold-outs, and the
self-blended evaluation set built from held-out real images.

A detector is only as good as its score on data from sources it never saw (DeepfakeBench's
protocol: train on one source, score on every other). These helpers make the splits that
protocol needs reproducible:

* :func:`load_split` reads ``root/<split>_label.txt`` + ``root/<split>/`` (the challenge's
  layout, as in ``ffhq-stylegan`` and ``dfdc-faces``);
* :func:`group_split` holds out whole groups (a source clip, an identity), so a real frame
  and the fake made from the same clip never sit on both sides;
* :func:`self_blended_set` turns the real images of some sources into a fixed set of real
  images and self-blended fakes of them (a face-swap-like manipulation no generator made);
* :func:`default_splits` and :func:`selection_set` are the split and the selection set the
  built-in default is trained and chosen with, and :func:`val_set` the views it reports once
  on val, shared by ``scripts/train_default.py`` and the benchmarks that compare against it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data.datasets import LabeledData, LabelFile, as_labeled_data, stratified_split
from .errors import DataError

__all__ = [
    "load_split",
    "group_split",
    "read_groups",
    "self_blended_set",
    "face_swap_set",
    "source_splits",
    "default_splits",
    "selection_set",
    "val_set",
    "two_class_sources",
    "cropped_view",
    "video_view",
    "perturbed_views",
    "real_score_quantiles",
    "real_scores",
    "real_views",
    "SOURCES_CSV",
]

#: A per-image table beside the label files (dfdc-faces has one): ``img_name`` and ``source_video``.
SOURCES_CSV = "sources.csv"


def load_split(root: str | os.PathLike[str], split: str) -> LabelFile:
    """``LabelFile(root / f"{split}_label.txt", root / split)``."""
    root = Path(root)
    return LabelFile(root / f"{split}_label.txt", root / split)


def source_splits(
    root: str | os.PathLike[str], holdout: float, *, seed: int = 0
) -> tuple[LabeledData, LabeledData, LabelFile]:
    """``(train, hold-out, val)`` of one challenge-layout source folder.

    The hold-out is taken from ``train`` for choosing epochs and thresholds (val stays
    unseen): whole source clips when the folder has a ``sources.csv`` with a
    ``source_video`` column (a real clip and the fake made from it stay together), else a
    stratified ``holdout`` fraction of the images.
    """
    root = Path(root)
    train = load_split(root, "train")
    if (root / SOURCES_CSV).is_file():
        kept, held = group_split(train, read_groups(root / SOURCES_CSV), holdout, seed=seed)
    else:
        kept, held = stratified_split(train, holdout, seed=seed)
    return kept, held, load_split(root, "val")


def read_groups(
    csv_path: str | os.PathLike[str], *, key: str = "img_name", group: str = "source_video"
) -> dict[str, str]:
    """``{image name: group}`` from a CSV with a header (e.g. dfdc-faces' ``sources.csv``).

    Raises:
        DataError: the file cannot be read or lacks a column (named).
    """
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in (key, group) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: no column(s) {missing}; the header is {reader.fieldnames}")
            return {row[key]: row[group] for row in reader}
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def group_split(
    data: Any, groups: Sequence[str] | Mapping[str, str], fraction: float, *, seed: int = 0
) -> tuple[LabeledData, LabeledData]:
    """Split into ``(kept, held_out)`` by whole groups: about ``fraction`` of the groups go
    to ``held_out`` with every image of theirs.

    Args:
        data: anything :func:`~deepfake_detect.data.as_labeled_data` takes.
        groups: the group of each image, in order, or ``{image name: group}`` (images
            missing from it are their own group).
        fraction: share of groups held out, in (0, 1).
        seed: the same seed gives the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"fraction={fraction}: expected a value between 0 and 1")
    data = as_labeled_data(data)
    if isinstance(groups, Mapping):
        of = [groups.get(n, f"\0{n}") for n in data.names]
    else:
        of = [str(g) for g in groups]
        if len(of) != len(data):
            raise DataError(f"groups has {len(of)} entries for {len(data)} images")
    unique = sorted(set(of))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(unique, size=max(1, int(round(fraction * len(unique)))), replace=False).tolist())
    out_idx = [i for i, g in enumerate(of) if g in held]
    keep_idx = [i for i, g in enumerate(of) if g not in held]
    return data.subset(keep_idx), data.subset(out_idx)


def self_blended_set(
    sources: Mapping[str, Any], *, per_source: int | None = None, seed: int = 12345
) -> list[tuple[Any, int]]:
    """Real images of each source (at most ``per_source``, drawn with ``seed``) and one
    self-blended fake of each (:func:`deepfake_detect.synth.self_blended_pairs`), as
    ``(image, label)`` pairs. The same arguments give the same set."""
    from .synth import self_blended_pairs

    return self_blended_pairs([im for reals in _reals_of(sources, per_source, seed) for im in reals], seed=seed)


def face_swap_set(
    sources: Mapping[str, Any], *, per_source: int | None = None, seed: int = 12345
) -> list[tuple[Any, int]]:
    """Real images of each source (at most ``per_source``, drawn with ``seed`` as in
    :func:`self_blended_set`) and one face swap onto each from another real image of the same
    source (:func:`deepfake_detect.synth.face_swapped_pairs`: the fixed blend, a face with a
    close landmark layout), as ``(image, label)`` pairs. Every image of a source counts as
    another person: give sources with one identity per image (ffhq-stylegan; dfdc-faces, one
    frame per clip), not several frames of one video. Needs the ``face`` extra."""
    from .synth import face_swapped_pairs

    return [pair for reals in _reals_of(sources, per_source, seed) for pair in face_swapped_pairs(reals, seed=seed)]


def _reals_of(sources: Mapping[str, Any], per_source: int | None, seed: int) -> list[list[Any]]:
    out = []
    for k, part in enumerate(sources.values()):
        data = as_labeled_data(part)
        idx = np.flatnonzero(data.labels == 0)
        if per_source is not None and len(idx) > per_source:
            idx = np.sort(np.random.default_rng([seed, k]).choice(idx, size=per_source, replace=False))
        out.append([data.image(int(i)) for i in idx])
    return out


def default_splits(
    dfdc: str | os.PathLike[str],
    ffhq: str | os.PathLike[str],
    *,
    seed: int = 0,
    limit: int | None = None,
    celebdf: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, LabeledData], dict[str, LabeledData], dict[str, LabeledData]]:
    """``(train, holdout, val)``, each ``{"dfdc": ..., "ffhq": ...}`` (and ``"celebdf"`` when
    given): the split the built-in default is trained with. 5 % of dfdc-faces' source clips,
    a stratified 10 % of ffhq-stylegan and 15 % of celebdf-faces' source videos are held out
    of train (:func:`source_splits`); the same ``seed`` gives the same images. ``limit``
    (smoke tests): about this many images per split and source (a stratified subset, at
    least one per class)."""
    parts = {"dfdc": source_splits(dfdc, 0.05, seed=seed), "ffhq": source_splits(ffhq, 0.1, seed=seed)}
    if celebdf is not None:
        parts["celebdf"] = source_splits(celebdf, 0.15, seed=seed)
    splits = [{name: p[k] for name, p in parts.items()} for k in range(3)]
    if limit:
        splits = [
            {name: stratified_split(v, min(0.99, limit / len(v)), seed=0)[1] for name, v in part.items()}
            for part in splits
        ]
    return splits[0], splits[1], splits[2]


def two_class_sources(sources: Mapping[str, Any]) -> dict[str, LabeledData]:
    """The sources that hold both real and fake images (those an AUC can be measured on)."""
    out = {}
    for name, part in sources.items():
        data = as_labeled_data(part)
        if (data.labels == 0).any() and (data.labels == 1).any():
            out[name] = data
    return out


def cropped_view(data: Any, side: float) -> list[tuple[Any, int]]:
    """Every image of ``data`` cut to the central box of ``side`` times its width and height
    (:func:`deepfake_detect.augment.center_crop`: vertical centre at 55 %) and resized back to
    its own size, as ``(RGB PIL image, label)`` pairs: the same faces as a tighter face
    detector would crop them."""
    from .augment import center_crop
    from .data.images import load_image

    data = as_labeled_data(data)
    return [(center_crop(load_image(data.image(i)), side), int(data.labels[i])) for i in range(len(data))]


def video_view(data: Any, crf: int) -> list[tuple[Any, int]]:
    """Every image of ``data`` after an H.264 round trip at constant rate factor ``crf``
    (:func:`deepfake_detect.video.reencode_h264`, libx264 preset "medium"), as ``(RGB PIL
    image, label)`` pairs: the same faces as cut from a compressed video.

    Raises:
        MissingDependencyError: PyAV with libx264 is not installed (extra ``video``).
    """
    from .data.images import load_image
    from .video import reencode_h264

    data = as_labeled_data(data)
    return [(reencode_h264(load_image(data.image(i)), crf), int(data.labels[i])) for i in range(len(data))]


def selection_set(
    holdout: Mapping[str, Any],
    *,
    seed: int = 0,
    per_source: int = 150,
    crop_sides: Sequence[float] = (),
    video_crfs: Sequence[int] = (),
    scored: Sequence[str] | None = None,
    face_swaps: bool = False,
) -> dict[str, Any]:
    """What the default's epochs and recipe are chosen on (its threshold, on the hold-out's
    real images alone): the hold-out sources that have both classes, ``"sbi"`` (one
    self-blended fake of each of up to ``per_source`` real images of every hold-out source,
    :func:`self_blended_set`), and for each of ``crop_sides`` a ``"<source>@crop<side>"``
    view of each two-class source (:func:`cropped_view`), and for each of ``video_crfs`` a
    ``"<source>@crf<crf>"`` view (:func:`video_view`). ``scored``: only these sources'
    AUCs count (their views too); the others give their real images to ``"sbi"`` alone.
    ``face_swaps``: also ``"swap"``, :func:`face_swap_set` of the counted sources (up to
    ``per_source`` reals each)."""
    counted = {k: v for k, v in two_class_sources(holdout).items() if scored is None or k in scored}
    return {
        **counted,
        "sbi": self_blended_set(holdout, per_source=per_source, seed=seed),
        **perturbed_views(counted, crop_sides=crop_sides, video_crfs=video_crfs),
        **({"swap": face_swap_set(counted, per_source=per_source, seed=seed)} if face_swaps else {}),
    }


def val_set(
    val: Mapping[str, Any],
    *,
    scored: Sequence[str] = ("dfdc", "ffhq"),
    seed: int = 12345,
    per_source: int = 300,
    crop_sides: Sequence[float] = (),
    video_crfs: Sequence[int] = (),
    face_swaps: bool = False,
) -> dict[str, Any]:
    """What the default's stages report on val, once and after their decisions: the views of
    :func:`selection_set`, with the self-blends and face swaps made from the ``scored``
    sources' val reals alone (up to ``per_source`` each, drawn with ``seed``), as every
    default since v4 reported them."""
    counted = {k: v for k, v in two_class_sources(val).items() if k in scored}
    return selection_set(
        counted,
        seed=seed,
        per_source=per_source,
        crop_sides=crop_sides,
        video_crfs=video_crfs,
        face_swaps=face_swaps,
    )


def perturbed_views(
    sources: Mapping[str, Any], *, crop_sides: Sequence[float] = (), video_crfs: Sequence[int] = ()
) -> dict[str, list[tuple[Any, int]]]:
    """For each source, a ``"<source>@crop<side>"`` view per side of ``crop_sides``
    (:func:`cropped_view`), then a ``"<source>@crf<crf>"`` view per CRF of ``video_crfs``
    (:func:`video_view`)."""
    out = {f"{name}@crop{side:g}": cropped_view(data, side) for side in crop_sides for name, data in sources.items()}
    out.update({f"{name}@crf{crf:d}": video_view(data, crf) for crf in video_crfs for name, data in sources.items()})
    return out


def real_views(sources: Mapping[str, Any], *, crop_sides: Sequence[float] = ()) -> Iterator[tuple[str, list[Any]]]:
    """The real images of each source, as given (``"<source>"``) and cut to each of
    ``crop_sides`` (``"<source>@crop<side>"``, :func:`cropped_view`), as ``(key, images)``;
    sources without real images are skipped."""
    for name, part in sources.items():
        data = as_labeled_data(part)
        reals = data.subset(np.flatnonzero(data.labels == 0).tolist())
        if not len(reals):
            continue
        yield name, [reals.image(i) for i in range(len(reals))]
        for side in crop_sides:
            yield f"{name}@crop{side:g}", [im for im, _ in cropped_view(reals, side)]


def real_scores(
    score: Callable[[list[Any]], np.ndarray], sources: Mapping[str, Any], *, crop_sides: Sequence[float] = ()
) -> dict[str, np.ndarray]:
    """``score`` (a list of images -> P(fake), e.g. ``detector.predict``) of the real images of
    each source, as given and at each of ``crop_sides`` (keys of :func:`real_views`): score
    once, then take :func:`real_score_quantiles` at as many false-alarm rates as needed."""
    return {
        key: np.asarray(score(images), dtype=np.float64) for key, images in real_views(sources, crop_sides=crop_sides)
    }


def real_score_quantiles(scores: Mapping[str, np.ndarray], false_alarms: float) -> dict[str, float]:
    """The ``1 - false_alarms`` quantile of each view's real scores (from :func:`real_scores`):
    a threshold at the largest of them labels at most ``false_alarms`` of every source's
    reals, at every crop side, fake."""
    if not 0.0 < false_alarms < 1.0:
        raise DataError(f"false_alarms={false_alarms!r}: expected a rate between 0 and 1")
    return {key: float(np.quantile(values, 1.0 - false_alarms)) for key, values in scores.items()}
