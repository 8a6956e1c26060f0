"""How the process's C allocator hands memory back: a setting outside PyTorch that decides much of CPU speed.

PyTorch's CPU tensors come from ``malloc``. glibc serves every block above 32 MiB (one activation of a
video network at its published clip: R(2+1)D-50's 256 x 16 x 64 x 64 is 64 MiB) with its own ``mmap``
and unmaps it on free, so each forward pass faults every page of its large activations back in from
the kernel, zero-filled (what that cost is measured in docs/benchmarks.md, "The allocator: what decided most of the rows").
:func:`reuse_freed_memory` makes glibc keep freed blocks for reuse.
"""

from __future__ import annotations

import ctypes
import sys

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Freed memory at the top of the heap is returned to the OS only above this much (the largest int).
_NEVER_TRIM = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Make this process's ``malloc`` (glibc) keep freed memory and reuse it, instead of mapping every
    large block afresh and unmapping it when freed; returns whether the setting was applied.

    It serves all blocks from the heap (no ``mmap``) and never trims the heap, so after the first
    forward pass the next ones allocate without page faults; the price is that the process keeps its
    peak memory until it exits. It is process-wide, so videozoo's command line applies it and the
    library leaves it to you: call it once before running models on the CPU (the ``MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=2147483647`` environment variables, or jemalloc/tcmalloc preloaded, do the
    same for any program). A no-op returning ``False`` where the C library is not glibc (macOS,
    Windows, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on (find_library would spawn ldconfig)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has it (musl's mallopt ignores these parameters)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
