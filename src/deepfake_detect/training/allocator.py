"""glibc's allocator while a run trains on the CPU: freed memory is kept for the next step.

A CPU training step allocates and frees the same large activation and gradient buffers
every step. glibc serves blocks above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and unmaps them on ``free``, so each step page-faults its whole working set in
again and the kernel zeroes every page: about 0.7 s of system time per step for
``resnet18-baseline`` at batch 40 and 1.3 s for ``efficientnet-lite0`` at batch 32 on the
machine of ``docs/training.md``. :func:`reuse_freed_memory` tells glibc to serve large blocks
from its heap and to keep freed memory, for the duration of a run; on leaving it restores
glibc's defaults and hands the free memory back to the system (``malloc_trim``).

The setting is process-wide while it lasts (other threads allocate the same way meanwhile).
One effect outlasts it: after any ``mallopt`` call glibc stops raising its mmap threshold
as large blocks are freed (it keeps the value reached so far). That changes speed only.
Processes that tune these settings themselves are left alone: with any of
``MALLOC_MMAP_MAX_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
``MALLOC_TOP_PAD_`` (or a ``malloc`` tunable in ``GLIBC_TUNABLES``) set, or jemalloc, tcmalloc
or mimalloc preloaded, nothing is changed. Elsewhere than Linux with glibc this is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["reuse_freed_memory"]

log = logging.getLogger(__name__)

# mallopt parameters and glibc's defaults for them (malloc.h, mallopt(3))
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_KEEP_UP_TO = 2**31 - 1  # the largest trim threshold mallopt takes (an int): 2 GiB
_ENV_TUNABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

# one tuning shared by runs that overlap (trainers in several threads): the first in sets it,
# the last out restores it
_lock = threading.Lock()
_users = 0


def _glibc() -> Any:
    """The C library when it is glibc and the process has not tuned its allocator, else None."""
    if not sys.platform.startswith("linux"):
        return None
    env = os.environ
    if any(name in env for name in _ENV_TUNABLES) or "malloc" in env.get("GLIBC_TUNABLES", ""):
        return None
    if any(name in env.get("LD_PRELOAD", "") for name in _OTHER_ALLOCATORS):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (not musl)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """While inside, glibc serves large blocks from its heap and keeps freed memory for reuse.

    Yields whether the allocator was tuned (False off glibc, when the process tunes it
    itself, or with ``enabled=False``). Nested and concurrent uses share one tuning.
    """
    global _users
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _lock:
        if _users == 0 and not (libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO)):
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            log.debug("mallopt refused; the allocator is left as it was")
            libc = None
        else:
            _users += 1
    if libc is None:
        yield False
        return
    try:
        yield True
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
