"""Finding input images and writing outputs atomically."""

import csv
import functools
import io
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (and open files cannot be deleted there)
    fcntl = None

TEMP_SUFFIX = ".colorize-tmp"
@functools.cache
def image_suffixes() -> frozenset[str]:
    """Every suffix of a format the decoder reads (Pillow's readers, tifffile's TIFFs): what a walk picks up."""
    from PIL import Image

    from colorize_cli.decode import readable_formats

    formats = readable_formats()
    return frozenset(suffix for suffix, fmt in Image.registered_extensions().items() if fmt in formats)


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in image_suffixes()


def is_temp_name(path: Path) -> bool:
    """A temporary file of atomic_path, live or left by a killed run: never an input or an output."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def walk_images(root: Path, exclude: Path | None = None, on_warning=None, on_unreadable=None) -> list[Path]:
    """Image files under `root`, sorted, following directory symlinks but never a loop or `exclude`.

    A folder that cannot be listed goes to `on_unreadable(path, reason)` (a warning if not given).
    """
    root = Path(root)
    warn = on_warning or (lambda message: None)
    cannot_list = on_unreadable or (lambda path, reason: warn(f"{path}: {reason}, not walked"))
    found = []
    other_files = 0
    seen = set()
    skip = exclude.resolve() if exclude is not None and exclude.exists() else None

    def unreadable(exc: OSError) -> None:
        cannot_list(Path(exc.filename), f"cannot list folder ({exc.strerror or exc})")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        real = Path(dirpath).resolve()
        if real in seen:
            warn(f"{dirpath}: already walked as {real} (symlink loop or second link), not walked again")
        if real in seen or real == skip:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        images = [Path(dirpath) / name for name in sorted(filenames) if is_image_name(Path(name))]
        other_files += sum(not is_temp_name(Path(name)) and not name.startswith(".") for name in filenames) - len(images)
        found += images
    if not found and other_files:
        warn(f"{root}: {other_files} files, none of them in an image format colorize reads")
    return found


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files under `folder` that no live writer holds (a killed run's); return them.

    Every writer holds a lock on its temporary file until the rename (atomic_path), so a file that
    can be locked here belongs to no running process, whichever run or folder it was written for.
    """
    removed = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            if is_temp_name(path) and _remove_if_unheld(path):
                removed.append(path)
    return removed


def _remove_if_unheld(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False  # gone already, or not ours to open
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live writer's
            except OSError:
                pass  # no locks on this file system: as before locks, a left temporary file is stale
        path.unlink(missing_ok=True)
        return True
    except OSError:
        return False  # not ours to remove
    finally:
        os.close(fd)


def temp_name(name: str, tag: str, name_max: int = 255) -> str:
    """`.NAME.TAG.colorize-tmp`, with NAME cut (by bytes) so the whole stays within the file system's limit."""
    room = name_max - len(f"..{tag}{TEMP_SUFFIX}".encode())
    raw = os.fsencode(name)
    return f".{os.fsdecode(raw[:room]) if len(raw) > room else name}.{tag}{TEMP_SUFFIX}"


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new empty file beside `path` (umask's usual permissions) and an open descriptor holding its lock."""
    name_max = _name_max(path.parent)
    while True:
        tmp = path.with_name(temp_name(path.name, secrets.token_hex(4), name_max))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        if _lock_held_file(fd, tmp):
            return tmp, fd
        os.close(fd)  # a sweep removed it between create and lock: make another


def _lock_held_file(fd: int, path: Path) -> bool:
    """Lock the new temporary file for as long as `fd` is open; False if `path` is no longer that file.

    On a file system without locks (some network mounts) the file stays unlocked, and a sweep there
    cannot tell it from a killed run's."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes, or the process dies
    except OSError:
        return True
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


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
    tmp, held = _create_temp(path)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        finally:
            os.close(held)


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
