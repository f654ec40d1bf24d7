"""``Detector``: the façade. A model plus the config that says how to feed it, the operations on
them (predict, finetune, evaluate, explain, export, save, push), and ``load_detector``.

What runs the model for inference is the detector's :class:`~deepfake_detect.engine.InferenceEngine`
(:attr:`Detector.engine`), which owns the model and config; the modules below this one
(evaluation, training, cards, export, the Hub, explanations, videos, ensembles) take what they
need of a detector (:mod:`deepfake_detect.protocols`) and never build one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .backends import BackendChoice, check_backend
from .config import DetectorConfig
from .data.images import MAX_IMAGE_PIXELS
from .data.preprocess import Preprocessor
from .distributed import check_device
from .engine import InferenceEngine
from .errors import ConfigError, UnknownDetectorError
from .guard import DEFAULT_MAX_PARAMS, check_parameter_limit
from .loading import CONFIG_NAME, Resolved, local_folder, resolve, save_folder, weights_file
from .registry import DetectorEntry, WeightsEntry, default_weights, get_entry, get_weights
from .version import __version__
from .weights import load_weights, read_state_dict

if TYPE_CHECKING:
    from .face import FaceCropPreprocessor
    from .training import TrainConfig, TrainResult

__all__ = ["Detector", "load_detector", "build_detector"]


class Detector:
    """A deepfake detector: ``model`` (an ``nn.Module``) and ``config`` (a :class:`DetectorConfig`).

    Build one with :func:`load_detector`. ``predict`` gives P(fake) per image; ``finetune``
    trains it on your data; ``evaluate`` scores it; ``save_pretrained`` writes a folder
    that :func:`load_detector` (and the Hub) reads back.

    Attributes:
        engine: the :class:`~deepfake_detect.engine.InferenceEngine` that holds ``model`` and
            ``config`` and runs the model for :meth:`predict` and :meth:`predict_tensor` (and for
            the detection service): the chosen runtime, the optimised torch model, the graph
            sessions and cache, int8, sharded prediction.
        source: where the detector came from (a registry name, folder, Hub id or file).
        backend: what ``predict`` runs on by default: ``"auto"``, ``"torch"``,
            ``"onnxruntime"`` or ``"openvino"`` (see :mod:`deepfake_detect.backends`).
    """

    def __init__(self, model: nn.Module, config: DetectorConfig, *, source: str = "", backend: str = "auto") -> None:
        self.engine = InferenceEngine(model, config)
        self.source = source or config.architecture
        self.backend = check_backend(backend)

    # -- description -----------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The ``nn.Module`` (held by :attr:`engine`); replace it or change its weights at any time."""
        return self.engine.model

    @model.setter
    def model(self, model: nn.Module) -> None:
        self.engine.model = model

    @property
    def config(self) -> DetectorConfig:
        """The :class:`DetectorConfig` (held by :attr:`engine`); replace it at any time."""
        return self.engine.config

    @config.setter
    def config(self, config: DetectorConfig) -> None:
        self.engine.config = config

    @property
    def last_backend(self) -> BackendChoice | None:
        """What scored the last ``predict`` call (backend, precision, reason), ``None`` before the first."""
        return self.engine.last_choice

    @property
    def num_params(self) -> int:
        """Number of parameters of the model (trainable or not)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def device(self) -> torch.device:
        """Where the model is."""
        return self.engine.device

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
        self.engine.to(device)
        return self

    def preprocessor(self, *, max_pixels: int | None = MAX_IMAGE_PIXELS, draft: bool = False) -> Preprocessor:
        """The detector's own preprocessing (the one its weights were trained with).

        ``draft``: decode large JPEGs at a reduced scale (faster, slightly different pixels).
        """
        return self.engine.preprocessor(max_pixels=max_pixels, draft=draft)

    # -- inference -------------------------------------------------------------------
    def face_crop_preprocessor(self, prep: Preprocessor | None = None) -> FaceCropPreprocessor:
        """A :class:`~deepfake_detect.face.FaceCropPreprocessor` with this detector's crop
        policy (``config.face_crop``) around ``prep`` (default: :meth:`preprocessor`)."""
        return self.engine.face_crop_preprocessor(prep)

    def scores_from_output(self, output: Any) -> torch.Tensor:
        """Model output (logits, or a tuple whose first element is the logits) -> P(fake), shape (N,)."""
        return self.engine.scores_from_output(output)

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
        return self.engine.predict_tensor(
            batch, optimize=optimize, backend=backend, precision=precision, calibration=calibration
        )

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
        return self.engine.predict(
            inputs,
            batch_size=batch_size,
            device=device,
            progress=progress,
            num_workers=num_workers,
            errors=errors,
            max_pixels=max_pixels,
            crop_faces=crop_faces,
            fast_decode=fast_decode,
            backend=self.backend if backend is None else backend,
            precision=precision,
            calibration=calibration,
            distributed=distributed,
        )

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
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md``
        (:func:`deepfake_detect.loading.save_folder`).

        Args:
            dtype: store floating-point weights in this dtype (``torch.float16`` halves the
                file; they load back into float32).
        """
        return save_folder(self.model, self.config, folder, dtype=dtype)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hugging Face Hub; see :func:`deepfake_detect.hub.push_to_hub`."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)


# -- loading -----------------------------------------------------------------------------
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

    check = functools.partial(_check_folder_config, max_params=max_params, model_kwargs=model_kwargs)
    repo_folder = download_detector(where.target, check_config=check, **hub)
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
        check = functools.partial(_check_folder_config, max_params=max_params, model_kwargs=model_kwargs)
        revision = hub.get("revision") or pinned or None
        folder = download_detector(repo, check_config=check, **{**hub, "revision": revision})
    detector = _load_folder(folder, max_params=max_params, model_kwargs=model_kwargs, source=source or entry.name)
    meta = {**detector.config.metadata, "weights_tag": entry.name}
    if entry.license:
        meta["weights_license"] = entry.license
    detector.config = detector.config.replace(metadata=meta)
    return detector


def _folder_config(config_path: Path, model_kwargs: dict[str, Any]) -> tuple[DetectorConfig, dict[str, Any]]:
    """A saved detector's config and the model kwargs it is built with."""
    config = DetectorConfig.load(config_path)
    try:
        get_entry(config.architecture)
    except UnknownDetectorError as e:
        raise ConfigError(
            f"{config_path}: architecture {config.architecture!r} is not registered ({e}). "
            "If it is your own, import the module that calls register_detector first"
        ) from None
    kwargs = {**config.model_kwargs, **model_kwargs}
    kwargs.pop("pretrained_backbone", None)  # the folder's weights replace any backbone weights
    kwargs.pop("backbone_weights", None)
    return config, kwargs


def _check_folder_config(config_path: Path, *, max_params: int | None, model_kwargs: dict[str, Any]) -> None:
    """The parameter limit from a config alone (before a Hub download fetches the weights)."""
    config, kwargs = _folder_config(config_path, model_kwargs)
    check_parameter_limit(config.architecture, max_params, **kwargs)


def _load_folder(folder: Path, *, max_params: int | None, model_kwargs: dict[str, Any], source: str) -> Detector:
    config, kwargs = _folder_config(folder / CONFIG_NAME, model_kwargs)
    weights_path = weights_file(folder)
    detector = build_detector(config.architecture, max_params=max_params, config=config, **kwargs)
    load_weights(detector.model, read_state_dict(weights_path), source=str(weights_path))
    detector.source = source
    return detector
