"""Process-wide state, set in one place: `configure_process()`, called by every entry point (the command
line, colorize_batch, colorize_folder, eval, train and each dask worker); calling it again changes nothing.

- glibc's heap keeps the network's freed buffers (heap.py; measured in benchmarks/README.md).
- Pillow's own pixel limit is off: decode applies --max-pixels from the header, before any pixel is read.
- matplotlib draws without a GUI toolkit (its Agg backend), whatever MPLBACKEND says.
- Warnings and tifffile's log lines are kept per thread while a file decodes, so each file's notes are
  its own when several threads decode at once (warnings.catch_warnings is process-wide); outside a
  decode they are shown as before.
"""

import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from colorize_cli import heap

_configured = False
_configuring = threading.Lock()


def configure_process() -> None:
    """Apply the settings above, once per process."""
    global _configured
    with _configuring:
        if _configured:
            return
        heap.keep_freed_buffers()
        Image.MAX_IMAGE_PIXELS = None
        os.environ["MPLBACKEND"] = "Agg"  # matplotlib is imported later, by plots.py, which only writes files
        keep_thread_warnings()
        _configured = True


_kept = threading.local()  # .messages: the list warnings of this thread go to, or None
_install = threading.Lock()
_show_elsewhere = warnings.showwarning
_PILLOW_ALWAYS = ("always", None, Warning, re.compile(r"PIL\."), 0)  # as warnings.filters holds it


class _KeepLogged(logging.Handler):
    """tifffile logs what it finds wrong: kept with the file being decoded, never printed on its own."""

    def emit(self, record: logging.LogRecord) -> None:
        messages = getattr(_kept, "messages", None)
        if messages is not None:
            messages.append(re.sub(r"^<tifffile\.\w+ @\d+> ", "", record.getMessage()))


def _show_or_keep(message, category, filename, lineno, file=None, line=None):
    messages = getattr(_kept, "messages", None)
    if messages is not None:
        messages.append(str(message).strip())
    elif not getattr(_kept, "showing", False):  # a handler that hands back to this one must not loop
        _kept.showing = True
        try:
            _show_elsewhere(message, category, filename, lineno, file, line)
        finally:
            _kept.showing = False


@contextmanager
def warnings_of_this_thread() -> Iterator[list[str]]:
    """The messages of the warnings this thread raises in the block; Pillow's every time, not once.

    warnings.catch_warnings swaps process-wide state, so threads decoding at once would lose or swap
    each other's warnings (and catch those of any other thread); here each thread keeps its own.
    """
    keep_thread_warnings()  # again: a test harness or another library may have swapped warnings.showwarning
    _kept.messages = messages = []
    try:
        yield messages
    finally:
        _kept.messages = None


def kept_messages() -> list[str]:
    """The messages kept so far in this thread's warnings_of_this_thread block (a new list outside one)."""
    messages = getattr(_kept, "messages", None)
    return [] if messages is None else messages


def keep_thread_warnings() -> None:
    """Route warnings through this module (Pillow's every time, not once) and tifffile's log to it."""
    global _show_elsewhere
    with _install:
        if warnings.showwarning is not _show_or_keep:
            _show_elsewhere = warnings.showwarning
            warnings.showwarning = _show_or_keep
        if _PILLOW_ALWAYS not in warnings.filters:  # re-adding would reset every "once" registry
            warnings.filterwarnings("always", module=r"PIL\.")
        log = logging.getLogger("tifffile")
        if not any(isinstance(h, _KeepLogged) for h in log.handlers):
            log.addHandler(_KeepLogged())
            log.propagate = False
