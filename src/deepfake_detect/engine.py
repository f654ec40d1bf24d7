"""``InferenceEngine``: the one owner of how a detector's model is run.

A :class:`~deepfake_detect.Detector` holds one engine (:attr:`Detector.engine
<deepfake_detect.Detector.engine>`), and its model and config live there. The engine owns
everything that scores images:

* choosing the runtime (:meth:`~InferenceEngine.select`, which asks
  :func:`deepfake_detect.backends.select`: torch, or an exported graph on OpenVINO or ONNX
  Runtime, at a precision);
* the inference-optimised torch model (:meth:`~InferenceEngine.inference_model`: BatchNorm
  folded, channels_last; rebuilt when the weights change);
* the graph sessions, the exported-graph cache and int8 graphs (its
  :class:`~deepfake_detect.backends.Runtime`, :attr:`~InferenceEngine.runtime`);
* scoring: :meth:`~InferenceEngine.predict` (inputs -> P(fake), with prefetching, face crops
  and unreadable-image handling), :meth:`~InferenceEngine.predict_tensor` (a preprocessed
  batch), :meth:`~InferenceEngine.stack` (prepared images -> the batch the runtime takes);
* sharded prediction under ``torchrun`` (``predict(..., distributed=True)``).

``Detector.predict``/``predict_tensor``, evaluation (through ``Detector.predict``),
validation during fine-tuning (an engine on the model being trained), robustness sweeps
(``predict_tensor``) and the detection service (the served detector's engine, chosen once at
startup) all score through an engine, so they run the same runtime on the same state.
"""

from __future__ import annotations

import copy
import numbers
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

from . import backends
from .backends import BackendChoice, Runtime, Scorer, check_backend, check_precision, torch_scores
from .config import DetectorConfig
from .data.images import ERROR_MODES, MAX_IMAGE_PIXELS, describe, flatten_inputs
from .data.preprocess import Preprocessor
from .distributed import DistContext, check_device, cores_per_process, local_device, threads_per_process
from .errors import DeepfakeDetectError, ImageLoadError
from .face import FaceCropPreprocessor, NoFaceWarning
from .fast import optimize_for_inference, weights_fingerprint
from .heads import p_fake

__all__ = ["InferenceEngine", "SkippedImagesWarning", "check_batch_size", "DIST_CHECK_BATCHES"]

#: Under ``torchrun``, each process scores this many batches between two checks that no
#: process has failed, so a failure stops the others soon (long before a collective timeout).
DIST_CHECK_BATCHES = 8


