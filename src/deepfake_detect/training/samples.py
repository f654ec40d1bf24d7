"""Training samples: decoded, resized uint8 images (cached), self-blended fakes, augmentation,
and the per-epoch plan of which image comes when."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..augment import apply_augment, get_augment
from ..data.datasets import LabeledData
from ..data.preprocess import Preprocessor, to_uint8_hwc
from ..errors import TrainingError

__all__ = [
    "Samples",
    "IMAGE_CACHE_BYTES",
    "AS_IS",
    "SELF_BLEND",
    "FACE_SWAP",
    "SWAP_CANDIDATES",
    "check_source_weights",
    "make_batches",
    "load_batches",
]

#: Decoded training images are cached in memory when they need at most this many bytes.
IMAGE_CACHE_BYTES = 4 * 1024**3

Plan = list[tuple[int, int]]
#: ``synthetic`` in a plan: the image as it is, a self-blend of it, a face swap onto it.
AS_IS, SELF_BLEND, FACE_SWAP = 0, 1, 2
#: Face swaps paste the face whose landmarks lie closest among this many drawn at random.
SWAP_CANDIDATES = 8


class Samples:
    """The training images of one run: ``get(index, synthetic, epoch)`` gives an (H, W, 3)
    uint8 image at the detector's input size and its label, the same for every run with
    the same seed."""

    def __init__(
        self,
        data: LabeledData,
        prep: Preprocessor,
        augment: Any,
        synth: float,
        seed: int,
        cache: bool,
        source_ids: np.ndarray | None = None,
        source_weights: list[float] | None = None,
        epoch_size: int | None = None,
        *,
        swap: float = 0.0,
    ) -> None:
        self.data, self.seed = data, seed
        self.source_ids, self.source_weights, self.epoch_size = source_ids, source_weights, epoch_size
        self.faces: dict[int, tuple[Any, Any]] = {}
        self.prep = prep
        self.augment = get_augment(augment)
        self.synth, self.swap = synth, swap
        self.real_indices = np.flatnonzero(data.labels == 0)
        if source_weights is not None and source_ids is not None:
            # synthetic fakes come from the reals of the sources an epoch draws from: a source
            # weighted 0 gives none (uniform over those reals, not in proportion to the weights)
            used = np.flatnonzero(np.asarray(source_weights) > 0)
            self.real_indices = self.real_indices[np.isin(source_ids[self.real_indices], used)]
        h, w = prep.height, prep.width
        self.cache: dict[int, np.ndarray] | None = {} if cache and len(data) * h * w * 3 <= IMAGE_CACHE_BYTES else None

    def epoch_plan(self, epoch: int) -> Plan:
        """``(index, synthetic)`` pairs for one epoch in shuffled order, the same for every
        run with the same seed. ``synthetic`` is :data:`AS_IS`, :data:`SELF_BLEND` (a
        self-blended fake of real image ``index``) or :data:`FACE_SWAP` (another real face
        pasted onto real image ``index``)."""
        rng = np.random.default_rng([self.seed, epoch, 0])
        drawn = self._drawn(rng)
        plan = [(int(i), AS_IS) for i in drawn]
        reals = int((self.data.labels[drawn] == 0).sum())
        for ratio, kind in ((self.synth, SELF_BLEND), (self.swap, FACE_SWAP)):
            n = int(round(ratio * reals))
            if n:
                chosen = rng.choice(self.real_indices, size=n, replace=n > len(self.real_indices))
                plan += [(int(i), kind) for i in chosen]
        order = rng.permutation(len(plan))
        return [plan[i] for i in order]

    def _drawn(self, rng: np.random.Generator) -> np.ndarray:
        """The images of one epoch: all of them, or ``epoch_size`` of them, drawn from the
        sources in proportion to their weights (default: to their sizes)."""
        if self.epoch_size is None and self.source_weights is None:
            return np.arange(len(self.data))
        ids = self.source_ids if self.source_ids is not None else np.zeros(len(self.data), dtype=np.int64)
        sizes = np.bincount(ids)
        total = self.epoch_size or len(self.data)
        weights = np.asarray(self.source_weights if self.source_weights is not None else sizes, dtype=np.float64)
        counts = np.floor(total * weights / weights.sum()).astype(int)
        counts[int(np.argmax(weights))] += total - counts.sum()
        drawn = []
        for k, n in enumerate(counts):
            pool = np.flatnonzero(ids == k)
            if n <= 0 or len(pool) == 0:
                continue
            whole, rest = divmod(int(n), len(pool))
            drawn += [pool] * whole + [rng.choice(pool, size=rest, replace=False)]
        return np.sort(np.concatenate(drawn))

    def base(self, index: int) -> np.ndarray:
        """Image ``index`` decoded and resized, (H, W, 3) uint8 (float tensors are quantised)."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        prepared = self.prep.prepare(self.data.image(index))
        arr = to_uint8_hwc(prepared) if isinstance(prepared, torch.Tensor) else prepared
        if self.cache is not None:
            self.cache[index] = arr
        return arr

    def face(self, index: int) -> tuple[Any, Any]:
        """``(box, landmarks)`` of image ``index`` (:func:`~deepfake_detect.synth.locate_face`),
        found once, on its resized copy."""
        if index not in self.faces:
            from ..synth import locate_face

            self.faces[index] = locate_face(Image.fromarray(self.base(index)))
        return self.faces[index]

    def _face_swap(self, index: int, rng: np.random.Generator) -> np.ndarray | None:
        """A face swap onto real image ``index`` from another real image of its source: of
        :data:`SWAP_CANDIDATES` drawn, the one whose landmarks (centred, scaled) lie closest.
        ``None`` when image ``index`` or every candidate has no landmarks."""
        from ..synth import face_layout, face_swap

        target = self.face(index)[1]
        if target is None:
            return None
        pool = self.real_indices
        if self.source_ids is not None:
            pool = pool[self.source_ids[pool] == self.source_ids[index]]
        pool = pool[pool != index]
        if not len(pool):
            return None
        layout = face_layout(target)
        best, best_dist = None, np.inf
        for j in rng.choice(pool, size=min(SWAP_CANDIDATES, len(pool)), replace=False):
            points = self.face(int(j))[1]
            if points is None:
                continue
            dist = float(np.linalg.norm(face_layout(points) - layout))
            if dist < best_dist:
                best, best_dist = (int(j), points), dist
        if best is None:
            return None
        fake, _ = face_swap(
            self.base(index), self.base(best[0]), rng=rng, target_landmarks=target, source_landmarks=best[1]
        )
        return np.array(fake, dtype=np.uint8)

    def get(self, index: int, synthetic: int, epoch: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, epoch, index, synthetic, 1])
        image = self.base(index)
        label = int(self.data.labels[index])
        if synthetic == FACE_SWAP:
            swapped = self._face_swap(index, rng)
            if swapped is None:  # no landmarks to swap by: a self-blend instead
                synthetic = SELF_BLEND
            else:
                image, label = swapped, 1
        if synthetic == SELF_BLEND:
            from ..synth import self_blend

            fake, _ = self_blend(Image.fromarray(image), rng=rng, face=self.face(index))
            image, label = np.array(fake, dtype=np.uint8), 1
        if self.augment is not None:
            image = apply_augment(self.augment, image, rng)
        return image, label


