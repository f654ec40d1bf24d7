"""Request batching: images from concurrent requests are scored together in one forward pass."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DeepfakeDetectError

__all__ = ["MicroBatcher", "BatchStats", "QueueFullError"]


class QueueFullError(DeepfakeDetectError, RuntimeError):
    """More images are waiting than the batcher accepts (the server is overloaded)."""


@dataclass
class BatchStats:
    """Counters of a :class:`MicroBatcher` since it started."""

    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "images": self.images,
            "largest_batch": self.largest_batch,
            "mean_batch": round(self.images / self.batches, 3) if self.batches else 0.0,
        }


@dataclass
class _Item:
    array: Any
    future: asyncio.Future


class MicroBatcher:
    """Collects prepared images from concurrent callers and scores them in batches.

    A batch starts with the first waiting image and closes when it holds ``max_batch``
    images or ``max_wait_ms`` milliseconds have passed since it started, whichever comes
    first; ``run_batch(arrays) -> scores`` then runs in ``executor`` (one thread, so the
    model runs one batch at a time while the event loop keeps accepting requests).

    Use it from one event loop: ``await start()``, ``await score(arrays)`` from any number
    of tasks, ``await stop()``.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], np.ndarray],
        executor: Executor,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 10.0,
        max_queue: int = 256,
    ) -> None:
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._items: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @property
    def pending(self) -> int:
        """Images waiting for a batch."""
        return len(self._items)

    async def start(self) -> None:
        """Start the batching task on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="deepfake-detect-batcher")

    async def stop(self) -> None:
        """Stop the batching task; callers still waiting get a ``CancelledError``."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._items:
            self._items.popleft().future.cancel()

    async def score(self, arrays: Sequence[Any]) -> list[float]:
        """P(fake) of each prepared image, in order, once their batches have run.

        Raises:
            QueueFullError: accepting them would put more than ``max_queue`` images in the queue.
            RuntimeError: the batcher is not started.
        """
        if self._task is None or self._wakeup is None:
            raise RuntimeError("the batcher is not started (use the app inside its lifespan)")
        if len(self._items) + len(arrays) > self.max_queue:
            raise QueueFullError(f"{len(self._items)} images are already waiting (at most {self.max_queue})")
        loop = asyncio.get_running_loop()
        items = [_Item(a, loop.create_future()) for a in arrays]
        self._items.extend(items)
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        except BaseException:
            for i in items:  # a caller that gives up (timeout, disconnect): its images are dropped
                i.future.cancel()
            raise

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._items:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = loop.time() + self.max_wait
            while len(self._items) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:  # a lost wake-up costs nothing: the images are in the deque
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch: list[_Item] = []
            while self._items and len(batch) < self.max_batch:
                item = self._items.popleft()
                if not item.future.done():  # skip images whose caller has given up
                    batch.append(item)
            if not batch:
                continue
            try:
                scores = await loop.run_in_executor(self.executor, self.run_batch, [i.array for i in batch])
            except Exception as e:  # the callers get the error; the batcher goes on
                for i in batch:
                    if not i.future.done():
                        i.future.set_exception(e)
                continue
            self.stats.batches += 1
            self.stats.images += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            self.stats.sizes[len(batch)] += 1
            for i, s in zip(batch, scores, strict=True):
                if not i.future.done():
                    i.future.set_result(float(s))
