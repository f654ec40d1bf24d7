"""Inference backends: PyTorch, or a graph runtime (OpenVINO, ONNX Runtime) on the detector's
exported graph; and lower precisions, only when asked for.

:meth:`Detector.predict <deepfake_detect.Detector.predict>` takes ``backend`` and
``precision``; this module decides and runs them:

* ``backend="torch"``: the model's own forward (BatchNorm folded and channels_last from
  :data:`FAST_PATH_MIN_IMAGES` images on).
* ``backend="onnxruntime"`` (extra ``onnx``) or ``"openvino"`` (extra ``openvino``): the
  graph :func:`~deepfake_detect.export.export_onnx` writes, run on the CPU with one thread
  per available core. The graph is exported once per version of the weights and checked
  against the torch forward before use (P(fake) within :data:`PARITY_ATOL`); the detector's
  :class:`~deepfake_detect.engine.InferenceEngine` keeps the session in memory (its
  :class:`Runtime`), and the graph is cached on disk under :func:`graph_dir`,
  named by :func:`weights_digest` (a SHA-256 of the weights' content, the config and the
  library versions), so a later process with the same weights loads it in a fraction of a
  second, and changed weights never meet a stale graph. Both runtimes read the same file.
* ``backend="auto"`` (the default): torch on CUDA; on CPU a graph runtime (OpenVINO if
  installed, else ONNX Runtime) when the job repays the set-up: a session already built for
  these weights, or at least :data:`AUTO_CACHED_MIN_IMAGES` images and a graph cached on
  disk, or at least :data:`AUTO_EXPORT_MIN_IMAGES` images (then it exports). Otherwise torch.
  A model that cannot be exported (or whose graph disagrees with torch) is scored by torch,
  with the reason logged as a warning.

Precisions: ``"fp32"`` (default); ``"int8"``: a graph quantised statically by ONNX
Runtime's tool (QDQ, per-channel int8 weights, uint8 activations whose ranges are calibrated
on a few of your images (99.999th percentile); the pooling and head stay float32), cached per
weights and calibration set, and run by the graph runtime (auto: OpenVINO if installed); ``"fp16"``/``"bf16"``: torch autocast, CUDA only. A lower precision is used
only when asked for; it is logged as a warning, and :attr:`Detector.last_backend` says what
scored the last call.

The cache folder is ``$DEEPFAKE_DETECT_CACHE``, else ``$XDG_CACHE_HOME/deepfake-detect``,
else ``~/.cache/deepfake-detect``; graphs live in its ``onnx/`` folder, at most
:data:`MAX_CACHE_BYTES` in all (the least recently used are removed first). Delete the
folder, or call :func:`clear_cache`, to empty it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np
import torch
from torch import nn

from .config import DetectorConfig
from .data.preprocess import Preprocessor
from .distributed import available_cores, cores_per_process
from .errors import DeepfakeDetectError, MissingDependencyError
from .fast import weights_fingerprint
from .heads import p_fake
from .protocols import ModelWithConfig
from .version import __version__

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "AUTO_EXPORT_MIN_IMAGES",
    "AUTO_CACHED_MIN_IMAGES",
    "FAST_PATH_MIN_IMAGES",
    "PARITY_ATOL",
    "MAX_CACHE_BYTES",
    "CACHE_ENV",
    "GRAPH_BACKENDS",
    "BackendChoice",
    "Runtime",
    "RuntimeOwner",
    "Scorer",
    "GraphSession",
    "OrtSession",
    "OpenVINOSession",
    "runtime_available",
    "onnxruntime_available",
    "available_cores",
    "cache_dir",
    "graph_dir",
    "clear_cache",
    "weights_digest",
    "graph_parity",
    "check_backend",
    "check_precision",
    "select",
    "torch_scores",
]

log = logging.getLogger(__name__)

#: ``backend`` values of :meth:`Detector.predict`.
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
#: The runtimes of exported graphs, in the order ``"auto"`` prefers them (the fastest on
#: the built-in default first; see docs/backends.md).
GRAPH_BACKENDS = ("openvino", "onnxruntime")
#: backend -> (the modules it needs, the extra that installs them).
_NEEDS = {"onnxruntime": (("onnx", "onnxruntime"), "onnx"), "openvino": (("onnx", "openvino"), "openvino")}
#: ``precision`` values of :meth:`Detector.predict`.
PRECISIONS = ("fp32", "int8", "fp16", "bf16")
#: ``backend="auto"`` exports a graph (seconds) for jobs of at least this many images.
AUTO_EXPORT_MIN_IMAGES = 128
#: ``backend="auto"`` loads a graph already cached on disk for jobs of at least this many images.
AUTO_CACHED_MIN_IMAGES = 16
#: Below this many images, the torch backend runs the model itself rather than its
#: inference-optimised copy (building that costs more than it saves on a few images).
FAST_PATH_MIN_IMAGES = 32
#: Largest |P(fake) difference| allowed between a float32 graph and the torch forward.
PARITY_ATOL = 1e-4
#: The ONNX cache keeps at most this many bytes of graphs (least recently used removed first).
MAX_CACHE_BYTES = 2 * 1024**3
#: Environment variable naming the cache folder.
CACHE_ENV = "DEEPFAKE_DETECT_CACHE"
#: The ONNX opset of cached graphs.
OPSET = 17
#: Bumped when the way graphs are built changes, so old cache files are not reused.
_CACHE_FORMAT = "deepfake-detect-onnx-cache-v1"
#: The int8 recipe (part of the int8 cache key).
_INT8_RECIPE = "qdq;weights=qint8-per-channel;activations=quint8;calibration=percentile-99.999;head=fp32"
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class BackendChoice:
    """What scored a call: ``backend`` (``"torch"``, ``"onnxruntime"``, ``"openvino"``), ``precision``
    (``"fp32"``, ``"int8"``, ``"fp16"``, ``"bf16"``) and why (``reason``, one line)."""

    backend: str
    precision: str
    reason: str

    def __str__(self) -> str:
        return f"{self.backend} {self.precision} ({self.reason})"


# -- arguments and environment ------------------------------------------------------------
def check_backend(backend: str, choices: tuple[str, ...] = BACKENDS) -> str:
    """``backend`` if it is one of ``choices`` (default :data:`BACKENDS`; :data:`GRAPH_BACKENDS`
    where only a graph runtime will do). Every ``backend`` argument of the library is checked
    here; the CLI offers :data:`BACKENDS`.

    Raises:
        DeepfakeDetectError: another value.
    """
    return _check_choice("backend", backend, choices)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        DeepfakeDetectError: another value.
    """
    return _check_choice("precision", precision, PRECISIONS)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise DeepfakeDetectError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. sys.modules[module] = None
        return False


