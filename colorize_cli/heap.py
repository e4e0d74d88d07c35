"""Keep the network's freed buffers in the process between images (glibc's malloc only).

With glibc's defaults, blocks freed at the end of a forward pass go back to the OS, so the next
image page-faults its activations afresh (8 to 45 MB a 400x400 image), which cost network 6
15 to 40% of its speed on CPU and made that speed differ from run to run; training steps lost
about a fifth of theirs the same way (benchmarks/README.md).
After `keep_freed_buffers()`, blocks up to 32 MiB come from the heap and the heap is handed back
only when more than 256 MiB of it is free; larger blocks (whole photos) are still mapped and
returned one by one. Peak memory stays what it was: the heap holds what the busiest image needed.
Malloc settings of the user's own (MALLOC_*_ variables, GLIBC_TUNABLES) are left to rule; so are
dask's: its nanny starts workers with MALLOC_TRIM_THRESHOLD_ set (distributed.nanny.pre-spawn-environ).
"""

import ctypes
import os

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 << 20
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_buffers() -> bool:
    """Apply the settings above; False (and nothing changed) where the user set malloc up or the C
    library has no glibc mallopt."""
    if any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
