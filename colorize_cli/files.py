"""Finding input images and writing outputs atomically."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".colorize-tmp"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def walk_images(root: Path, exclude: Path | None = None, on_warning=None) -> list[Path]:
    """Image files under `root`, sorted, following directory symlinks but never a loop or `exclude`."""
    root = Path(root)
    found = []
    seen = set()
    skip = exclude.resolve() if exclude is not None and exclude.exists() else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = Path(dirpath).resolve()
        if real in seen or (skip is not None and real == skip):
            if real in seen and on_warning:
                on_warning(f"{dirpath}: directory loop (symlink back to {real}), not walked again")
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        found += [Path(dirpath) / name for name in sorted(filenames) if is_image_name(Path(name))]
    return found


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name ends in TEMP_SUFFIX, so writers must name their format explicitly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