def runtime_available(backend: str) -> bool:
    """Whether a graph backend (``"onnxruntime"``: extra ``onnx``; ``"openvino"``: extra
    ``openvino``) can run here; checks the packages without importing them."""
    modules, _ = _NEEDS[backend]
    return all(_importable(m) for m in modules)


def onnxruntime_available() -> bool:
    """Whether the ``onnx`` extra (``onnx`` and ``onnxruntime``) is importable; imports nothing."""
    return runtime_available("onnxruntime")


def _require(backend: str, feature: str) -> None:
    modules, extra = _NEEDS[backend]
    for module in modules:
        if not _importable(module):
            raise MissingDependencyError(module, extra, feature)


def cache_dir() -> Path:
    """The library's cache folder: ``$DEEPFAKE_DETECT_CACHE``, else
    ``$XDG_CACHE_HOME/deepfake-detect``, else ``~/.cache/deepfake-detect``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "deepfake-detect"


def graph_dir() -> Path:
    """Where exported graphs are cached: ``cache_dir() / "onnx"``."""
    return cache_dir() / "onnx"


def clear_cache() -> int:
    """Delete every cached graph (and leftover temporary file) under :func:`graph_dir`.

    Returns:
        The number of files deleted.
    """
    folder = graph_dir()
    removed = 0
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and (f.suffix == ".onnx" or f.name.endswith(".tmp")):
                f.unlink(missing_ok=True)
                removed += 1
    return removed


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


# -- the weights' identity ----------------------------------------------------------------
def weights_digest(model: nn.Module, config: Any, *extra: str) -> str:
    """SHA-256 (hex) of what an exported graph depends on: every parameter's and buffer's
    name, dtype, shape and bytes; the model's class and structure (``repr``); the config's
    architecture, input size and output kind; the versions of this library, torch and onnx;
    and ``extra`` strings (e.g. the precision and calibration digest).

    Reads every weight once (tens of milliseconds for 10M parameters).
    """
    h = hashlib.sha256()

    def add(text: str) -> None:
        h.update(text.encode("utf-8"))
        h.update(b"\0")

    add(_CACHE_FORMAT)
    add(f"deepfake-detect={__version__};torch={torch.__version__};onnx={_version('onnx')};opset={OPSET}")
    add(f"{type(model).__module__}.{type(model).__qualname__}")
    add(repr(model))
    add(json.dumps(_graph_config(config), sort_keys=True))
    for e in extra:
        add(e)
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        t = t.detach()
        add(f"{name}:{t.dtype}:{tuple(t.shape)}")
        flat = t.to("cpu").contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


def _graph_config(config: Any) -> dict[str, Any]:
    """The config fields an exported graph depends on (its input size and what it outputs).

    Of ``config.preprocessing`` only ``input_size`` is here: the graph takes the normalised
    tensor, so the resize policy, interpolation, mean and std do not change it (they are in
    the int8 key through the calibration batch's digest)."""
    return {"architecture": config.architecture, "input_size": list(config.input_size), "output": config.output}


class _WeightsVersion:
    """One version of a model's weights: :func:`~deepfake_detect.fast.weights_fingerprint`
    (tensor ids and in-place versions) plus weak references, so a tensor freed and replaced by
    a new one at the same address is not taken for the old one; and the config fields the
    graph depends on (``detector.config`` replaced with another input size or output kind)."""

    def __init__(self, model: nn.Module, config: Any) -> None:
        self.fingerprint = weights_fingerprint(model)
        self.config = _graph_config(config)
        self._refs = [weakref.ref(t) for t in (*model.parameters(), *model.buffers())]

    def matches(self, model: nn.Module, config: Any) -> bool:
        return (
            weights_fingerprint(model) == self.fingerprint
            and _graph_config(config) == self.config
            and all(r() is not None for r in self._refs)
        )


# -- graph sessions -----------------------------------------------------------------------
class GraphSession:
    """A CPU session of a graph runtime on an exported detector graph.

    Call it with a normalised (N, 3, H, W) float32 batch (tensor or array, any memory
    format); it returns P(fake), a float32 array of shape (N,). Thread-safe.

    Args:
        path: the ``.onnx`` file (read once, when the session is created).
        precision: what the graph computes in (``"fp32"`` or ``"int8"``), for reports.
        threads: intra-op threads (default: this process's share of the cores, all of them
            unless ``torchrun`` started several processes on this machine).

    Attributes:
        backend: ``"onnxruntime"`` or ``"openvino"``.
    """

    backend = ""

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32", threads: int | None = None) -> None:
        self.path = Path(path)
        self.precision = precision
        self.threads = threads or cores_per_process()  # split across torchrun's local processes

    def run(self, x: np.ndarray) -> np.ndarray:
        """P(fake) of a C-contiguous (N, 3, H, W) float32 array."""
        raise NotImplementedError

    def __call__(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        if isinstance(batch, torch.Tensor):
            x = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        else:
            x = np.ascontiguousarray(batch, dtype=np.float32)
        return np.asarray(self.run(x), dtype=np.float32).reshape(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, precision={self.precision!r}, threads={self.threads})"


class OrtSession(GraphSession):
    """An ONNX Runtime CPU session (see :class:`GraphSession`)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32", threads: int | None = None) -> None:
        super().__init__(path, precision=precision, threads=threads)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle workers sleep instead of spinning: predict decodes the next batch on the same
        # cores, and on a shared machine spinning costs more than it saves.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self._input: x})[0]


class OpenVINOSession(GraphSession):
    """An OpenVINO CPU session (see :class:`GraphSession`): latency mode; float32 for every
    operation the graph does not quantise itself (OpenVINO would otherwise run bf16 on CPUs
    that have it, and scores would move)."""

    backend = "openvino"

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "fp32", threads: int | None = None) -> None:
        super().__init__(path, precision=precision, threads=threads)
        import openvino as ov

        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._compiled = ov.Core().compile_model(str(path), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request runs one batch at a time

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.array(self._request.infer({0: x})[0], copy=True)


_SESSIONS: dict[str, type[GraphSession]] = {"onnxruntime": OrtSession, "openvino": OpenVINOSession}


# -- per-model state ----------------------------------------------------------------------
class Runtime:
    """The graph-runtime state of one :class:`~deepfake_detect.engine.InferenceEngine` (one per
    detector): its sessions (one per backend, precision and calibration set, for the current
    weights), the SHA-256 of its current weights, and the reason its current weights could not
    be exported. Not copied with the engine (``copy.deepcopy`` and pickling give an empty one)."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str, str], tuple[_WeightsVersion, GraphSession]] = {}
        self._digests: dict[str, tuple[_WeightsVersion, str]] = {}
        self._failed: tuple[_WeightsVersion, str] | None = None
        self._calibrations: dict[tuple[Any, ...], str] = {}  # calibration files + preprocessing -> batch digest

    def __deepcopy__(self, memo: dict[int, Any]) -> Runtime:
        return Runtime()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(Runtime().__dict__)

    def session(
        self, model: nn.Module, config: Any, backend: str, precision: str = "fp32", calibration_digest: str = ""
    ) -> GraphSession | None:
        """The session of ``backend`` for the model's current weights and config, or None."""
        entry = self._sessions.get((backend, precision, calibration_digest))
        return entry[1] if entry is not None and entry[0].matches(model, config) else None

    def keep(self, version: _WeightsVersion, session: GraphSession, calibration_digest: str = "") -> None:
        self._sessions[(session.backend, session.precision, calibration_digest)] = (version, session)

    def digest(self, model: nn.Module, config: Any, *extra: str) -> str:
        tag = "\0".join(extra)
        memo = self._digests.get(tag)
        if memo is not None and memo[0].matches(model, config):
            return memo[1]
        version = _WeightsVersion(model, config)
        value = weights_digest(model, config, *extra)
        self._digests[tag] = (version, value)
        return value

    def calibration_digest(self, key: tuple[Any, ...] | None) -> str | None:
        """The digest of the calibration batch last prepared for ``key`` (files and preprocessing), or None."""
        return self._calibrations.get(key) if key is not None else None

    def remember_calibration(self, key: tuple[Any, ...] | None, digest: str) -> None:
        if key is not None:
            self._calibrations[key] = digest

    def remember_failure(self, version: _WeightsVersion, reason: str) -> None:
        """These weights could not be exported (``auto`` does not try them again)."""
        self._failed = (version, reason)

    def failure(self, model: nn.Module, config: Any) -> str | None:
        return self._failed[1] if self._failed is not None and self._failed[0].matches(model, config) else None


class RuntimeOwner(Protocol):
    """What the functions here take: the owner of a model's inference state, an
    :class:`~deepfake_detect.engine.InferenceEngine`. Its model, config and device; the
    :class:`Runtime` that keeps its graph sessions; and its model as the torch backend runs it
    (:meth:`~deepfake_detect.engine.InferenceEngine.inference_model`)."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def config(self) -> DetectorConfig: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def runtime(self) -> Runtime: ...

    def inference_model(self, optimize: bool = True) -> nn.Module: ...


# -- choosing and running -----------------------------------------------------------------
#: What :func:`select` returns to score a batch: a normalised (N, 3, H, W) float32 batch (a
#: tensor for torch, a C-contiguous array for a graph runtime) -> P(fake), a float32 array (N,).
Scorer = Callable[[Union[torch.Tensor, np.ndarray]], np.ndarray]


def select(
    owner: RuntimeOwner, backend: str, precision: str, *, num_images: int, calibration: Any = None
) -> tuple[BackendChoice, Scorer]:
    """Decide what scores ``num_images`` images of ``owner`` (a detector's
    :attr:`~deepfake_detect.Detector.engine`) and return it: ``(choice, scorer)``, where
    ``scorer(batch)`` maps a normalised (N, 3, H, W) float32 batch to P(fake), a float32
    array (N,) (for a graph backend the scorer is its :class:`GraphSession`). Builds what it
    chooses (the optimised torch model on first use, a graph session, exporting if need be)
    and keeps it in ``owner.runtime``. :meth:`InferenceEngine.select
    <deepfake_detect.engine.InferenceEngine.select>` calls it.

    Raises:
        DeepfakeDetectError: a bad ``backend``/``precision``, a precision this device or
            backend cannot run, ``int8`` without calibration images, or (explicit graph
            backend) a model that cannot be exported.
        MissingDependencyError: a graph backend (or int8) without its extra.
    """
    check_backend(backend)
    check_precision(precision)
    device = owner.device
    if precision in _AUTOCAST_DTYPES:
        return _select_autocast(owner, backend, precision, device, num_images)
    if precision == "int8":
        if backend == "torch":
            raise DeepfakeDetectError(
                "precision='int8' runs on a graph runtime, not torch: use backend='auto', 'openvino' or 'onnxruntime'"
            )
        _require("onnxruntime", "precision='int8'")  # its quantisation tool builds the graph
        if backend == "auto":
            backend = next(b for b in GRAPH_BACKENDS if runtime_available(b))  # onnxruntime at least
        _require(backend, f"precision='int8' on {backend}")
        if calibration is None:
            raise DeepfakeDetectError(
                "precision='int8' needs calibration images to set the activation ranges: "
                "predict(..., precision='int8', calibration=[a few dozen of your images, paths or PIL images])"
            )
        session = _int8_session(owner, calibration, backend)
        return BackendChoice(backend, "int8", f"static int8 graph {session.path.name}"), session
    if backend == "torch":
        return BackendChoice("torch", "fp32", "backend='torch'"), _torch_scorer(owner, num_images, "fp32")
    if backend != "auto":
        _require(backend, f"backend={backend!r}")
        session = _graph_session(owner, backend)
        return BackendChoice(backend, "fp32", f"graph {session.path.name}"), session
    return _select_auto(owner, device, num_images)


def _select_autocast(
    owner: RuntimeOwner, backend: str, precision: str, device: torch.device, num_images: int
) -> tuple[BackendChoice, Scorer]:
    if backend in GRAPH_BACKENDS:
        raise DeepfakeDetectError(
            f"precision={precision!r} runs on the torch backend on CUDA; "
            f"{backend} here runs 'fp32' (and ONNX Runtime 'int8')"
        )
    if device.type != "cuda":
        raise DeepfakeDetectError(
            f"precision={precision!r} needs a CUDA device (torch autocast); the detector is on {device}. "
            "On CPU it is no faster than float32 (measured: docs/backends.md); use precision='fp32', or "
            "'int8' with calibration images"
        )
    log.warning(
        "scoring in %s (torch autocast on %s): scores differ from float32 by up to about 1e-3", precision, device
    )
    return (
        BackendChoice("torch", precision, f"torch autocast {precision} on {device}"),
        _torch_scorer(owner, num_images, precision),
    )


def _select_auto(owner: RuntimeOwner, device: torch.device, num_images: int) -> tuple[BackendChoice, Scorer]:
    def torch_choice(reason: str) -> tuple[BackendChoice, Scorer]:
        log.info("backend='auto' chose torch: %s", reason)
        return BackendChoice("torch", "fp32", reason), _torch_scorer(owner, num_images, "fp32")

    if device.type != "cpu":
        return torch_choice(f"the model is on {device}")
    backend = next((b for b in GRAPH_BACKENDS if runtime_available(b)), None)
    if backend is None:
        return torch_choice(
            "no graph runtime is installed (pip install 'deepfake-detect[onnx]' or 'deepfake-detect[openvino]')"
        )
    runtime, model = owner.runtime, owner.model
    failed = runtime.failure(model, owner.config)
    if failed is not None:
        return torch_choice(f"these weights could not be exported: {failed}")
    session = runtime.session(model, owner.config, backend)
    if session is not None:
        return BackendChoice(backend, "fp32", f"session in memory ({session.path.name})"), session
    if num_images < AUTO_CACHED_MIN_IMAGES:
        return torch_choice(f"{num_images} image(s), fewer than {AUTO_CACHED_MIN_IMAGES}")
    cached = (graph_dir() / f"{_fp32_digest(owner)}.onnx").is_file()
    if not cached and num_images < AUTO_EXPORT_MIN_IMAGES:
        return torch_choice(f"{num_images} images, fewer than {AUTO_EXPORT_MIN_IMAGES}, and no cached graph")
    try:
        session = _graph_session(owner, backend)
    except (DeepfakeDetectError, OSError) as e:
        # OSError: the graph could not be written (disk full, quota); unlike a failed
        # export it is not remembered against these weights, so a later job tries again
        reason = f"export failed: {e}" if isinstance(e, DeepfakeDetectError) else f"the graph could not be written: {e}"
        log.warning("backend='auto': %s; scoring with torch instead", reason)
        return BackendChoice("torch", "fp32", reason), _torch_scorer(owner, num_images, "fp32")
    reason = "cached graph" if cached else f"{num_images} images, exported"
    log.info("backend='auto' chose %s: %s (%s)", backend, reason, session.path)
    return BackendChoice(backend, "fp32", f"{reason} ({session.path.name})"), session


def _torch_scorer(owner: RuntimeOwner, num_images: int, precision: str) -> Scorer:
    optimize = num_images >= FAST_PATH_MIN_IMAGES

    def score(batch: torch.Tensor | np.ndarray) -> np.ndarray:
        assert isinstance(batch, torch.Tensor)  # the torch path is given tensors
        return torch_scores(owner, batch, optimize=optimize, precision=precision).float().cpu().numpy()

    return score


def torch_scores(owner: RuntimeOwner, batch: torch.Tensor, *, optimize: bool, precision: str) -> torch.Tensor:
    """P(fake) (N,) of the torch forward on ``batch`` (moved to the owner's device), in
    ``precision`` (``"fp32"``, or ``"fp16"``/``"bf16"`` under CUDA autocast); ``optimize``: the
    owner's inference-optimised model (:meth:`~deepfake_detect.engine.InferenceEngine.inference_model`)."""
    model = owner.inference_model(optimize)
    x = batch.to(owner.device)
    with torch.inference_mode():
        if precision == "fp32":
            return p_fake(model(x), owner.config.output)
        with torch.autocast(device_type=x.device.type, dtype=_AUTOCAST_DTYPES[precision]):
            out = model(x)
        return p_fake(out, owner.config.output)


# -- building and caching graphs ----------------------------------------------------------
def _fp32_digest(owner: RuntimeOwner) -> str:
    return owner.runtime.digest(owner.model, owner.config, "fp32")


def _graph_session(owner: RuntimeOwner, backend: str) -> GraphSession:
    """The float32 session of ``backend`` for the owner's current weights: from memory,
    on the graph cached on disk, or on a graph exported (and checked against torch) now."""
    runtime, model = owner.runtime, owner.model
    session = runtime.session(model, owner.config, backend)
    if session is not None:
        return session
    version = _WeightsVersion(model, owner.config)
    digest = _fp32_digest(owner)
    session = _cached_session(graph_dir() / f"{digest}.onnx", backend, "fp32")
    if session is None:
        try:
            session = _build_cached(digest, lambda tmp: _export_checked(owner, tmp, backend), backend, "fp32")
        except DeepfakeDetectError as e:
            runtime.remember_failure(version, str(e))  # auto does not try again for these weights
            raise
    runtime.keep(version, session)
    return session


def _open(backend: str, path: Path, precision: str) -> GraphSession:
    return _SESSIONS[backend](path, precision=precision)


def _cached_session(path: Path, backend: str, precision: str) -> GraphSession | None:
    """A session on a cached graph, or None when there is none (or it is unreadable, then it is removed)."""
    if not path.is_file():
        return None
    try:
        session = _open(backend, path, precision)
    except Exception as e:  # a damaged file: export again
        log.warning("cached graph %s is unreadable (%s: %s); rebuilding it", path, type(e).__name__, e)
        path.unlink(missing_ok=True)
        return None
    try:
        os.utime(path)  # most recently used: pruned last
    except OSError:
        pass
    log.info("loaded cached graph %s (%s)", path, backend)
    return session


def _build_cached(digest: str, build: Callable[[Path], None], backend: str, precision: str) -> GraphSession:
    """Run ``build(tmp_path)``, move the file to ``graph_dir()/<digest>.onnx`` atomically, and
    open a ``backend`` session on it. Where the cache folder is not writable, the graph is
    built in a temporary folder and kept in memory only."""
    folder = graph_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        log.warning("cache folder %s is not writable; the graph is kept in memory only (set %s)", folder, CACHE_ENV)
        with tempfile.TemporaryDirectory(prefix="deepfake-detect-") as tmp_dir:
            path = Path(tmp_dir) / f"{digest}.onnx"
            build(path)
            return _open(backend, path, precision)
    final = folder / f"{digest}.onnx"
    tmp = folder / f".{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        build(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    _prune(folder, keep=final)
    return _open(backend, final, precision)


def _prune(folder: Path, keep: Path) -> None:
    """Remove the least recently used graphs until the folder holds at most
    :data:`MAX_CACHE_BYTES` (``keep`` stays), and temporary files over a day old."""
    now = time.time()
    graphs = []
    for f in folder.iterdir():
        try:
            st = f.stat()
        except OSError:
            continue
        if f.name.endswith(".tmp") and now - st.st_mtime > 86400:
            f.unlink(missing_ok=True)
        elif f.suffix == ".onnx":
            graphs.append((st.st_mtime, st.st_size, f))
    total = sum(size for _, size, _ in graphs)
    for _, size, f in sorted(graphs):
        if total <= MAX_CACHE_BYTES:
            break
        if f != keep:
            f.unlink(missing_ok=True)
            total -= size


def _export_checked(owner: ModelWithConfig, path: Path, backend: str) -> None:
    """Export the owner's graph to ``path`` and check it, run by ``backend``, against the
    torch forward on a random batch of 3 (another batch size than the exporter traced with).

    Raises:
        DeepfakeDetectError: the export failed, or the graph's P(fake) differs from torch's
            by more than :data:`PARITY_ATOL` (e.g. data-dependent control flow that the
            tracer fixed to one branch).
    """
    from .export import export_onnx

    export_onnx(owner, path, opset=OPSET)
    diff = graph_parity(owner, path, backend)
    if not diff <= PARITY_ATOL:
        raise DeepfakeDetectError(
            f"the exported graph of {owner.config.architecture} disagrees with the torch model "
            f"(max |P(fake) difference| {diff:.2g} > {PARITY_ATOL:g} on a batch of 3, inf: another output shape); "
            "the model probably has data-dependent control flow. Use backend='torch'"
        )


def graph_parity(detector: ModelWithConfig, path: str | os.PathLike[str], backend: str = "onnxruntime") -> float:
    """The largest |P(fake) difference| between an exported graph of ``detector`` (run by
    ``backend`` on the CPU) and the detector's torch forward (its model, in eval mode), on a
    seeded random normalised batch of 3 (another batch size than the exporter traced with).

    Args:
        detector: the detector the graph was exported from (anything with ``model`` and
            ``config``: a :class:`~deepfake_detect.Detector` or its engine).
        path: the ``.onnx`` file (:func:`~deepfake_detect.export.export_onnx`).
        backend: ``"onnxruntime"`` (extra ``onnx``) or ``"openvino"`` (extra ``openvino``).

    Returns:
        The difference in P(fake) units (0 to 1); ``inf`` when the graph's output has another
        shape. Graphs the library uses must be within :data:`PARITY_ATOL`.

    Raises:
        MissingDependencyError: the runtime is not installed.
        DeepfakeDetectError: ``backend`` is not a graph runtime, or it cannot run the graph.
    """
    check_backend(backend, GRAPH_BACKENDS)
    _require(backend, "the parity check of an exported graph")
    h, w = detector.config.input_size
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(3, 3, h, w, generator=gen)
    try:
        got = _open(backend, Path(path), "fp32")(probe)
    except Exception as e:
        raise DeepfakeDetectError(
            f"{backend} cannot run the exported graph {path} of {detector.config.architecture}: {type(e).__name__}: {e}"
        ) from e
    model = detector.model.eval()
    p = next(model.parameters(), None)
    with torch.inference_mode():
        out = model(probe.to(p.device if p is not None else "cpu"))
        want = p_fake(out, detector.config.output).float().cpu().numpy()
    return float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")


# -- int8 ---------------------------------------------------------------------------------
def _calibration_batch(owner: ModelWithConfig, items: list[Any]) -> np.ndarray:
    """The calibration images (a flat list), preprocessed as predict does: (N, 3, H, W) float32."""
    if not items:
        raise DeepfakeDetectError("calibration: no images given")
    prep = Preprocessor(owner.config)
    arrays = [prep.prepare(x) for x in items]
    return prep.to_tensor(arrays).contiguous().numpy()


def _calibration_files(items: list[Any]) -> tuple[tuple[str, int, int], ...] | None:
    """``(path, mtime_ns, size)`` of each calibration file, or None when the calibration set
    is not all files (in-memory images are prepared and hashed on every call)."""
    if not items or not all(isinstance(x, (str, os.PathLike)) for x in items):
        return None
    try:
        return tuple((os.fspath(p), st.st_mtime_ns, st.st_size) for p in items for st in (os.stat(p),))
    except OSError:
        return None  # _calibration_batch names the file


def _int8_session(owner: RuntimeOwner, calibration: Any, backend: str) -> GraphSession:
    """The ``backend`` session of the int8 graph of the owner's current weights and this
    calibration set: from memory, from the disk cache, or quantised now (from the float32
    graph, itself cached). Calibration files unchanged since the last call are not prepared again."""
    from .data.images import flatten_inputs

    runtime, model, config = owner.runtime, owner.model, owner.config
    items = flatten_inputs(calibration)  # a folder is listed once
    files = _calibration_files(items)
    files_key = (files, repr(config.preprocessing)) if files is not None else None
    known = runtime.calibration_digest(files_key)
    if known is not None:
        session = runtime.session(model, config, backend, "int8", known)
        if session is not None:
            return session
    calib = _calibration_batch(owner, items)
    calib_digest = hashlib.sha256(calib.tobytes()).hexdigest()
    runtime.remember_calibration(files_key, calib_digest)
    session = runtime.session(model, config, backend, "int8", calib_digest)
    if session is not None:
        return session
    version = _WeightsVersion(model, config)
    digest = runtime.digest(model, config, "int8", _INT8_RECIPE, calib_digest, f"onnxruntime={_version('onnxruntime')}")
    session = _cached_session(graph_dir() / f"{digest}.onnx", backend, "int8")
    if session is None:  # quantise the float32 graph (exported and checked against torch first, if need be)
        fp32 = _graph_session(owner, backend)
        session = _build_cached(digest, lambda tmp: _quantize_from(owner, fp32.path, tmp, calib), backend, "int8")
    log.warning(
        "scoring with an int8 graph on %s (static quantisation calibrated on %d image(s), %s): "
        "scores differ from float32; see docs/backends.md",
        backend,
        len(calib),
        session.path,
    )
    runtime.keep(version, session, calib_digest)
    return session


def _quantize_from(owner: ModelWithConfig, fp32: Path, dst: Path, calibration: np.ndarray) -> None:
    """:func:`quantize_int8` of the float32 graph ``fp32``; exported again into a temporary
    folder when that file is gone (kept in memory only because the cache folder is not
    writable, or removed from the cache since its session was made)."""
    if fp32.is_file():
        quantize_int8(fp32, dst, calibration)
        return
    from .export import export_onnx

    with tempfile.TemporaryDirectory(prefix="deepfake-detect-") as tmp_dir:
        src = Path(tmp_dir) / "fp32.onnx"
        export_onnx(owner, src, opset=OPSET)
        quantize_int8(src, dst, calibration)


def quantize_int8(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: np.ndarray, *, batch_size: int = 8
) -> None:
    """Write a static int8 (QDQ) version of the float32 graph ``src`` to ``dst``.

    Convolutions and the layers between them get per-channel int8 weights and uint8
    activations whose ranges are the 99.999th percentile of the values seen on
    ``calibration`` (normalised (N, 3, H, W) float32 images; on the built-in default this
    lost less AUC than min/max ranges, see docs/backends.md); the nodes after the last
    convolution (pooling, the head, softmax/sigmoid) stay float32 so P(fake) is not rounded
    to 8 bits.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([calibration[i : i + batch_size] for i in range(0, len(calibration), batch_size)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"input": np.ascontiguousarray(batch, dtype=np.float32)}

    graph = onnx.load(str(src), load_external_data=False).graph
    nodes = list(graph.node)
    last_conv = max((i for i, n in enumerate(nodes) if n.op_type == "Conv"), default=-1)
    exclude = [n.name for n in nodes[last_conv + 1 :] if n.name]
    with tempfile.TemporaryDirectory(prefix="deepfake-detect-int8-") as tmp:
        out = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(src),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
                nodes_to_exclude=exclude,
                extra_options={"CalibPercentile": 99.999},
            )
        except Exception as e:
            raise DeepfakeDetectError(f"int8 quantisation of {src} failed: {type(e).__name__}: {e}") from e
        shutil.move(str(out), str(dst))
