"""Process-wide performance settings, each one named, logged, measured and switchable off.

`tune_cpu_allocator()`: training on the CPU allocates and frees activation tensors of tens of MB every step.
glibc serves blocks over 32 MB with mmap and unmaps them on free, so every step page-faults and zeroes all of its
activation memory again: on the 2-core dev machine half of the CPU time of tf_efficientnet_lite0 training was
kernel time. Keeping freed memory in the heap (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB) measured, for
6 steps + 3 validation batches (benchmarks/allocator.py): 22.3 s -> 12.4 s wall, kernel time
18.8 s -> 2.2 s, peak RSS 3.4 -> 4.4 GB. The Learner applies it when it trains on the CPU; set
QUICKLEARN_TUNE_MALLOC=0 to leave the allocator alone. Only glibc (Linux) has mallopt; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["tune_cpu_allocator"]

log = logging.getLogger("quicklearn")

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
_TRIM_BYTES = 1 << 30


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it; True when applied. Idempotent."""
    if os.environ.get("QUICKLEARN_TUNE_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and other libcs: nothing to tune
    ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES))
    if ok:
        log.debug("glibc allocator: freed memory kept for reuse (QUICKLEARN_TUNE_MALLOC=0 turns this off)")
    return ok
