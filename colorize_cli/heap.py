"""Keep the network's freed buffers in the process between images (glibc's malloc only).

With glibc's defaults, blocks freed at the end of a forward pass go back to the OS, so the next image
page-faults its activations afresh, which slowed network 6 on CPU and made its speed vary from run to
run; training steps lost speed the same way (benchmarks/README.md has the figures).
After `keep_freed_buffers()`, blocks up to 32 MiB come from the heap and the heap is handed back only
when more than 256 MiB of it is free; larger blocks (whole photos) are still mapped and returned one by
one. Fragmentation over a long batch grows the heap slowly, so `image_done` hands the free pages back
after every 32nd image (measured in benchmarks/README.md).
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
RELEASE_EVERY = 32  # images: the next images fault their buffers in again (benchmarks/README.md)
_malloc_trim = None  # glibc's, once keep_freed_buffers() has taken effect
_images_done = 0  # in this process, over all batches (a dask worker runs one short batch per chunk)


def keep_freed_buffers() -> bool:
    """Apply the settings above; False (and nothing changed) where the user set malloc up or the C
    library has no glibc mallopt."""
    global _malloc_trim
    if any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    _malloc_trim = malloc_trim
    return True


def image_done() -> bool:
    """Count one finished image; after every 32nd, give the heap's free pages back to the OS and
    return True. Nothing is given back unless keep_freed_buffers() took effect."""
    global _images_done
    _images_done += 1
    if _malloc_trim is None or _images_done % RELEASE_EVERY:
        return False
    _malloc_trim(0)
    return True
