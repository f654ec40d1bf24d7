"""The detection service: a FastAPI app around a :class:`~deepfake_detect.Detector`.

Uploads are read into memory (never written to disk), decoded by the library's own image
loader in a thread pool, and scored by a :class:`~deepfake_detect.serve.batching.MicroBatcher`
that merges the images of concurrent requests into one forward pass. The batches are scored by
the served detector's own :class:`~deepfake_detect.engine.InferenceEngine` (``detector.engine``,
the one ``Detector.predict`` runs on), on the runtime it chooses for a large job
(:meth:`InferenceEngine.select <deepfake_detect.engine.InferenceEngine.select>`, once at startup:
OpenVINO or ONNX Runtime on CPU when installed, else torch), so the service and ``predict`` share
one graph session, one optimised torch model and one cache.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import io
import json
import logging
import math
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import AUTO_EXPORT_MIN_IMAGES, FAST_PATH_MIN_IMAGES, BackendChoice, Scorer, check_backend
from ..config import CropPolicy
from ..data.images import MAX_IMAGE_PIXELS, load_image
from ..errors import DeepfakeDetectError, ImageLoadError, MissingDependencyError
from .batching import MicroBatcher, QueueFullError

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
    from starlette.requests import ClientDisconnect
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError(getattr(e, "name", None) or "fastapi", "serve", "deepfake-detect serve") from None

if TYPE_CHECKING:
    from PIL import Image

    from ..detector import Detector

__all__ = ["ServeConfig", "RequestError", "DetectionService", "create_app"]

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
EXPLAIN_FORMATS = ("png", "json")


@dataclass
class ServeConfig:
    """Settings of the detection service.

    Attributes:
        max_batch: most images in one forward pass.
        max_wait_ms: longest a batch waits for more images after its first one arrived.
        crop_faces: score the largest face of each image (OpenCV Haar cascade, cropped as
            the detector's ``config.face_crop`` says, as ``Detector.predict(..., crop_faces=True)``;
            needs the ``face`` extra).
        max_upload_bytes: largest request body accepted (all images together, as sent;
            base64 in JSON is 4/3 of the file size); larger ones get 413.
        max_pixels: largest image accepted, in pixels (the library's decompression-bomb guard).
        max_files: most images in one request.
        timeout_s: a request not answered within this many seconds gets 503.
        max_queue: most images waiting for the model; beyond it requests get 503 at once.
        explain_max_side: the PNG of ``/v1/explain`` is shrunk to at most this many pixels
            on its longer side.
        backend: what scores the batches, one of :data:`~deepfake_detect.backends.BACKENDS`:
            ``"auto"`` (default) chooses at startup as ``Detector.predict`` does for a large
            job (on CPU OpenVINO, else ONNX Runtime, when installed and the detector's graph
            exports; else torch); ``"torch"``, ``"onnxruntime"`` or ``"openvino"`` ask for one.
    """

    max_batch: int = 32
    max_wait_ms: float = 10.0
    crop_faces: bool = False
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int | None = MAX_IMAGE_PIXELS
    max_files: int = 64
    timeout_s: float = 30.0
    max_queue: int = 256
    explain_max_side: int = 1024
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_backend(self.backend)
        for name in ("max_batch", "max_upload_bytes", "max_files", "max_queue", "explain_max_side"):
            if int(getattr(self, name)) < 1:
                raise DeepfakeDetectError(f"{name}={getattr(self, name)!r}: must be at least 1")
        if not (self.max_wait_ms >= 0 and math.isfinite(self.max_wait_ms)):
            raise DeepfakeDetectError(f"max_wait_ms={self.max_wait_ms!r}: must be a finite number >= 0")
        if not (self.timeout_s > 0):
            raise DeepfakeDetectError(f"timeout_s={self.timeout_s!r}: must be > 0")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise DeepfakeDetectError(f"max_pixels={self.max_pixels!r}: must be at least 1 (or None)")
        if self.max_queue < self.max_batch:
            raise DeepfakeDetectError(f"max_queue={self.max_queue} is smaller than max_batch={self.max_batch}")
        if self.max_queue < self.max_files:  # a full request could never be queued: 503 for ever
            raise DeepfakeDetectError(f"max_queue={self.max_queue} is smaller than max_files={self.max_files}")


class RequestError(DeepfakeDetectError):
    """A request the service refuses: answered with ``status`` and a JSON body
    ``{"detail": "<field>: <reason>", "field": ..., "reason": ...}``."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        self.status, self.field, self.reason = status, field, reason
        super().__init__(f"{field}: {reason}")

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse(
            {"detail": str(self), "field": self.field, "reason": self.reason}, status_code=self.status, headers=headers
        )


@dataclass
class _Upload:
    field: str  # "file[0]", "images[2]": where it was in the request
    name: str  # the file name sent, else the field
    data: bytes


@dataclass
class _Prepared:
    array: np.ndarray
    face_box: tuple[int, int, int, int] | None
    image: Image.Image | None = None  # the decoded image, kept for /v1/explain only
    region: tuple[int, int, int, int] | None = None  # the crop scored, in the image's pixels


class DetectionService:
    """What the app runs on: the detector and its inference engine (``detector.engine``, shared
    with ``Detector.predict``), its preprocessing, the batcher and two thread pools (one thread
    for the model, a few for decoding). One per app; started by the app's lifespan."""

    def __init__(self, detector: Detector, config: ServeConfig) -> None:
        if config.crop_faces:
            from ..face import load_cascade

            load_cascade()  # fail now, not on the first request, when OpenCV is missing
        self.detector = detector
        #: what scores the batches: the detector's own engine, the one ``predict`` uses
        self.engine = detector.engine
        self.config = config
        self.prep = self.engine.preprocessor(max_pixels=config.max_pixels)
        self.threshold = float(detector.config.threshold)
        #: what scores the batches and the scorer itself: chosen by :meth:`start`
        self.choice: BackendChoice | None = None
        self.scorer: Scorer | None = None
        self._model_pool: ThreadPoolExecutor | None = None
        self._decode_pool: ThreadPoolExecutor | None = None
        self.batcher: MicroBatcher | None = None

    # -- life cycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="deepfake-detect-model")
        self._decode_pool = ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="deepfake-detect-decode")
        self.batcher = MicroBatcher(
            self.run_batch,
            self._model_pool,
            max_batch=self.config.max_batch,
            max_wait_ms=self.config.max_wait_ms,
            max_queue=self.config.max_queue,
        )
        h, w = self.prep.height, self.prep.width
        loop = asyncio.get_running_loop()
        # choose the runtime and build it now (export a graph, or the inference-optimised torch
        # model), so the first request does not wait for it
        await loop.run_in_executor(self._model_pool, self.choose_backend)
        await loop.run_in_executor(self._model_pool, self.run_batch, [np.zeros((h, w, 3), np.uint8)])
        await self.batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        for pool in (self._model_pool, self._decode_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- the work (in threads) -------------------------------------------------------
    def choose_backend(self) -> BackendChoice:
        """Choose what scores the batches, as ``Detector.predict`` chooses for a large job
        (:meth:`InferenceEngine.select <deepfake_detect.engine.InferenceEngine.select>` of the
        detector's engine with ``config.backend``, float32): a graph runtime's session
        (exported, checked against torch and cached if need be; the engine keeps it, so
        ``predict`` finds it too), or the torch forward, to which ``"auto"`` falls back when no
        runtime is installed or the export fails. Called once by :meth:`start`; logs the choice.

        Raises:
            MissingDependencyError: an explicit graph backend that is not installed.
            DeepfakeDetectError: an explicit graph backend that cannot run this model.
        """
        large = max(AUTO_EXPORT_MIN_IMAGES, FAST_PATH_MIN_IMAGES)
        self.choice, self.scorer = self.engine.select(self.config.backend, "fp32", num_images=large)
        log.info(
            "deepfake-detect serve: scoring %s with %s, as predict chooses for a large job (%s)",
            self.detector.source,
            self.backend,
            self.choice.reason,
        )
        return self.choice

    @property
    def backend(self) -> str:
        """What scores the batches, e.g. ``"openvino (fp32)"`` (``""`` before :meth:`start`)."""
        return f"{self.choice.backend} ({self.choice.precision})" if self.choice is not None else ""

    def run_batch(self, arrays: list[np.ndarray]) -> np.ndarray:
        """P(fake) of prepared images: one forward pass on the chosen runtime, as
        ``Detector.predict`` runs each of its batches (a C-contiguous NCHW float32 array for a
        graph runtime, a tensor for torch)."""
        if self.scorer is None or self.choice is None:
            self.choose_backend()
        assert self.scorer is not None and self.choice is not None
        return self.scorer(self.engine.stack(self.prep, list(arrays), self.choice))

    def prepare(self, data: bytes, *, keep_image: bool = False) -> _Prepared:
        """Decode and prepare one upload (raises ImageLoadError)."""
        img = load_image(data, max_pixels=self.config.max_pixels)
        scored, box, region = img, None, None
        if self.config.crop_faces:
            from ..face import cut_face

            face = cut_face(img, CropPolicy.from_config(self.detector.config.face_crop))  # the crop predict makes
            scored, box, region = face.image, face.box, face.region
        array = self.prep.prepare(scored)
        assert isinstance(array, np.ndarray)  # a decoded image is prepared as an array
        return _Prepared(array, box, img if keep_image else None, region)

    def heatmap_png(self, prepared: _Prepared, method: str) -> tuple[bytes, tuple[int, int], str]:
        """The heatmap of the scored image (the face crop, or the whole image) drawn over the whole
        image: PNG bytes, the heatmap's (H, W), and the method used."""
        from ..explain import explain, is_cnn, is_reconstruction_model, overlay

        img = prepared.image
        assert img is not None
        if method == "auto":
            method = (
                "residual"
                if is_reconstruction_model(self.detector)
                else "gradcam"
                if is_cnn(self.detector.model)
                else "saliency"
            )
        if prepared.region is not None:
            x0, y0, x1, y1 = prepared.region
            heat = np.zeros((img.size[1], img.size[0]), np.float32)
            heat[y0:y1, x0:x1] = explain(self.detector, img.crop(prepared.region), method=method)
        else:
            heat = explain(self.detector, img, method=method)
        side = self.config.explain_max_side
        if max(img.size) > side:  # shrink first: blending a large photo at full size costs memory for nothing
            img = img.copy()
            img.thumbnail((side, side))
        shown = overlay(img, heat)  # the heatmap is resized to the image
        buf = io.BytesIO()
        shown.save(buf, format="PNG")
        return buf.getvalue(), heat.shape, method

    # -- requests --------------------------------------------------------------------
    async def prepare_all(self, uploads: list[_Upload], *, keep_image: bool = False) -> list[_Prepared]:
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(self._decode_pool, functools.partial(self.prepare, u.data, keep_image=keep_image))
            for u in uploads
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for u, r in zip(uploads, results, strict=True):
            if isinstance(r, ImageLoadError):
                raise RequestError(422, u.field, f"cannot read {u.name!r} as an image: {r.reason}")
            if isinstance(r, BaseException):
                raise r
        return results  # type: ignore[return-value]

    async def score(self, prepared: list[_Prepared]) -> list[float]:
        assert self.batcher is not None
        try:
            return await self.batcher.score([p.array for p in prepared])
        except QueueFullError as e:
            raise RequestError(503, "request", f"the server is busy ({e}); retry later") from None

    async def predict(self, uploads: list[_Upload]) -> dict[str, Any]:
        prepared = await self.prepare_all(uploads)
        scores = await self.score(prepared)
        return {
            "detector": self.detector.source,
            "results": [
                {
                    "name": u.name,
                    "p_fake": s,
                    "label": self.detector.config.verdict(s),
                    "face_box": list(p.face_box) if p.face_box is not None else None,
                }
                for u, p, s in zip(uploads, prepared, scores, strict=True)
            ],
        }

    async def explain(self, upload: _Upload, method: str) -> tuple[bytes, dict[str, Any]]:
        (prepared,) = await self.prepare_all([upload], keep_image=True)
        (score,) = await self.score([prepared])
        loop = asyncio.get_running_loop()
        try:
            png, shape, used = await loop.run_in_executor(self._model_pool, self.heatmap_png, prepared, method)
        except ImageLoadError:
            raise
        except DeepfakeDetectError as e:
            raise RequestError(422, "method", str(e)) from None
        info = {
            "detector": self.detector.source,
            "name": upload.name,
            "p_fake": score,
            "label": self.detector.config.verdict(score),
            "face_box": list(prepared.face_box) if prepared.face_box is not None else None,
            "method": used,
            "shape": list(shape),
        }
        return png, info

    async def within_timeout(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self.config.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(
                503,
                "request",
                f"not answered within {self.config.timeout_s:g} s (the server is overloaded); retry later",
            ) from None

    def describe(self) -> dict[str, Any]:
        from ..card import model_card

        d = self.detector
        cfg = d.config.to_dict()
        return {
            "detector": d.source,
            "architecture": d.config.architecture,
            "parameters": d.num_params,
            "threshold": self.threshold,
            "suspicious_threshold": d.config.suspicious_threshold,
            "config": cfg,
            "metadata": d.config.metadata,
            "card": model_card(d),
            "backend": self.backend,
            "backend_reason": self.choice.reason if self.choice is not None else "",
            "server": asdict(self.config),
        }


# -- reading requests ---------------------------------------------------------------------------
async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it is over ``limit`` bytes, and with 408
    when it has not all arrived within ``timeout_s`` (a stalled or very slow upload)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(413, "body", f"{int(length):,} bytes is over the upload limit of {limit:,} bytes")
    chunks: list[bytes] = []

    async def read() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "body", f"over the upload limit of {limit:,} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(408, "body", f"the upload did not arrive within {timeout_s:g} s") from None
    except ClientDisconnect:  # the client gave up; nobody reads an answer
        raise RequestError(400, "body", "the client disconnected during the upload") from None
    return b"".join(chunks)


def _parse_multipart(body: bytes, content_type: str, max_files: int) -> list[_Upload]:
    """The ``file`` fields of a multipart/form-data body, parsed in memory."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "Content-Type", "multipart/form-data without a boundary")
    parts: list[tuple[dict[bytes, bytes], list[bytes]]] = []
    header = [b"", b""]

    def on_part_begin() -> None:
        parts.append(({}, []))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1][0][header[0].strip().lower()] = header[1].strip()
        header[0] = header[1] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].append(data[start:end])

    ended: list[bool] = []
    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_end": lambda: ended.append(True),
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except MultipartParseError as e:
        raise RequestError(400, "body", f"malformed multipart/form-data body ({e})") from None
    if not ended:
        raise RequestError(400, "body", "incomplete multipart/form-data body (no closing boundary)")
    uploads: list[_Upload] = []
    for headers, chunks in parts:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        field = disp.get(b"name", b"").decode("utf-8", "replace")
        if field != "file":
            raise RequestError(400, field or "(unnamed part)", "unknown field; send images as 'file' fields")
        if len(uploads) >= max_files:
            raise RequestError(413, "file", f"more than {max_files} images in one request")
        where = f"file[{len(uploads)}]"
        filename = disp.get(b"filename")
        name = os.path.basename(filename.decode("utf-8", "replace")) if filename else where
        uploads.append(_Upload(where, name or where, b"".join(chunks)))
    return uploads


def _parse_json(body: bytes, max_files: int) -> list[_Upload]:
    """``{"images": [{"name": ..., "data": <base64>}, or <base64>, ...]}``; a data: URL prefix is allowed."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(400, "body", f"not valid JSON ({e})") from None
    except RecursionError:  # e.g. "[[[[..." nested deeper than the parser goes
        raise RequestError(400, "body", "not valid JSON (nested too deeply)") from None
    if not isinstance(doc, dict) or "images" not in doc:
        raise RequestError(400, "images", 'missing; send {"images": [{"name": "a.jpg", "data": "<base64>"}]}')
    items = doc["images"]
    if not isinstance(items, list):
        raise RequestError(400, "images", f"must be a list, got {type(items).__name__}")
    if len(items) > max_files:
        raise RequestError(413, "images", f"{len(items)} images is more than {max_files} in one request")
    uploads = []
    for i, item in enumerate(items):
        where = f"images[{i}]"
        name = where
        if isinstance(item, dict):
            name = str(item.get("name") or where)
            item = item.get("data")
            where += ".data"
        if not isinstance(item, str):
            raise RequestError(422, where, "must be a base64 string")
        text = item.split(",", 1)[1] if item.startswith("data:") and "," in item else item
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise RequestError(422, where, f"not valid base64 ({e})") from None
        uploads.append(_Upload(where, name, data))
    return uploads


async def _uploads(request: Request, config: ServeConfig) -> list[_Upload]:
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    # an empty request is a bad request (400) whatever it says its type is; 415 is for a body
    # in a format the service does not take
    body = await _read_body(request, config.max_upload_bytes, config.timeout_s)
    if not body:
        raise RequestError(
            400,
            "body",
            "empty request; send multipart/form-data with a 'file' field per image, "
            'or application/json {"images": [{"name": ..., "data": "<base64>"}]}',
        )
    if kind not in ("multipart/form-data", "application/json"):
        shown = kind or "none"
        raise RequestError(
            415,
            "Content-Type",
            f"{shown} is not accepted; send multipart/form-data with 'file' "
            "fields, or application/json with base64 images",
        )
    uploads = (
        _parse_multipart(body, content_type, config.max_files)
        if kind == "multipart/form-data"
        else _parse_json(body, config.max_files)
    )
    if not uploads:
        field = "file" if kind == "multipart/form-data" else "images"
        raise RequestError(400, field, "no image in the request; send one or more")
    return uploads


# -- the app -------------------------------------------------------------------------------------
def create_app(detector: Detector | None = None, config: ServeConfig | None = None, **settings: Any) -> FastAPI:
    """The FastAPI app of the detection service.

    Args:
        detector: the detector to serve (default: the built-in default detector).
        config: the service's settings (:class:`ServeConfig`); or give them as keywords,
            e.g. ``create_app(detector, max_batch=16)``.

    Routes: ``POST /v1/predict``, ``POST /v1/explain``, ``GET /v1/models``, ``GET /healthz``,
    and the page at ``GET /``. The model is warmed up and the batcher started by the app's
    lifespan: run it with an ASGI server (uvicorn), or in tests with
    ``with fastapi.testclient.TestClient(app) as client:``.
    """
    if config is not None and settings:
        raise DeepfakeDetectError("create_app: pass either config= or keyword settings, not both")
    config = config or ServeConfig(**settings)
    if detector is None:
        from ..detector import load_detector

        detector = load_detector()
    service = DetectionService(detector, config)
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    from ..version import __version__

    app = FastAPI(
        title="deepfake-detect",
        version=__version__,
        lifespan=lifespan,
        description="Deepfake face-image detection: P(fake) per image, heatmaps.",
    )
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service, page)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """A refused request answers with its status and JSON body; anything else with 500."""

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"internal error: {type(exc).__name__}: {exc}", "field": None, "reason": "internal error"},
            status_code=500,
        )


