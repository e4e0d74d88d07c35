"""Keep the network's freed buffers in the process between images (glibc's malloc only).

With glibc's defaults, blocks freed at the end of a forward pass go back to the OS, so the next
image page-faults its activations afresh (8 to 45 MB a 400x400 image), which cost network 6
15 to 40% of its speed on CPU and made that speed differ from run to run; training steps lost
about a fifth of theirs the same way (benchmarks/README.md).
After `keep_freed_buffers()`, blocks up to 32 MiB come from the heap and the heap is handed back
only when more than 256 MiB of it is free; larger blocks (whole photos) are still mapped and
returned one by one. The heap holds what the busiest image needed, plus what fragmentation adds
over a long batch (threads free blocks in a different order from image to image). So
`release_free_pages` hands the free pages back after every 32nd image: 1,000 images then peak 2%
above 10 rather than 4%, at no measurable cost in speed (benchmarks/README.md).
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
RELEASE_EVERY = 32  # images: the next images fault their buffers in again; every 8th cost 3% of the speed
_kept = []  # glibc's malloc_trim, once keep_freed_buffers() has taken effect


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
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False
    if not _kept:
        malloc_trim = ctypes.CDLL(None).malloc_trim
        malloc_trim.argtypes = [ctypes.c_size_t]
        _kept.append(malloc_trim)
    return True


def release_free_pages(images_done: int) -> bool:
    """After every 32nd image, give the heap's free pages back to the OS; True if it did. Nothing
    happens unless keep_freed_buffers() took effect."""
    if not (_kept and images_done > 0 and images_done % RELEASE_EVERY == 0):
        return False
    _kept[0](0)
    return True
