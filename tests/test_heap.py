"""``features.heap.keep_freed_memory``: large blocks come from malloc's heap, not from fresh mmaps.

Each case runs in a fresh interpreter (the setting is process-wide; the probe asserts that
``keep_freed_memory`` reports success) and reads glibc's ``mallinfo2``:
``hblkhd`` is the number of bytes in mmapped blocks.
"""

import ctypes
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc ≥ 2.33 (mallinfo2) on Linux only")

#: Allocates a 64 MiB block (above glibc's largest mmap threshold) and prints the mmapped bytes while it lives.
_PROBE = """
import ctypes, sys
from synapse_core.features.heap import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd
block = libc.malloc(64 << 20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def _mmapped_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_large_block_is_mmapped_by_default():
    assert _mmapped_bytes("default") >= 64 << 20


def test_large_block_comes_from_the_heap_when_memory_is_kept():
    assert _mmapped_bytes("keep") == 0
