"""The batch size a server runs: measured at start-up, on this machine, with this model.

A bigger batch is not always faster per item. On a GPU it is, up to the memory; on a CPU the activations of a
big batch spill out of the caches (efficientnet-lite0 at 224 px on one core: 18 ms per image at batch 4,
28 ms at batch 32), so batching 32 requests made the server slower than batching none. So `--max-batch` is
measured unless given: forward passes over 1, 2, 4, ... `cap` copies of one example item, and the smallest size
whose time per item is within `tolerance` of the best (the same throughput at a shorter wait).

    size, table = choose_max_batch(backend.run, spec.example)   # e.g. 4, {1: 22.1, 2: 19.0, 4: 18.0, ...} (ms)
"""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["choose_max_batch", "DEFAULT_MAX_BATCH"]

DEFAULT_MAX_BATCH = 32  # the cap of the measurement, and the size for tasks that give no example item


def _ms_per_item(run: Callable[[list[Any]], Any], items: list[Any], repeats: int) -> float:
    """The fastest of `repeats` passes over `items`, in milliseconds per item."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(items)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(items)


def choose_max_batch(run: Callable[[list[Any]], Any], example: Any, *, cap: int = DEFAULT_MAX_BATCH,
                     tolerance: float = 0.05, repeats: int = 2, rounds: int = 3,
                     budget_s: float = 15.0) -> tuple[int, dict[int, float]]:
    """(the batch size, {size: ms per item}) for `run` over copies of `example`. Each size runs once to warm up,
    then `repeats` times (the fastest counts). It stops early once a size is 25% slower per item than the best
    (bigger ones only get worse on a CPU), after a second look (a burst of noise is not a trend), or after
    `budget_s`. Then `rounds` passes over every size measured, one size after the other, so that all of them see
    the machine's noise alike (on a shared 2-core CPU one reading can be 2x another): the fastest reading counts."""
    table: dict[int, float] = {}
    start = time.perf_counter()
    size = 1
    while size <= cap:
        items = [example] * size
        run(items)
        table[size] = _ms_per_item(run, items, repeats)
        if table[size] > 1.25 * min(table.values()):
            table[size] = min(table[size], _ms_per_item(run, items, repeats))
            if table[size] > 1.25 * min(table.values()):
                break
        if time.perf_counter() - start > budget_s:
            break
        size *= 2
    for _ in range(rounds):
        if time.perf_counter() - start > budget_s:
            break
        for n in table:
            table[n] = min(table[n], _ms_per_item(run, [example] * n, 1))
    fastest = min(table.values())
    chosen = min(s for s, ms in table.items() if ms <= (1 + tolerance) * fastest)
    return chosen, table
