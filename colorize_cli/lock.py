"""One run per output folder: an advisory lock the kernel releases when the process dies."""

import os
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".colorize.lock"


class Locked(Exception):
    """Another run holds the output folder."""


@contextmanager
def folder_lock(folder: Path, wait: bool = False):
    """Hold `folder`/.colorize.lock for the block; raise Locked at once unless `wait`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, run unguarded
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise Locked(f"{folder} is in use by another colorize run (pid {holder}); "
                         f"use --wait to wait for it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
