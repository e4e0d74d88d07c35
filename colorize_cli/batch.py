"""`colorize batch` as a library: plan input -> output paths, colourise each file, report every one."""

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colorize_cli.color import has_color
from colorize_cli.decode import DEFAULT_MAX_PIXELS, DecodedImage, DecodeError, decode
from colorize_cli.encode import encode, output_bits, output_suffix
from colorize_cli.files import walk_images
from colorize_cli.gallery import thumbnail_paths, write_thumbnail
from colorize_cli.heap import image_done
from colorize_cli.predictor import Colorizer, torch_threads
from colorize_cli.metrics import pixels_mse, psnr_of_mse
from colorize_cli.report import ColorReport, ReportRow


@dataclass
class Job:
    """One input file and where its colourised output goes."""

    source: Path
    dest: Path
    thumbnails: tuple[Path, Path] | None = None  # the gallery's input and output thumbnails, if it has one


@dataclass
class Prepared:
    """A decoded input with its full-resolution L, and whether its own colours can serve as ground truth."""

    job: Job
    image: DecodedImage
    l: np.ndarray
    has_color: bool
    started: float


def plan_jobs(inputs: Sequence[Path], output: Path, fmt: str = "keep",
              warn: Callable[[str], None] = lambda m: None, gallery: bool = False) -> tuple[list[Job], list[ReportRow]]:
    """Files and walked folders -> jobs mirroring their relative paths under `output`; bad inputs as rows."""
    output = Path(output)
    jobs, problems, taken, planned = [], [], set(), set()

    def cannot_list(folder: Path, reason: str) -> None:
        problems.append(ReportRow(str(folder), status="failed", error=reason))

    for item in inputs:
        item = Path(item)
        if item.is_dir():
            pairs = [(f, f.relative_to(item)) for f in walk_images(item, output, warn, cannot_list)]
        elif item.exists() or item.is_symlink():
            pairs = [(item, mirror_name(item))]
        else:
            problems.append(ReportRow(str(item), status="failed", error="file not found"))
            continue
        for source, rel in pairs:
            dest = output / rel.with_suffix(output_suffix(source, fmt))
            if (os.path.realpath(source), dest) in planned:
                continue  # the same file given twice for the same output is one job
            planned.add((os.path.realpath(source), dest))
            if dest in taken:
                problems.append(ReportRow(str(source), str(dest), "failed", error="another input has the same output path"))
                continue
            taken.add(dest)
            jobs.append(Job(source, dest, thumbnail_paths(output, dest) if gallery else None))
    return keep_inputs_safe(jobs, problems)


def keep_inputs_safe(jobs: list[Job], problems: list[ReportRow]) -> tuple[list[Job], list[ReportRow]]:
    """Turn every job whose output path is one of the inputs into a failed row: inputs are never written."""
    sources = {os.path.realpath(job.source) for job in jobs}
    safe = []
    for job in jobs:
        if os.path.realpath(job.dest) in sources:
            problems.append(ReportRow(str(job.source), str(job.dest), "failed",
                                      error="output path is an input file; choose another OUTPUT"))
        else:
            safe.append(job)
    return safe, problems


def mirror_name(path: Path) -> Path:
    """Relative path under OUTPUT for a file named directly: its relative path if it stays below here."""
    if not path.is_absolute() and ".." not in path.parts:
        return Path(*[p for p in path.parts if p != "."])
    return Path(path.name)


def prepare(job: Job, max_pixels: int) -> Prepared:
    """Decode and convert: the L the network sees (full resolution) and whether the input has colour."""
    started = time.perf_counter()
    image = decode(job.source, max_pixels)
    return Prepared(job, image, Colorizer.preprocess(image.pixels), has_color(image.pixels), started)


def finish(item: Prepared, ab: np.ndarray, colorizer: Colorizer) -> ReportRow:
    """Join predicted a, b with the original L, write the output, measure against the input's colours."""
    image, dest = item.image, item.job.dest
    pixels = colorizer.postprocess(item.l, ab, output_bits(dest, image.bit_depth))
    item.l = None  # the full-size L is not needed again: freed before the encoder's own copy is made
    left_out = encode(dest, pixels, image.alpha, image.exif, image.icc)
    if item.job.thumbnails:
        try:
            write_thumbnail(item.job.thumbnails[0], image.pixels)
            write_thumbnail(item.job.thumbnails[1], pixels)
        except OSError as exc:  # the output is written: a missing thumbnail is a note, not a failure
            left_out.append(f"no gallery thumbnail ({exc.strerror or exc})")
    width, height = image.size
    row = ReportRow(str(item.job.source), str(dest), "ok", width, height, colorizer.mode,
                    render_size=colorizer.render_size, strength=colorizer.strength,
                    notes="; ".join(image.notes + left_out) or None, ground_truth=item.has_color)
    if item.has_color:
        row.mse = pixels_mse(pixels, image.pixels)
        row.psnr = psnr_of_mse(row.mse)
    row.seconds = round(time.perf_counter() - item.started, 4)
    return row


