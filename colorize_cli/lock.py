"""One run per output folder: an advisory lock the kernel releases when the process dies."""

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".colorize.lock"


class Locked(Exception):
    """Another run holds the output folder."""


@contextmanager
def folder_lock(folder: Path, wait: bool = False, on_wait: Callable[[str], None] = lambda m: None):
    """Hold `folder`/.colorize.lock for the block; raise Locked at once unless `wait`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, run unguarded
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"{folder} is in use by another colorize run (pid {_holder(fd)})"
            if not wait:
                raise Locked(f"{message}; use --wait to wait for it") from None
            on_wait(f"{message}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """The pid the running holder wrote into the lock file."""
    return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