class SkippedImagesWarning(UserWarning):
    """Issued by ``predict(..., errors="skip")``; ``.errors`` holds one ImageLoadError per skipped input."""

    def __init__(self, errors: list[ImageLoadError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f"; ... ({len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"skipped {len(errors)} unreadable image(s), scored NaN: {shown}{more}")


def check_batch_size(batch_size: Any) -> None:
    """Raise :class:`DeepfakeDetectError` unless ``batch_size`` is an int of at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise DeepfakeDetectError(f"batch_size={batch_size!r}: expected an int of at least 1")


class InferenceEngine:
    """A model, the config that says how to feed it, and everything that runs it for inference.

    Args:
        model: the ``nn.Module`` (its forward maps a normalised (N, 3, H, W) batch to logits,
            or a tuple whose first element is the logits).
        config: the :class:`~deepfake_detect.DetectorConfig` (preprocessing, output kind).

    Attributes:
        model: the model; replace it, or change its weights in place, at any time: sessions,
            cached graphs and the optimised copy follow the weights (never a stale one).
        config: the config; replace it at any time, as for ``model``.
        runtime: the graph sessions and digests of the current weights
            (:class:`~deepfake_detect.backends.Runtime`).
        last_choice: what scored the last :meth:`predict` (backend, precision, reason), ``None``
            before the first.

    ``copy.deepcopy`` (and pickling) copies the model and config and starts with no sessions
    and no optimised copy.
    """

    def __init__(self, model: nn.Module, config: DetectorConfig) -> None:
        self.model = model
        self.config = config
        self.runtime = Runtime()
        self.last_choice: BackendChoice | None = None
        self._fast: tuple[Any, nn.Module] | None = None  # (weights fingerprint, optimised copy)

    def __deepcopy__(self, memo: dict[int, Any]) -> InferenceEngine:
        twin = InferenceEngine(copy.deepcopy(self.model, memo), copy.deepcopy(self.config, memo))
        twin.last_choice = self.last_choice
        return twin

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "config": self.config, "last_choice": self.last_choice}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model, self.config = state["model"], state["config"]
        self.runtime = Runtime()
        self.last_choice = state.get("last_choice")
        self._fast = None

    def __repr__(self) -> str:
        return f"InferenceEngine({self.config.architecture!r}, device={self.device}, last={self.last_choice})"

    # -- the model -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the model is (its first parameter's device; the CPU for a model without any)."""
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> InferenceEngine:
        """Move the model to ``device``; one torch cannot use here raises
        :class:`DeepfakeDetectError` before anything moves."""
        self.model.to(check_device(device))
        return self

    def inference_model(self, optimize: bool = True) -> nn.Module:
        """The model in eval mode, BatchNorm folded and channels_last when ``optimize``;
        rebuilt when any weight changes. Without ``optimize`` an up-to-date optimised copy
        is still used if there is one, else the model itself."""
        key = weights_fingerprint(self.model)
        if not optimize and (self._fast is None or self._fast[0] != key):
            return self.model.eval()
        if self._fast is None or self._fast[0] != key:
            self.model.eval()
            self._fast = (key, optimize_for_inference(self.model))
        return self._fast[1]

    def scores_from_output(self, output: Any) -> torch.Tensor:
        """Model output (logits, or a tuple whose first element is the logits) -> P(fake), shape (N,)."""
        return p_fake(output, self.config.output)

    # -- preprocessing ---------------------------------------------------------------------
    def preprocessor(self, *, max_pixels: int | None = MAX_IMAGE_PIXELS, draft: bool = False) -> Preprocessor:
        """The config's preprocessing (``draft``: decode large JPEGs at a reduced scale)."""
        return Preprocessor(self.config, max_pixels=max_pixels, draft=draft)

    def face_crop_preprocessor(self, prep: Preprocessor | None = None) -> FaceCropPreprocessor:
        """A :class:`~deepfake_detect.face.FaceCropPreprocessor` with the config's crop policy
        (``config.face_crop``) around ``prep`` (default: :meth:`preprocessor`)."""
        return FaceCropPreprocessor.from_config(self.config, prep or self.preprocessor())

    @staticmethod
    def stack(
        prep: Preprocessor | FaceCropPreprocessor, prepared: list[Any], choice: BackendChoice
    ) -> torch.Tensor | np.ndarray:
        """Prepared images -> the batch ``choice``'s scorer takes: a normalised channels_last
        tensor for torch, a C-contiguous NCHW float32 array for a graph runtime."""
        return prep.to_tensor(prepared) if choice.backend == "torch" else prep.to_array(prepared)

    # -- choosing the runtime --------------------------------------------------------------
    def select(
        self, backend: str = "auto", precision: str = "fp32", *, num_images: int, calibration: Any = None
    ) -> tuple[BackendChoice, Scorer]:
        """What scores a job of ``num_images`` images, built now: ``(choice, scorer)``; see
        :func:`deepfake_detect.backends.select` (``predict`` calls it once per call)."""
        return backends.select(self, backend, precision, num_images=num_images, calibration=calibration)

    # -- scoring ---------------------------------------------------------------------------
    def predict_tensor(
        self,
        batch: torch.Tensor,
        *,
        optimize: bool = True,
        backend: str = "torch",
        precision: str = "fp32",
        calibration: Any = None,
    ) -> torch.Tensor:
        """P(fake) for an already preprocessed (N, 3, H, W) float batch, shape (N,), float32;
        see :meth:`Detector.predict_tensor <deepfake_detect.Detector.predict_tensor>`.

        Raises:
            DeepfakeDetectError: ``batch`` is not a float (N, 3, H, W) tensor.
        """
        if (
            not isinstance(batch, torch.Tensor)
            or batch.ndim != 4
            or batch.shape[1] != 3
            or not batch.is_floating_point()
        ):
            what = (
                f"a {batch.dtype} tensor of shape {tuple(batch.shape)}"
                if isinstance(batch, torch.Tensor)
                else type(batch).__name__
            )
            raise DeepfakeDetectError(
                f"predict_tensor needs a preprocessed float (N, 3, H, W) batch, got {what}; "
                "use predict() for images, or add a batch dimension with batch[None]"
            )
        if backend == "torch" and precision == "fp32":
            return torch_scores(self, batch, optimize=optimize, precision="fp32")
        if backend == "torch":
            self.select(backend, precision, num_images=len(batch))  # checks the device
            return torch_scores(self, batch, optimize=optimize, precision=precision)
        _, score = self.select(backend, precision, num_images=len(batch), calibration=calibration)
        return torch.from_numpy(score(batch))

    def predict(
        self,
        inputs: Any,
        *,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        progress: bool | None = None,
        num_workers: int | None = None,
        errors: str = "raise",
        max_pixels: int | None = MAX_IMAGE_PIXELS,
        crop_faces: bool = False,
        fast_decode: bool = False,
        backend: str = "auto",
        precision: str = "fp32",
        calibration: Any = None,
        distributed: bool = False,
    ) -> np.ndarray:
        """P(fake) in [0, 1] for each input, in input order, as a float32 array; the arguments
        are :meth:`Detector.predict <deepfake_detect.Detector.predict>`'s (``backend`` has no
        default of its own here: ``"auto"``). :attr:`last_choice` says what scored them."""
        if errors not in ERROR_MODES:
            raise DeepfakeDetectError(f"errors={errors!r}: expected 'raise' or 'skip'")
        check_batch_size(batch_size)
        check_backend(backend)
        check_precision(precision)
        options = dict(
            batch_size=batch_size,
            progress=progress,
            num_workers=num_workers,
            errors=errors,
            max_pixels=max_pixels,
            crop_faces=crop_faces,
            fast_decode=fast_decode,
            backend=backend,
            precision=precision,
            calibration=calibration,
        )
        if distributed:
            return self._predict_distributed(inputs, device, options)
        if device is not None:
            self.to(device)
        return self._predict(flatten_inputs(inputs), **options)

    def _predict(
        self,
        items: list[Any],
        *,
        batch_size: int,
        progress: bool | None,
        num_workers: int | None,
        errors: str,
        max_pixels: int | None,
        crop_faces: bool,
        fast_decode: bool,
        backend: str,
        precision: str,
        calibration: Any,
    ) -> np.ndarray:
        """:meth:`predict` on a flat list of single images, on this process."""
        choice, score = self.select(backend, precision, num_images=len(items), calibration=calibration)
        self.last_choice = choice
        scores = np.full(len(items), np.nan, dtype=np.float32)
        skipped: list[ImageLoadError] = []
        plain = self.preprocessor(max_pixels=max_pixels, draft=fast_decode)
        # with crop_faces: load, crop the face, then prepare
        prep = self.face_crop_preprocessor(plain) if crop_faces else plain
        bar = _progress(len(items), progress, desc="predict")
        for start, prepared in _prefetch_batches(items, prep, batch_size, num_workers):
            ok = [i for i, p in enumerate(prepared) if not isinstance(p, ImageLoadError)]
            for p in prepared:
                if isinstance(p, ImageLoadError):
                    if errors == "raise":
                        bar.close()
                        raise p
                    skipped.append(p)
            if ok:
                scores[[start + i for i in ok]] = score(self.stack(prep, [prepared[i] for i in ok], choice))
            bar.update(len(prepared))
        bar.close()
        if isinstance(prep, FaceCropPreprocessor):
            prep.warn_not_found(items, stacklevel=5)
        if skipped:
            warnings.warn(SkippedImagesWarning(skipped), stacklevel=4)
        return scores

    # -- torchrun --------------------------------------------------------------------------
    def _predict_distributed(
        self, inputs: Any, device: str | torch.device | None, options: dict[str, Any]
    ) -> np.ndarray:
        """:meth:`predict` with the inputs split over the ``torchrun`` processes (every
        ``world_size``-th from ``rank``, no padding) and the scores gathered on every rank; the
        warnings of ``errors="skip"`` and ``crop_faces`` are merged into one each, issued on
        every rank. Without ``torchrun``, an ordinary call."""
        dev = local_device(device if device is not None else "cuda" if self.device.type == "cuda" else self.device)
        ctx = DistContext.from_env(dev)
        if not ctx.enabled:
            return self.predict(inputs, device=device, **options)
        threads, before = threads_per_process(), torch.get_num_threads()
        try:
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            if threads is not None:
                torch.set_num_threads(threads)
            if options["num_workers"] is None:
                options["num_workers"] = min(4, cores_per_process())
            return self._score_shards(inputs, options, ctx, dev)
        finally:
            if threads is not None:
                torch.set_num_threads(before)
            ctx.close()

    def _score_shards(self, inputs: Any, options: dict[str, Any], ctx: DistContext, dev: torch.device) -> np.ndarray:
        """Score this rank's part in steps of ``DIST_CHECK_BATCHES`` batches, all ranks checking
        for a failure after each step; then gather the scores and warnings."""
        items: list[Any] = []
        error: Exception | None = None
        try:
            items = flatten_inputs(inputs)
            self.to(dev)
            # decide the backend once, for all the inputs, as single-process predict would: this
            # builds what scores them (the optimised torch model, or the graph session the
            # per-step calls below then find held) and nothing else
            self.select(
                options["backend"], options["precision"], num_images=len(items), calibration=options["calibration"]
            )
        except Exception as e:
            error = e
        ctx.raise_if_any(error)
        sizes = ctx.gather(len(items))
        if len(set(sizes)) > 1:
            raise DeepfakeDetectError(
                f"predict(distributed=True): the processes were given different inputs "
                f"({', '.join(map(str, sizes))} images by rank); give each the same list"
            )
        n, mine = len(items), ctx.shard(list(range(len(items))), pad=False)
        scores, skipped, no_face, others = self._score_steps(items, mine, options, ctx)
        result = np.full(n, np.nan, dtype=np.float32)
        all_skipped: list[tuple[int, ImageLoadError]] = []
        all_no_face: list[int] = []
        for part_idx, part_scores, part_skipped, part_no_face in ctx.gather((mine, scores, skipped, no_face)):
            result[part_idx] = part_scores
            all_skipped += part_skipped
            all_no_face += part_no_face
        for w in others:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if all_no_face:
            warnings.warn(NoFaceWarning([describe(items[i]) for i in sorted(all_no_face)], total=n), stacklevel=5)
        if all_skipped:
            warnings.warn(SkippedImagesWarning([e for _, e in sorted(all_skipped, key=lambda t: t[0])]), stacklevel=5)
        return result

    def _score_steps(
        self, items: list[Any], mine: list[int], options: dict[str, Any], ctx: DistContext
    ) -> tuple[np.ndarray, list[tuple[int, ImageLoadError]], list[int], list[warnings.WarningMessage]]:
        """This rank's scores (of ``items[i] for i in mine``), skipped images, images without a
        face and other warnings, in steps after each of which every rank checks for a failure."""
        n, chunk = len(items), options["batch_size"] * DIST_CHECK_BATCHES
        per_rank = -(-n // ctx.world_size)  # the most any rank has
        steps = -(-per_rank // chunk)  # the same on every rank
        scores = np.full(len(mine), np.nan, dtype=np.float32)
        skipped: list[tuple[int, ImageLoadError]] = []
        no_face: list[int] = []
        others: list[warnings.WarningMessage] = []
        error: Exception | None = None
        progress = options.pop("progress")
        bar = _progress(n, progress if ctx.is_main else False, desc="predict")
        for step in range(steps):
            part = mine[step * chunk : (step + 1) * chunk]
            try:
                if part:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        out = self.predict([items[i] for i in part], progress=False, **options)
                    scores[step * chunk : step * chunk + len(part)] = out
                    for w in caught:
                        if isinstance(w.message, SkippedImagesWarning):
                            skipped += _skipped_at(part, out, w.message.errors)
                        elif isinstance(w.message, NoFaceWarning):
                            no_face += _in_order(part, [describe(items[i]) for i in part], w.message.inputs)
                        else:
                            others.append(w)
            except Exception as e:
                error = e
            ctx.raise_if_any(error)
            bar.update(_done(n, ctx.world_size, chunk, step) - bar.n)
        bar.close()
        return scores, skipped, no_face, others


# -- helpers -------------------------------------------------------------------------------------
def _prepare_or_error(
    prep: Preprocessor | FaceCropPreprocessor, item: Any
) -> np.ndarray | torch.Tensor | ImageLoadError:
    try:
        return prep.prepare(item)
    except ImageLoadError as e:
        return e


def _prefetch_batches(
    items: Sequence[Any], prep: Preprocessor | FaceCropPreprocessor, batch_size: int, num_workers: int | None
) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(start index, prepared items)`` per batch; a thread pool decodes the next
    batch while the caller runs the current one. At most two batches are held at a time,
    so memory does not grow with the number of inputs."""
    workers = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
    if workers <= 0 or len(items) <= 1:
        for start in range(0, len(items), batch_size):
            yield start, [_prepare_or_error(prep, x) for x in items[start : start + batch_size]]
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepfake-detect-load") as pool:
        starts = list(range(0, len(items), batch_size))
        submit = lambda s: [pool.submit(_prepare_or_error, prep, x) for x in items[s : s + batch_size]]  # noqa: E731
        pending = submit(starts[0]) if starts else []
        for i, start in enumerate(starts):
            current = pending
            pending = submit(starts[i + 1]) if i + 1 < len(starts) else []
            yield start, [f.result() for f in current]


def _done(n: int, world: int, chunk: int, step: int) -> int:
    """Images scored by all the ranks together after ``step`` + 1 steps."""
    return sum(min(len(range(r, n, world)), (step + 1) * chunk) for r in range(world))


def _skipped_at(part: list[int], scores: np.ndarray, errors: list[ImageLoadError]) -> list[tuple[int, ImageLoadError]]:
    """The input index of each skipped image: the NaN scores, in order (when a model also
    gave NaN for a readable image and they do not pair up, the part's first index)."""
    nan = [part[j] for j in np.flatnonzero(np.isnan(scores))]
    return list(zip(nan, errors, strict=True)) if len(nan) == len(errors) else [(part[0], e) for e in errors]


def _in_order(part: list[int], names: list[str], wanted: list[str]) -> list[int]:
    """The indices in ``part`` of ``wanted``, a subsequence of ``names`` (greedily)."""
    out, k = [], 0
    for i, name in zip(part, names, strict=False):
        if k < len(wanted) and name == wanted[k]:
            out.append(i)
            k += 1
    return out


def _progress(total: int, enabled: bool | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = total > 1000
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, leave=False)