def jobs_to_do(jobs: Iterable[Job], overwrite: bool, emit: Callable[[ReportRow], None]) -> list[Job]:
    """The jobs still to do; each one whose output exists (unless `overwrite`) is emitted as skipped."""
    todo = []
    for job in jobs:
        if job.dest.exists() and not overwrite:
            emit(skipped_row(job))
        else:
            todo.append(job)
    return todo


def run_batch(jobs: Iterable[Job], colorizer: Colorizer, report: ColorReport, overwrite: bool = False,
              max_pixels: int = DEFAULT_MAX_PIXELS, on_row: Callable[[ReportRow], None] = lambda r: None,
              workers: int = 1) -> None:
    """Colourise every job, `colorizer.batch_size` images per network call; every job ends as a report row.

    Decoding and encoding run in `workers` threads while the network works on the images before them;
    on CPU the network calls run in lanes that share torch's threads (Colorizer.network_lanes). At most
    a few batches are in flight at once, and the heap's free pages go back to the OS now and then
    (heap.image_done), so memory does not grow with the number of images.
    """
    def emit(row: ReportRow) -> None:
        report.add(row)
        on_row(row)

    todo = jobs_to_do(jobs, overwrite, emit)
    per_call = colorizer.batch_size if colorizer.mode == "resize" else 1  # tile mode batches tiles instead
    lanes, threads_per_lane = colorizer.network_lanes(workers)
    in_flight = per_call * lanes + workers
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="colorize") as pool, \
            ThreadPoolExecutor(lanes, thread_name_prefix="colorize-network") as network, \
            torch_threads(threads_per_lane):
        decoding = deque((job, pool.submit(prepare, job, max_pixels)) for job in todo[:in_flight])
        upcoming = iter(todo[in_flight:])
        predicting: deque = deque()
        writing: deque = deque()
        batch: list[Prepared] = []

        def hand_over(limit: int) -> None:
            while predicting and (len(predicting) > limit or predicting[0][1].done()):
                items, future = predicting.popleft()
                for item, ab in zip(items, future.result()):
                    work = failed_future(ab) if isinstance(ab, Exception) else pool.submit(finish, item, ab, colorizer)
                    writing.append((item.job, work))

        def drain(limit: int) -> None:
            while writing and (len(writing) > limit or writing[0][1].done()):
                job, future = writing.popleft()
                emit(outcome(job, future))
                image_done()

        while decoding:
            job, future = decoding.popleft()
            following = next(upcoming, None)
            if following is not None:
                decoding.append((following, pool.submit(prepare, following, max_pixels)))
            try:
                batch.append(future.result())
            except Exception as exc:
                emit(failed_row(job, exc))
            if batch and (len(batch) == per_call or not decoding):
                predicting.append((batch, network.submit(predict_or_fail, colorizer, batch)))
                batch = []
            hand_over(lanes)
            drain(in_flight)
        hand_over(0)
        drain(0)


def skipped_row(job: Job) -> ReportRow:
    """The row of a job whose output exists and is kept (no --overwrite)."""
    return ReportRow(str(job.source), str(job.dest), "skipped", notes="output exists (use --overwrite)")


def colorize_folder(folder: Path, output: Path, colorizer: Colorizer, workers: int = 1) -> ColorReport:
    """`colorize batch FOLDER OUTPUT --overwrite` without the command line: every image redone, report written."""
    started = time.perf_counter()
    jobs, problems = plan_jobs([folder], output)
    report = ColorReport()
    for row in problems:
        report.add(row)
    run_batch(jobs, colorizer, report, overwrite=True, workers=workers)
    report.write(output, time.perf_counter() - started)
    return report


def predict_or_fail(colorizer: Colorizer, batch: list[Prepared]) -> list:
    """a, b for each image of the batch, or the exception for all of them (e.g. out of memory)."""
    try:
        return colorizer.predict_ab([item.l for item in batch], banded=True)
    except Exception as exc:
        return [exc] * len(batch)


def failed_future(exc: Exception) -> Future:
    future = Future()
    future.set_exception(exc)
    return future


def outcome(job: Job, future: Future) -> ReportRow:
    try:
        return future.result()
    except Exception as exc:
        return failed_row(job, exc)


def failed_row(job: Job, exc: Exception) -> ReportRow:
    return ReportRow(str(job.source), str(job.dest), "failed", error=describe(exc))


def describe(exc: Exception) -> str:
    """One line saying why a file failed."""
    if isinstance(exc, DecodeError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
