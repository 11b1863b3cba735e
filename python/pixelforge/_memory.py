"""pixelforge's own memory pool for the NumPy arrays it allocates, scoped to its own work.

A training step allocates and frees the same activation sizes every step. glibc serves each
large one with fresh mmap'ed pages, and the first write to each 4 KiB page faults into the
kernel, which zeroes it: the transformer's step spent a third of its time there. The pool
(csrc/memory_pool_bind.cpp) keeps freed blocks of 128 KiB and more in bins by size, up to
1 GiB, and hands them out again.

It is installed with NumPy's memory-handler API (NEP 49), whose handler lives in a context
variable: ``memory_pool()`` sets it for the duration of pixelforge's training and sampling
(``fit``, ``sample``, the edits) and restores the one before, so torch, the user's NumPy and
every other library in the process keep their allocator exactly as it was. (Earlier versions
called glibc's ``mallopt`` at import, which changed the allocator for the whole process.)
An array keeps the handler that allocated it, so one freed later outside the scope still goes
back to the pool. ``PIXELFORGE_MEMORY_POOL=0`` turns it off; it is off under the sanitizer
build (AddressSanitizer must see every free) and where the C++ module is not built.
"""
from __future__ import annotations

import contextlib
import os

from . import _backend


def _handler():
    if os.environ.get("PIXELFORGE_MEMORY_POOL", "1") == "0" or os.environ.get("PIXELFORGE_SANITIZED"):
        return None
    cpu = _backend.cpu_module()
    return cpu.memory_pool_handler() if cpu is not None and hasattr(cpu, "memory_pool_handler") else None


@contextlib.contextmanager
def memory_pool():
    """NumPy arrays allocated inside come from pixelforge's pool (see the module docstring);
    nested uses are cheap. Outside, NumPy's previous handler is back."""
    h = _handler()
    if h is None:
        yield
        return
    cpu = _backend.cpu_module()
    old = cpu.numpy_set_handler(h)
    try:
        yield
    finally:
        cpu.numpy_set_handler(old)


def stats() -> dict:
    """The pool's counters: cached_bytes, live_blocks, hits, misses (empty when it is off)."""
    cpu = _backend.cpu_module()
    return dict(cpu.memory_pool_stats()) if cpu is not None and hasattr(cpu, "memory_pool_stats") else {}


def trim() -> None:
    """Free every cached block (arrays in use are not touched)."""
    cpu = _backend.cpu_module()
    if cpu is not None and hasattr(cpu, "memory_pool_trim"):
        cpu.memory_pool_trim()
