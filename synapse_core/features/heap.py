"""Let glibc's malloc keep freed memory in a process that runs VGG3D forward passes (issue 16).

Every 80³ activation of the network's first stage (24 channels × 80³ × 4 B = 49 MB per crop) is larger
than glibc's largest mmap threshold (32 MB), so by default each one is a fresh ``mmap`` that the kernel
page-faults and zero-fills, and is unmapped again when freed: about a third of the first stage's time
(docs/performance.md, "VGG3D"). :func:`keep_freed_memory` tells malloc to serve large blocks from its heap
and never to give freed memory back, so the next activation reuses the pages of the last one.

The setting is process-wide and the process keeps its high-water memory until it ends, so it is made only
by commands that run in a process of their own (``python -m synapse_core extract``), never by the
dashboard's server or by the library on import.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

#: ``mallopt`` parameters of glibc's ``<malloc.h>``.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Freed memory at the top of the heap is returned to the system only above this many bytes (the largest
#: value ``mallopt`` takes, 2 GiB - 1: a whole crop batch's activations stay for reuse).
TRIM_THRESHOLD_BYTES = 2**31 - 1


def _glibc():
    """glibc's ``libc`` (ctypes), or None elsewhere (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None  # glibc only


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve every block from its heap (no ``mmap``) and never trim the heap.

    Returns
    -------
    bool
        True when both settings were made (glibc on Linux); False elsewhere, where nothing changes.
    """
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not ok:
        log.debug("mallopt refused the heap settings; malloc keeps its defaults")
    return ok