def _add_routes(app: FastAPI, service: DetectionService, page: str) -> None:
    """The service's routes (see :func:`create_app`) on ``app``."""
    config, detector = service.config, service.detector

    @app.post(f"{API_PREFIX}/predict", summary="P(fake) of one or more images")
    async def predict(request: Request) -> JSONResponse:
        """Multipart ``file`` fields, or JSON ``{"images": [{"name", "data": <base64>}]}`` ->
        ``{"detector", "results": [{"name", "p_fake", "label", "face_box"}]}``."""
        uploads = await _uploads(request, config)
        return JSONResponse(await service.within_timeout(service.predict(uploads)))

    @app.post(f"{API_PREFIX}/explain", summary="a heatmap of what made the detector say fake")
    async def explain(request: Request, format: str = "png", method: str = "auto") -> Response:
        """One image -> a PNG of the heatmap over the image; ``?format=json``: the score and the
        heatmap's shape. ``?method=`` auto, gradcam, saliency or residual."""
        from ..explain import METHODS

        if format not in EXPLAIN_FORMATS:
            raise RequestError(422, "format", f"{format!r} is not one of {', '.join(EXPLAIN_FORMATS)}")
        if method not in METHODS:
            raise RequestError(422, "method", f"{method!r} is not one of {', '.join(METHODS)}")
        uploads = await _uploads(request, config)
        if len(uploads) != 1:
            raise RequestError(400, "file", f"/v1/explain takes exactly one image, got {len(uploads)}")
        png, info = await service.within_timeout(service.explain(uploads[0], method))
        if format == "json":
            return JSONResponse(info)
        return Response(
            png, media_type="image/png", headers={"X-P-Fake": f"{info['p_fake']:.6f}", "X-Label": info["label"]}
        )

    @app.get(f"{API_PREFIX}/models", summary="the detector's config and model card")
    async def models() -> JSONResponse:
        return JSONResponse(service.describe())

    @app.get("/healthz", summary="liveness and batching counters")
    async def healthz() -> JSONResponse:
        assert service.batcher is not None
        return JSONResponse(
            {
                "status": "ok",
                "detector": detector.source,
                "pending": service.batcher.pending,
                **service.batcher.stats.as_dict(),
            }
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)