def check_source_weights(weights: Mapping[str, float] | None, names: list[str]) -> list[float] | None:
    """``source_weights`` as a list in the order of ``names``, checked.

    Raises:
        TrainingError: weights without several sources, unknown names, or not usable numbers.
    """
    if weights is None:
        return None
    if not names:
        raise TrainingError("source_weights needs several training sources: pass train as {name: data, ...}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise TrainingError(f"source_weights names unknown sources {unknown}; the training sources are {names}")
    out = [float(weights.get(n, 0.0)) for n in names]
    if any(not math.isfinite(w) or w < 0 for w in out) or sum(out) <= 0:
        raise TrainingError(f"source_weights={dict(weights)}: expected non-negative numbers, at least one positive")
    return out


def make_batches(plan: Sequence[tuple[int, int]], batch_size: int) -> list[Plan]:
    """Consecutive batches; a last batch of one image joins the one before it (BatchNorm
    cannot train on a single image)."""
    out = [list(plan[i : i + batch_size]) for i in range(0, len(plan), batch_size)]
    if len(out) > 1 and len(out[-1]) == 1:
        last = out.pop()  # not `out[-2] += out.pop()`: its target index is taken before the pop
        out[-1] = out[-1] + last
    return out


def load_batches(
    samples: Samples, batches: list[Plan], epoch: int, pool: ThreadPoolExecutor | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(uint8 images (N, H, W, 3), labels (N,))``, preparing the next batch in the pool."""

    def load(batch: Plan) -> tuple[np.ndarray, np.ndarray]:
        got = (
            [samples.get(i, s, epoch) for i, s in batch]
            if pool is None
            else list(pool.map(lambda b: samples.get(b[0], b[1], epoch), batch))
        )
        return np.stack([g[0] for g in got]), np.array([g[1] for g in got], dtype=np.float32)

    if pool is None:
        for b in batches:
            yield load(b)
        return
    with ThreadPoolExecutor(max_workers=1) as ahead:
        future = ahead.submit(load, batches[0]) if batches else None
        for k in range(len(batches)):
            current = future.result()  # type: ignore[union-attr]
            future = ahead.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
            yield current
