"""Finding input images and writing outputs atomically."""

import csv
import io
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".colorize-tmp"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_temp_name(path: Path) -> bool:
    """A temporary file of atomic_path, live or left by a killed run: never an input or an output."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def walk_images(root: Path, exclude: Path | None = None, on_warning=None) -> list[Path]:
    """Image files under `root`, sorted, following directory symlinks but never a loop or `exclude`."""
    root = Path(root)
    warn = on_warning or (lambda message: None)
    found = []
    seen = set()
    skip = exclude.resolve() if exclude is not None and exclude.exists() else None

    def unreadable(exc: OSError) -> None:
        warn(f"{exc.filename}: cannot list folder ({exc.strerror or exc}), not walked")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        real = Path(dirpath).resolve()
        if real in seen:
            warn(f"{dirpath}: already walked as {real} (symlink loop or second link), not walked again")
        if real in seen or real == skip:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        found += [Path(dirpath) / name for name in sorted(filenames) if is_image_name(Path(name))]
    return found


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files that a killed run left under `folder` (hold its lock); return them."""
    removed = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            if is_temp_name(path):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _create_temp(path: Path) -> Path:
    """A new empty file beside `path`, named to end in TEMP_SUFFIX, with the umask's usual permissions."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _flush_to_disk(path: Path) -> None:
    """fsync, so that after a system crash the renamed file holds its data, not zero bytes."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name ends in TEMP_SUFFIX, so writers must name their format explicitly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv_atomic(path: Path, records: list[dict], fieldnames: list[str]) -> None:
    """Records as a CSV file with a header row, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text_atomic(path, buffer.getvalue())


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically; file names that are not UTF-8 keep their original bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
