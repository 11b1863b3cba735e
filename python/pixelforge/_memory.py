"""Keep freed memory in the process instead of handing it back to the kernel at once.

glibc serves allocations above a threshold (128 KiB, growing with use) with fresh mmap'ed
pages and trims the heap top eagerly, so every new activation or gradient of a training step
is new memory, and the first write to each 4 KiB page faults into the kernel, which zeroes
it. A (64, 64, 384) float32 activation is 1,536 such faults; the transformer's training step
spent 40% of its time in them (measured on 2 cores: 238 -> 145 ms per step with the settings
below). With blocks up to 32 MiB served from the heap and a 1 GiB trim threshold, freed
blocks are reused as they are. The cost: the process keeps its peak heap (as jemalloc and
tcmalloc, which PyTorch's docs recommend for the same reason, do).

Applied once, when the autograd layer (``pixelforge.tensor``) is first imported; opt out with
``PIXELFORGE_KEEP_FREED_MEMORY=0`` (then nothing is changed). No effect beyond glibc.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 1 << 30

_state = {"applied": None}


def keep_freed_memory() -> bool:
    """Apply the settings above (once); True when they are in effect."""
    if _state["applied"] is not None:
        return _state["applied"]
    ok = False
    if os.environ.get("PIXELFORGE_KEEP_FREED_MEMORY", "1") != "0" and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):  # not glibc (musl, macOS): leave the allocator alone
            ok = False
    _state["applied"] = ok
    return ok
