"""`colorize batch` as a library: plan input -> output paths, colourise each file, report every one.

`colorize_batch(BatchSettings(...))` is the whole command without its terminal: checks, lock, backend, report
and gallery. The backends (backends/local.py, backends/dask.py) run the per-file steps defined here."""

import os
import time
from concurrent.futures import Future
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager
from pathlib import Path

import numpy as np

from colorize_cli.color import has_color
from colorize_cli.decode import DEFAULT_MAX_PIXELS, DecodedImage, DecodeError, decode
from colorize_cli.encode import encode, output_bits, output_suffix
from colorize_cli.files import walk_images
from colorize_cli.gallery import thumbnail_paths, write_thumbnail
from colorize_cli.errors import CommandError, ExitCode
from colorize_cli.predictor import NETWORK_SIDE, Colorizer, check_render_settings, pick_device
from colorize_cli.process import configure_process
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


def skipped_row(job: Job) -> ReportRow:
    """The row of a job whose output exists and is kept (no --overwrite)."""
    return ReportRow(str(job.source), str(job.dest), "skipped", notes="output exists (use --overwrite)")


def colorize_folder(folder: Path, output: Path, colorizer: Colorizer, threads: int = 1) -> ColorReport:
    """`colorize batch FOLDER OUTPUT --overwrite` without the command line: every image redone, report written."""
    from colorize_cli.backends import local

    configure_process()
    started = time.perf_counter()
    jobs, problems = plan_jobs([folder], output)
    report = ColorReport()
    for row in problems:
        report.add(row)
    local.run_jobs(jobs, colorizer, report, overwrite=True, threads=threads)
    report.write(output, time.perf_counter() - started)
    return report


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


DEFAULT_THREADS = 2


class BatchError(CommandError):
    """The run cannot start or cannot finish its report."""


@dataclass
class BatchSettings:
    """Everything `colorize batch` is told, as plain values."""

    inputs: Sequence[Path]
    output: Path
    arch: int | None = None
    weights: Path | None = None
    mode: str = "resize"
    device: str = "auto"
    precision: str = "auto"
    render_size: int = NETWORK_SIDE
    strength: float = 1.0
    batch_size: int | None = None
    threads: int = DEFAULT_THREADS
    output_format: str = "keep"
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    wait: bool = False
    gallery: bool = True
    backend: str = "local"
    scheduler: str | None = None
    dask_processes: int | None = None
    chunk_size: int | None = None
    quiet: bool = False  # the dask cluster's warnings too


@dataclass
class BatchOutcome:
    report: ColorReport
    seconds: float
    arch: int
    runs_on: str  # the device, or the cluster

    def sentence(self) -> str:
        """The summary line the command prints."""
        summary = self.report.summary(self.seconds)
        mean = f", mean MSE {summary['mean_mse']:.5f} ({summary['mean_psnr']:.2f} dB)" \
            if summary["mean_mse"] is not None else ""
        return (f"{summary['images']} images: {summary['ok']} colourised, {summary['skipped']} skipped, "
                f"{summary['failed']} failed{mean}, {self.seconds:.1f}s, network {self.arch} on {self.runs_on}; "
                f"report in {self.report.folder / 'report.csv'}")


def check_paths(settings: BatchSettings) -> None:
    """Refuse a run without inputs, or with an OUTPUT that is a file or one of the input folders (BatchError)."""
    output = Path(settings.output)
    if not settings.inputs:
        raise BatchError("give at least one INPUT and an OUTPUT folder (or --files-from)")
    if output.exists() and not output.is_dir():
        raise BatchError(f"OUTPUT {output} exists and is not a folder")
    for item in settings.inputs:
        if Path(item).is_dir() and os.path.realpath(item) == os.path.realpath(output):
            raise BatchError(f"OUTPUT {output} is the input folder {item}: choose another OUTPUT (a folder "
                             "inside it works)")


def backend_runner(settings: BatchSettings, say: Callable[[str], None]):
    """(run: jobs, report, on_row -> None; network number; where it runs) for the chosen backend, the
    weights and settings checked first (raises BatchError)."""
    from colorize_cli.registry import WeightsError, load_network

    if settings.backend == "dask":
        from colorize_cli.backends import dask

        return dask.runner(settings, say)
    given = [name for name, value in (("--scheduler", settings.scheduler), ("--dask-processes",
             settings.dask_processes), ("--chunk-size", settings.chunk_size)) if value is not None]
    if given:
        raise BatchError(f"{given[0]} needs --backend dask")
    from colorize_cli.backends import local

    try:
        device = pick_device(settings.device)
        net, arch = load_network(settings.arch, settings.weights, device)
        colorizer = Colorizer(net, device, settings.mode, settings.batch_size, precision=settings.precision,
                              render_size=settings.render_size, strength=settings.strength)
    except (ValueError, WeightsError) as exc:
        raise BatchError(str(exc)) from None

    def run(jobs, report, on_row):
        local.run_jobs(jobs, colorizer, report, settings.overwrite, settings.max_pixels, on_row, settings.threads)

    runs_on = str(device) if colorizer.precision == "float32" else f"{device} in {colorizer.precision}"
    return run, arch, runs_on


def colorize_batch(settings: BatchSettings, on_row: Callable[[ReportRow], None] = lambda row: None,
                   say: Callable[[str], None] = lambda message: None,
                   progress: Callable[[int], ContextManager] = lambda total: nullcontext()) -> BatchOutcome:
    """The whole of `colorize batch`: every planned file ends as a report row (handed to `on_row` too), then
    report.csv, report.json and the gallery are written. `progress(total)` wraps the run (a progress bar).
    Raises BatchError (with its exit code) when the run cannot start or its report cannot be written,
    and lock.Locked when another run holds OUTPUT."""
    from colorize_cli.files import remove_stale_temps
    from colorize_cli.gallery import write_gallery
    from colorize_cli.lock import folder_lock

    configure_process()
    check_paths(settings)
    try:
        check_render_settings(settings.render_size, settings.strength)
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    run, arch, runs_on = backend_runner(settings, say)
    output = Path(settings.output)
    report = ColorReport(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"OUTPUT {output}: {exc.strerror or exc}") from None
    locked = False
    try:
        with folder_lock(output, settings.wait, on_wait=say):
            locked = True
            started = time.perf_counter()
            report.carry_over_settings()
            stale = remove_stale_temps(output)
            if stale:
                say(f"removed {len(stale)} temporary files left in {output} by an interrupted run")
            jobs, problems = plan_jobs(settings.inputs, output, settings.output_format,
                                       warn=lambda m: say(f"warning: {m}"), gallery=settings.gallery)
            for row in problems:
                report.add(row)
                on_row(row)
            with progress(len(jobs)):
                run(jobs, report, on_row)
            seconds = time.perf_counter() - started
            report.write(output, seconds)
            if settings.gallery:
                write_gallery(output, report.rows, title=f"colorize: {output}")
    except OSError as exc:  # OUTPUT cannot be written (usage), or its report or gallery cannot
        where = f"{'' if locked else 'OUTPUT '}{exc.filename or output}"
        raise BatchError(f"{where}: {exc.strerror or exc}", ExitCode.FAILED if locked else ExitCode.USAGE) from None
    return BatchOutcome(report, seconds, arch, runs_on)
