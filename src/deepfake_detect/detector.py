"""``Detector``: a model plus the config that says how to feed it, and ``load_detector``."""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .backends import BackendChoice, Runtime, check_backend, check_precision
from .config import DetectorConfig
from .data.images import MAX_IMAGE_PIXELS, describe, flatten_inputs
from .data.preprocess import Preprocessor
from .errors import ConfigError, DeepfakeDetectError, ImageLoadError, UnknownDetectorError
from .guard import DEFAULT_MAX_PARAMS, check_parameter_limit
from .heads import p_fake
from .loading import CONFIG_NAME, WEIGHTS_NAME, Resolved, local_folder, resolve, weights_file
from .registry import DetectorEntry, WeightsEntry, default_weights, get_entry, get_weights
from .weights import atomic_path, load_weights, read_state_dict, save_weights

if TYPE_CHECKING:
    from .distributed import DistContext
    from .training import TrainConfig, TrainResult

__all__ = ["Detector", "load_detector", "SkippedImagesWarning", "CONFIG_NAME", "WEIGHTS_NAME"]

#: Below this many images, ``predict`` skips building the optimised model (its set-up costs
#: more than it saves on a few images).
FAST_PATH_MIN_IMAGES = 32


class SkippedImagesWarning(UserWarning):
    """Issued by ``predict(..., errors="skip")``; ``.errors`` holds one ImageLoadError per skipped input."""

    def __init__(self, errors: list[ImageLoadError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f"; ... ({len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"skipped {len(errors)} unreadable image(s), scored NaN: {shown}{more}")


class Detector:
    """A deepfake detector: ``model`` (an ``nn.Module``) and ``config`` (a :class:`DetectorConfig`).

    Build one with :func:`load_detector`. ``predict`` gives P(fake) per image; ``finetune``
    trains it on your data; ``evaluate`` scores it; ``save_pretrained`` writes a folder
    that :func:`load_detector` (and the Hub) reads back.

    Attributes:
        backend: what ``predict`` runs on by default: ``"auto"``, ``"torch"``,
            ``"onnxruntime"`` or ``"openvino"`` (see :mod:`deepfake_detect.backends`).
        last_backend: what scored the last ``predict`` call (backend, precision, reason),
            ``None`` before the first.
    """

    def __init__(self, model: nn.Module, config: DetectorConfig, *, source: str = "", backend: str = "auto") -> None:
        self.model = model
        self.config = config
        self.source = source or config.architecture
        self.backend = check_backend(backend)
        self.last_backend: BackendChoice | None = None
        self._fast: tuple[Any, nn.Module] | None = None
        self._runtime = Runtime()

    # -- description -----------------------------------------------------------------
    @property
    def num_params(self) -> int:
        """Number of parameters of the model (trainable or not)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def entry(self) -> DetectorEntry:
        """The registry entry of the architecture."""
        return get_entry(self.config.architecture)

    def __repr__(self) -> str:
        h, w = self.config.input_size
        return (
            f"Detector({self.config.architecture!r}, params={self.num_params:,}, input={h}x{w}, "
            f"output={self.config.output}, source={self.source!r})"
        )

    def to(self, device: str | torch.device) -> Detector:
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); a device
        torch cannot use here raises :class:`DeepfakeDetectError` before anything moves."""
        from .distributed import check_device

        self.model.to(check_device(device))
        return self

    def preprocessor(self, *, max_pixels: int | None = MAX_IMAGE_PIXELS, draft: bool = False) -> Preprocessor:
        """The detector's own preprocessing (the one its weights were trained with).

        ``draft``: decode large JPEGs at a reduced scale (faster, slightly different pixels).
        """
        return Preprocessor(self.config, max_pixels=max_pixels, draft=draft)

    # -- inference -------------------------------------------------------------------
    def face_crop_preprocessor(self, prep: Preprocessor | None = None) -> Any:
        """A :class:`~deepfake_detect.face.FaceCropPreprocessor` with this detector's crop
        policy (``config.face_crop``) around ``prep`` (default: :meth:`preprocessor`)."""
        from .face import CropPolicy, FaceCropPreprocessor

        return FaceCropPreprocessor(prep or self.preprocessor(), policy=CropPolicy.from_config(self.config.face_crop))

    def scores_from_output(self, output: Any) -> torch.Tensor:
        """Model output (logits, or a tuple whose first element is the logits) -> P(fake), shape (N,)."""
        return p_fake(output, self.config.output)

    def predict_tensor(
        self,
        batch: torch.Tensor,
        *,
        optimize: bool = True,
        backend: str = "torch",
        precision: str = "fp32",
        calibration: Any = None,
    ) -> torch.Tensor:
        """P(fake) for an already preprocessed (N, 3, H, W) batch, shape (N,), float32.

        Args:
            batch: normalised float32 images (see :meth:`preprocessor`).
            optimize: torch backend: run the inference-optimised copy of the model
                (BatchNorm folded, channels_last; built once per set of weights, which costs
                a fraction of a second).
            backend: ``"torch"`` (default here, unlike :meth:`predict`), ``"onnxruntime"``,
                ``"openvino"`` or ``"auto"`` (decided for a job of ``N`` images); see
                :meth:`predict`.
            precision: as for :meth:`predict`.
            calibration: as for :meth:`predict`.

        Returns:
            On the batch's device for the torch backend, on the CPU for a graph runtime.

        Raises:
            DeepfakeDetectError: ``batch`` is not a float (N, 3, H, W) tensor.
        """
        from .backends import select, torch_scores

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
            select(self, backend, precision, num_images=len(batch))  # checks the device
            return torch_scores(self, batch, optimize=optimize, precision=precision)
        _, score = select(self, backend, precision, num_images=len(batch), calibration=calibration)
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
        backend: str | None = None,
        precision: str = "fp32",
        calibration: Any = None,
        distributed: bool = False,
    ) -> np.ndarray:
        """P(fake) in [0, 1] for each input, in input order.

        Args:
            inputs: a path (str or Path); a folder (scanned recursively for image files,
                in the order of :func:`deepfake_detect.data.list_images`, which gives the
                file names back); or a list mixing paths, folders, the bytes of image files,
                PIL images, HWC uint8 numpy arrays, CHW float tensors in [0, 1], and NCHW
                float tensors (one input per image).
            batch_size: images per forward pass.
            device: ``"cpu"``, ``"cuda"``, ...; default: where the model is.
            progress: show a progress bar (default: only for more than 1,000 images).
            num_workers: threads decoding and resizing ahead of the model (default: the
                number of CPU cores, at most 4).
            errors: ``"raise"`` (default) stops at the first unreadable image with an
                :class:`ImageLoadError`; ``"skip"`` gives NaN for it, scores the rest, and
                issues a :class:`SkippedImagesWarning` listing what was skipped.
            max_pixels: largest image accepted (decompression-bomb guard).
            crop_faces: score the largest face of each image (OpenCV Haar cascade, cropped
                as ``config.face_crop`` says, the same policy as training with
                ``crop_faces=True``; see :func:`deepfake_detect.face.crop_face`, needs the
                ``face`` extra).
                Images without a face are scored whole, and one
                :class:`~deepfake_detect.face.NoFaceWarning` names them.
            fast_decode: decode JPEGs at least twice the input size at a reduced scale
                (Pillow's draft mode): several times faster on large photos, but scores
                move slightly (about 1e-2 seen on a 1024-pixel photo). Off by default, so
                scores match a full decode and resize.
            backend: what runs the model (default: :attr:`backend`, set by
                :func:`load_detector`): ``"torch"``; ``"onnxruntime"`` (extra ``onnx``) or
                ``"openvino"`` (extra ``openvino``): the exported graph on a CPU session
                (exported once per version of the weights, checked against torch and cached
                on disk; scores equal torch's within 1e-4); ``"auto"``: on CPU a graph
                runtime (OpenVINO if installed, else ONNX Runtime) when it repays its
                set-up (a session or a cached graph for these weights, or a large job),
                else torch; torch on CUDA. See :mod:`deepfake_detect.backends`;
                :attr:`last_backend` says what ran.
            precision: ``"fp32"`` (default); ``"int8"``: a statically quantised graph,
                calibrated on ``calibration``, on a graph runtime (OpenVINO or ONNX
                Runtime; faster on CPUs with int8 instructions, scores move);
                ``"fp16"``/``"bf16"``: torch autocast, CUDA only. Used only when asked for,
                and logged.
            calibration: for ``precision="int8"``: a few dozen representative images
                (paths, a folder, PIL images, ... as ``inputs``) that set the activation
                ranges. The int8 graph is cached per weights and calibration set.
            distributed: under ``torchrun``, every process is given the same ``inputs``,
                scores every N-th of them, and gets all the scores back (a collective call:
                every rank must make it). On CUDA each process uses ``cuda:LOCAL_RANK``.
                An unreadable image (``errors="raise"``) or any other failure on one rank
                raises on every rank. Without ``torchrun`` it is an ordinary call.

        Returns:
            ``numpy.ndarray`` of float32, shape (number of inputs,).

        Raises:
            ImageLoadError: an unreadable input (with ``errors="raise"``).
            MissingDependencyError: ``backend="onnxruntime"`` or ``precision="int8"``
                without the ``onnx`` extra; ``backend="openvino"`` without ``openvino``.
            DeepfakeDetectError: bad arguments; a precision the device cannot run; a
                graph backend asked for on a model that cannot be exported.
        """
        from .backends import select

        if errors not in ("raise", "skip"):
            raise DeepfakeDetectError(f"errors={errors!r}: expected 'raise' or 'skip'")
        check_batch_size(batch_size)
        backend = check_backend(self.backend if backend is None else backend)
        check_precision(precision)
        if distributed:
            return _predict_distributed(
                self,
                inputs,
                dict(
                    batch_size=batch_size,
                    device=device,
                    progress=progress,
                    num_workers=num_workers,
                    errors=errors,
                    max_pixels=max_pixels,
                    crop_faces=crop_faces,
                    fast_decode=fast_decode,
                    backend=backend,
                    precision=precision,
                    calibration=calibration,
                ),
            )
        if device is not None:
            self.to(device)
        items = flatten_inputs(inputs)
        choice, score = select(self, backend, precision, num_images=len(items), calibration=calibration)
        self.last_backend = choice
        graph = choice.backend != "torch"  # a graph runtime takes a C-contiguous NCHW array
        scores = np.full(len(items), np.nan, dtype=np.float32)
        skipped: list[ImageLoadError] = []
        prep = self.preprocessor(max_pixels=max_pixels, draft=fast_decode)
        if crop_faces:
            prep = self.face_crop_preprocessor(prep)  # load, crop the face, then prepare
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
                ready = [prepared[i] for i in ok]
                batch = prep.to_array(ready) if graph else prep.to_tensor(ready)
                scores[[start + i for i in ok]] = score(batch)
            bar.update(len(prepared))
        bar.close()
        if crop_faces:
            prep.warn_not_found(items, stacklevel=3)  # type: ignore[attr-defined]
        if skipped:
            warnings.warn(SkippedImagesWarning(skipped), stacklevel=2)
        return scores

    def _inference_model(self, optimize: bool = True) -> nn.Module:
        """The model in eval mode, BatchNorm folded and channels_last when ``optimize``;
        rebuilt when any weight changes. Without ``optimize`` an up-to-date optimised copy
        is still used if there is one, else the model itself."""
        from .fast import optimize_for_inference, weights_fingerprint

        key = weights_fingerprint(self.model)
        if not optimize and (self._fast is None or self._fast[0] != key):
            return self.model.eval()
        if self._fast is None or self._fast[0] != key:
            self.model.eval()
            self._fast = (key, optimize_for_inference(self.model))
        return self._fast[1]

    # -- training and evaluation -----------------------------------------------------
    def finetune(
        self, train: Any, val: Any = None, *, config: TrainConfig | None = None, **overrides: Any
    ) -> TrainResult:
        """Fine-tune in place on your data; afterwards the detector holds the best weights.

        Args:
            train: labelled data (see :func:`deepfake_detect.training.finetune`), or
                several sources as ``{name: data}``.
            val: validation data, in the same forms as ``train``.
            config: a :class:`~deepfake_detect.training.TrainConfig` (the recipe).
            **overrides: :class:`~deepfake_detect.training.TrainConfig` fields applied on top
                of ``config`` (``epochs=3, lr=1e-3, ...``).

        Returns:
            :class:`~deepfake_detect.training.TrainResult`.
        """
        from .training import finetune

        return finetune(self, train, val, config=config, **overrides)

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        """Challenge metrics on labelled data; see :func:`deepfake_detect.evaluate.evaluate`.
        The detector is not changed; pass the result to :meth:`record_metrics` to show it in
        the model card."""
        from .evaluate import evaluate

        return evaluate(self, data, **kwargs)

    def record_metrics(self, metrics: dict[str, Any], *, data: Any = None) -> None:
        """Record ``metrics`` (from :meth:`evaluate`) in ``config.metadata`` so the model card
        of a later :meth:`save_pretrained`/:meth:`push_to_hub` shows them.

        Args:
            metrics: metric name -> value (or, for several sources, name -> metrics).
            data: what they were measured on: a description string, or the data passed to
                :meth:`evaluate` (described by its name and size).
        """
        from .evaluate import describe_data

        where = data if isinstance(data, str) else describe_data(data) if data is not None else None
        meta = {**self.config.metadata, "metrics": dict(metrics)}
        if where:
            meta["metrics_data"] = where
        else:
            meta.pop("metrics_data", None)
        self.config = self.config.replace(metadata=meta)

    def explain(self, image: Any, *, method: str = "auto") -> np.ndarray:
        """A heatmap (H, W) float32 in [0, 1] at the image's size of the evidence for "fake";
        see :func:`deepfake_detect.explain.explain` for the methods."""
        from .explain import explain

        return explain(self, image, method=method)

    def export_onnx(self, path: str | os.PathLike[str], *, dynamic_batch: bool = True) -> Path:
        """Write an ONNX model (N, 3, H, W) normalised input -> P(fake) (N,), preprocessing in its
        metadata; see :func:`deepfake_detect.export.export_onnx`."""
        from .export import export_onnx

        return export_onnx(self, path, dynamic_batch=dynamic_batch)

    def predict_video(
        self, path: str | os.PathLike[str], num_frames: int = 16, aggregate: str = "mean", *, crop_faces: bool = True
    ) -> float:
        """P(fake) of a video: ``aggregate`` ("mean", "median", "max") of ``num_frames`` evenly
        sampled (face-cropped) frames; see :func:`deepfake_detect.video.predict_video`."""
        from .video import predict_video

        return predict_video(self, path, num_frames=num_frames, aggregate=aggregate, crop_faces=crop_faces)

    # -- persistence -----------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike[str], *, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md``.

        Args:
            dtype: store floating-point weights in this dtype (``torch.float16`` halves the
                file; they load back into float32).
        """
        from .card import write_model_card

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = self.config.replace(library_version=__version__)
        save_weights(self.model, folder / WEIGHTS_NAME, dtype=dtype)
        with atomic_path(folder / CONFIG_NAME) as tmp:
            config.save(tmp)
        write_model_card(self, folder)
        return folder

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hugging Face Hub; see :func:`deepfake_detect.hub.push_to_hub`."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)


def _prepare_or_error(prep: Preprocessor, item: Any) -> np.ndarray | torch.Tensor | ImageLoadError:
    try:
        return prep.prepare(item)
    except ImageLoadError as e:
        return e


def _prefetch_batches(
    items: Sequence[Any], prep: Preprocessor, batch_size: int, num_workers: int | None
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


#: Under ``torchrun``, each process scores this many batches between two checks that no
#: process has failed, so a failure stops the others soon (long before a collective timeout).
DIST_CHECK_BATCHES = 8


def _predict_distributed(detector: Detector, inputs: Any, options: dict[str, Any]) -> np.ndarray:
    """``detector.predict(inputs, **options)`` with the inputs split over the ``torchrun``
    processes (every ``world_size``-th from ``rank``, no padding) and the scores gathered
    on every rank; the warnings of ``errors="skip"`` and ``crop_faces`` are merged into one
    each, issued on every rank."""
    from .distributed import DistContext, cores_per_process, local_device, threads_per_process

    device = options.pop("device")
    dev = local_device(device if device is not None else "cuda" if detector.device.type == "cuda" else detector.device)
    ctx = DistContext.from_env(dev)
    if not ctx.enabled:
        return detector.predict(inputs, device=device, **options)
    threads, before = threads_per_process(), torch.get_num_threads()
    try:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if threads is not None:
            torch.set_num_threads(threads)
        if options["num_workers"] is None:
            options["num_workers"] = min(4, cores_per_process())
        return _score_shards(detector, inputs, options, ctx, dev)
    finally:
        if threads is not None:
            torch.set_num_threads(before)
        ctx.close()


def _score_shards(
    detector: Detector, inputs: Any, options: dict[str, Any], ctx: DistContext, dev: torch.device
) -> np.ndarray:
    """Score this rank's part in steps of ``DIST_CHECK_BATCHES`` batches, all ranks checking
    for a failure after each step; then gather the scores and warnings."""
    from .backends import select
    from .face import NoFaceWarning

    items: list[Any] = []
    error: Exception | None = None
    try:
        items = flatten_inputs(inputs)
        detector.to(dev)
        # decide the backend once, for all the inputs, as single-process predict would: this
        # builds what scores them (the optimised torch model, or the graph session the
        # per-step calls below then find held) and nothing else
        select(
            detector,
            options["backend"],
            options["precision"],
            num_images=len(items),
            calibration=options["calibration"],
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
    chunk = options["batch_size"] * DIST_CHECK_BATCHES
    per_rank = -(-n // ctx.world_size)  # the most any rank has
    steps = -(-per_rank // chunk)  # the same on every rank
    scores = np.full(len(mine), np.nan, dtype=np.float32)
    skipped: list[tuple[int, ImageLoadError]] = []
    no_face: list[int] = []
    others: list[warnings.WarningMessage] = []
    progress = options.pop("progress")
    bar = _progress(n, progress if ctx.is_main else False, desc="predict")
    for step in range(steps):
        part = mine[step * chunk : (step + 1) * chunk]
        try:
            if part:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    out = detector.predict([items[i] for i in part], progress=False, **options)
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
        warnings.warn(NoFaceWarning([describe(items[i]) for i in sorted(all_no_face)], total=n), stacklevel=4)
    if all_skipped:
        warnings.warn(SkippedImagesWarning([e for _, e in sorted(all_skipped, key=lambda t: t[0])]), stacklevel=4)
    return result


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


# -- loading -----------------------------------------------------------------------------
def check_batch_size(batch_size: Any) -> None:
    """Raise :class:`DeepfakeDetectError` unless ``batch_size`` is an int of at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise DeepfakeDetectError(f"batch_size={batch_size!r}: expected an int of at least 1")


def load_detector(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    backend: str = "auto",
    **model_kwargs: Any,
) -> Detector:
    """Build or load a detector.

    Args:
        name_or_path: ``None`` for the registry's default weights (the built-in detector,
            shipped inside the package, offline); named weights ``"<architecture>.<tag>"``
            (:func:`list_detectors(pretrained=True) <list_detectors>`); an architecture with
            fresh weights: a registry name (:func:`list_detectors`) or
            ``"timm:<architecture>"``; a folder written by :meth:`Detector.save_pretrained`
            or a finetune ``output_dir`` (``"local-dir:PATH"`` says so explicitly; a
            ``pathlib.Path`` is always a local path); or a Hugging Face Hub repo id
            (``"hf-hub:owner/name"``, or ``"owner/name"`` when it cannot be a local path).
            Which one a name is, is decided first, in that order (registered, then an
            existing file or folder, then a Hub id), by
            :func:`deepfake_detect.loading.resolve`: a path that does not exist (``runs/exp1/best``,
            ``./x``, ``model.safetensors``, or ``runs/exp1`` when a folder ``runs`` exists)
            is an error, never a Hub request.
        weights: a ``.safetensors`` file, or a state-dict ``.pt``/``.pth`` (read with
            ``torch.load(weights_only=True)``), loaded strictly into the architecture.
        device: where to put the model (default ``"cpu"``).
        max_params: refuse architectures with more parameters (the challenge's 200M by
            default); counted before any weights are allocated. ``None`` lifts the limit.
        revision: for Hub repo ids (see :mod:`deepfake_detect.hub`).
        cache_dir: for Hub repo ids.
        token: for Hub repo ids.
        local_files_only: for Hub repo ids.
        backend: the detector's default for :meth:`Detector.predict`: ``"auto"``,
            ``"torch"``, ``"onnxruntime"`` or ``"openvino"`` (stored as
            :attr:`Detector.backend`).
        **model_kwargs: passed to the architecture's factory, e.g.
            ``pretrained_backbone=True`` (timm's ImageNet weights, needs network or the Hub
            cache) or ``backbone_weights=PATH`` (local ImageNet weights).

    Raises:
        UnknownDetectorError: a name that is nothing of the above; the message names the
            three possibilities (registered, existing file or folder, Hub id) and close
            registered names.
        ParameterLimitError: the architecture is over ``max_params``.
        DeepfakeDetectError: an unknown ``backend``, or a ``device`` torch cannot use here.
        WeightsError, ConfigError, HubError: unreadable or mismatched weights or config.
    """
    from .distributed import check_device

    check_backend(backend)
    if device is not None:
        check_device(device)  # before the model is built
    hub = dict(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    detector = _load_resolved(resolve(name_or_path), max_params, model_kwargs, hub)
    if weights is not None:
        load_weights(detector.model, read_state_dict(weights), source=str(weights))
        detector.source = str(weights)
    detector.model.eval()
    detector.backend = backend
    if device is not None:
        detector.to(device)
    return detector


def build_detector(
    name: str, *, max_params: int | None = DEFAULT_MAX_PARAMS, config: DetectorConfig | None = None, **model_kwargs: Any
) -> Detector:
    """A registry architecture with fresh (or ImageNet-backbone) weights, after the guard."""
    entry = get_entry(name)
    check_parameter_limit(name, max_params, **model_kwargs)
    model = entry.build(**model_kwargs)
    stored_kwargs = {k: v for k, v in model_kwargs.items() if k not in ("pretrained_backbone", "backbone_weights")}
    config = config or entry.config.replace(model_kwargs=stored_kwargs, library_version=__version__)
    return Detector(model, config, source=name)


def _load_resolved(
    where: Resolved, max_params: int | None, model_kwargs: dict[str, Any], hub: dict[str, Any]
) -> Detector:
    """One branch per kind of name (see :func:`deepfake_detect.loading.resolve`)."""
    if where.kind == "default":
        return _load_weights_entry(default_weights(), max_params, model_kwargs, hub, source="built-in default detector")
    if where.kind == "weights":
        entry = get_weights(where.target)
        assert entry is not None  # resolve found it
        return _load_weights_entry(entry, max_params, model_kwargs, hub)
    if where.kind == "architecture":
        return build_detector(where.target, max_params=max_params, **model_kwargs)
    if where.kind == "local":
        folder = local_folder(where)
        return _load_folder(folder, max_params=max_params, model_kwargs=model_kwargs, source=str(folder))
    from .hub import download_detector

    repo_folder = download_detector(where.target, **hub)
    return _load_folder(repo_folder, max_params=max_params, model_kwargs=model_kwargs, source=where.name)


def _load_weights_entry(
    entry: WeightsEntry, max_params: int | None, model_kwargs: dict[str, Any], hub: dict[str, Any], source: str = ""
) -> Detector:
    """Registered weights: a shipped folder, or a Hub repo (``hf-hub:org/name[@revision]``).
    The entry's name and licence are added to ``config.metadata`` (for the model card)."""
    if entry.is_local:
        folder = Path(entry.source)
    else:
        from .hub import download_detector

        repo, _, pinned = entry.source.partition("@")
        folder = download_detector(repo, **{**hub, "revision": hub.get("revision") or pinned or None})
    detector = _load_folder(folder, max_params=max_params, model_kwargs=model_kwargs, source=source or entry.name)
    meta = {**detector.config.metadata, "weights_tag": entry.name}
    if entry.license:
        meta["weights_license"] = entry.license
    detector.config = detector.config.replace(metadata=meta)
    return detector


def _load_folder(folder: Path, *, max_params: int | None, model_kwargs: dict[str, Any], source: str) -> Detector:
    config = DetectorConfig.load(folder / CONFIG_NAME)
    weights_path = weights_file(folder)
    try:
        get_entry(config.architecture)
    except UnknownDetectorError as e:
        raise ConfigError(
            f"{folder / CONFIG_NAME}: architecture {config.architecture!r} is not registered ({e}). "
            "If it is your own, import the module that calls register_detector first"
        ) from None
    kwargs = {**config.model_kwargs, **model_kwargs}
    kwargs.pop("pretrained_backbone", None)  # the folder's weights replace any backbone weights
    kwargs.pop("backbone_weights", None)
    detector = build_detector(config.architecture, max_params=max_params, config=config, **kwargs)
    load_weights(detector.model, read_state_dict(weights_path), source=str(weights_path))
    detector.source = source
    return detector
