"""Host memory on CPU: freed blocks stay in the process for the next step, not handed back to the kernel.

A training step frees and allocates the same activations and gradients again every step. glibc's
malloc hands large freed blocks back to the kernel (munmap, or trimming the top of its heap), and
the kernel zero-fills every page of them again on first touch. Measured on 2 cores
(benchmarks/README.md, "Freed memory kept in the process"): the 32 px digits ResNet-18, 6 epochs in
bf16, took about 1.1 million page faults and 3.8 s of system time in a 17-18 s command; with both
thresholds fixed, 0.34 million and 1.9 s, and the command took 15.4-16.3 s (ResNet-18 at 224: 81.6
against 74-76 s in bf16). glibc adjusts both thresholds by itself only while neither is set, so
setting one alone made it slower (more faults, not fewer).
"""

from __future__ import annotations

import ctypes
import logging
import platform

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # the most glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the heap's top is in practice never trimmed


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve blocks up to 32 MiB from its heap and never trim the heap, for the rest
    of the process (DataLoader workers forked later inherit it). False, and nothing changed, where the C
    library is not glibc (musl, macOS), whose malloc has no such settings."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    kept = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not kept:
        logger.debug("glibc refused the malloc thresholds; freed memory goes back to the kernel as before")
    return kept
