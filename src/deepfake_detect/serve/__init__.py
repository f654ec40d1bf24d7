"""An HTTP detection service and a web page (the ``serve`` extra: FastAPI and uvicorn).

    >>> from deepfake_detect import load_detector
    >>> from deepfake_detect.serve import create_app, serve
    >>> app = create_app(load_detector(), max_batch=32, max_wait_ms=10)   # an ASGI app
    >>> serve(load_detector(), port=8000)                                  # run it with uvicorn

Or from the shell: ``deepfake-detect serve [DETECTOR] --port 8000``. See ``docs/serve.md``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from .app import DetectionService, RequestError, ServeConfig, create_app
from .batching import BatchStats, MicroBatcher, QueueFullError

if TYPE_CHECKING:
    from ..detector import Detector

#: Seconds a stopping server (Ctrl-C, SIGTERM) waits for open requests before it closes them.
SHUTDOWN_GRACE_S = 10

__all__ = [
    "create_app",
    "serve",
    "ServeConfig",
    "RequestError",
    "DetectionService",
    "MicroBatcher",
    "BatchStats",
    "QueueFullError",
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def return_freed_memory() -> bool:
    """Have glibc give freed blocks of 1 MiB and more back to the system at once.

    A server allocates and frees batch-sized tensors of varying sizes all the time; with
    glibc's default (a threshold that adapts upwards to 32 MiB) those blocks stay in its heaps
    and resident memory creeps up by hundreds of MiB over minutes although nothing is leaked.
    A fixed 1 MiB threshold keeps it flat, at some cost in speed (measured in docs/serve.md).
    Affects the whole process, so ``deepfake-detect serve`` calls it and :func:`serve` does
    not. Does nothing where ``MALLOC_MMAP_THRESHOLD_`` is set in the environment (glibc reads
    that itself) or the C library is not glibc. Returns whether the threshold was set.
    """
    import ctypes
    import ctypes.util
    import os
    import platform

    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold = -3  # from malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 1024 * 1024))
    except (OSError, AttributeError):
        return False


def serve(
    detector: Detector | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    log_level: str = "info",
    access_log: bool = True,
    **settings: Any,
) -> None:
    """Run the detection service with uvicorn until interrupted (one process).

    Args:
        detector: the detector to serve (default: the built-in default detector).
        host: where to listen. The default, 127.0.0.1, is this machine only: there is
            no authentication, so expose it through a reverse proxy that has some.
        port: the port to listen on.
        config: a :class:`ServeConfig`.
        log_level: uvicorn's log level.
        access_log: whether uvicorn logs each request.
        **settings: :class:`ServeConfig` fields as keywords.
    """
    import uvicorn

    app = create_app(detector, config, **settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        log_config=_log_config(log_level),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,  # an upload that never ends cannot hold up a stop
    )


def _log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's logging config, plus the service's own logger (its startup line says what
    scores the batches) on uvicorn's handler at ``log_level``."""
    import copy

    from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    level = LOG_LEVELS.get(log_level.lower(), 20)
    config["loggers"][__name__] = {"handlers": ["default"], "level": level, "propagate": False}
    return config
