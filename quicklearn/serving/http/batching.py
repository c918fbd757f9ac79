"""Dynamic batching: the items of concurrent requests run as one forward pass.

A request submits its items (already checked and decoded) and waits. One loop takes the oldest request, then
every request that arrives within `max_wait_ms` (or is already waiting) while the batch has room for it, up to
`max_batch` items; it waits only while other requests are on their way (`coming`: being read and decoded), so a
lone client pays no wait; runs the batch in a worker thread (the event loop keeps accepting and decoding requests
meanwhile, so the next batch fills while this one runs); and gives each request its own rows of the outputs.
The queue is bounded: past `max_queue` waiting requests, `submit` raises Busy (the app's 503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["Batcher", "Busy", "Closed", "take_rows"]

log = logging.getLogger("quicklearn")


class Busy(Exception):
    """The queue is full: the client should retry after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy ({retry_after} s)")
        self.retry_after = retry_after


class Closed(Exception):
    """The server is stopping: no new work is taken."""


@dataclass
class _Request:
    items: list[Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


def take_rows(outputs: Any, start: int, stop: int) -> Any:
    """Rows start:stop of a batch's outputs (a tensor or array along its first axis, or a list)."""
    return outputs[start:stop]


@dataclass
class BatchStats:
    """What the batcher did: batches run, items in them, the largest batch (for /info and the benchmark)."""

    batches: int = 0
    items: int = 0
    largest: int = 0


class Batcher:
    """Collects submitted items into batches for `run(items) -> outputs` (one row per item along the first axis)."""

    def __init__(self, run: Callable[[list[Any]], Any], max_batch: int = 32, max_wait_ms: float = 10.0,
                 max_queue: int = 256):
        self.run, self.max_batch, self.max_wait = run, int(max_batch), float(max_wait_ms) / 1000
        self.max_queue = int(max_queue)
        self.stats = BatchStats()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        # one thread: batches run one after the other, each with all of torch's intra-op threads
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="quicklearn-batch")
        self._seconds_per_batch = 0.05  # a running estimate, for Retry-After
        self.coming = 0  # requests being prepared that will submit soon (the app counts them): worth waiting for

    # ---- life --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="quicklearn-batcher")

    def close(self) -> None:
        """Take no new requests (Closed); those already queued still run."""
        self._closed = True

    async def stop(self) -> None:
        """Run what is queued, then end the loop and the worker thread."""
        self._closed = True
        while self._waiting:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    # ---- requests ----------------------------------------------------------------------------------------
    async def submit(self, items: Sequence[Any]) -> Any:
        """The outputs of `items` (their rows of the batch they ran in). Busy when the queue is full, Closed
        when the server is stopping; the batch's exception when it failed."""
        if self._closed:
            raise Closed()
        if len(self._waiting) >= self.max_queue:
            batches_ahead = len(self._waiting) / max(1, self.max_batch)
            raise Busy(max(1, round(batches_ahead * self._seconds_per_batch + 0.5)))
        if self._arrived is None:
            raise RuntimeError("Batcher.start() was not called on the running loop")
        req = _Request(list(items), asyncio.get_running_loop().create_future())
        self._waiting.append(req)
        self._arrived.set()
        return await req.future

    async def _next_batch(self) -> list[_Request]:
        assert self._arrived is not None
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        batch = [self._waiting.popleft()]
        n = len(batch[0].items)
        deadline = time.perf_counter() + self.max_wait
        while n < self.max_batch:
            if self._waiting:
                if n + len(self._waiting[0].items) > self.max_batch:
                    break  # it runs first in the next batch
                req = self._waiting.popleft()
                batch.append(req)
                n += len(req.items)
                continue
            left = deadline - time.perf_counter()
            if left <= 0 or self.coming <= 0:
                break  # the wait is over, or nobody else is on the way
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            items = [it for req in batch for it in req.items]
            t0 = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._pool, self.run, items)
            except Exception as e:  # the batch's requests get the error; the loop lives on
                log.exception("a batch of %d items failed", len(items))
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(e)
                continue
            spent = time.perf_counter() - t0
            self._seconds_per_batch = 0.8 * self._seconds_per_batch + 0.2 * spent
            self.stats.batches += 1
            self.stats.items += len(items)
            self.stats.largest = max(self.stats.largest, len(items))
            start = 0
            for req in batch:
                stop = start + len(req.items)
                if not req.future.done():  # a client that went away cancelled its future
                    req.future.set_result(take_rows(outputs, start, stop))
                start = stop
