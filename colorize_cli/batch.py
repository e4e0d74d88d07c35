"""`colorize batch` as a library: plan input -> output paths, colourise each file, report every one."""

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colorize_cli.colour import GREY_CHROMA, grey_to_l, join_l_ab, mean_chroma, rgb_to_lab
from colorize_cli.decode import DEFAULT_MAX_PIXELS, DecodedImage, DecodeError, decode
from colorize_cli.encode import encode, output_suffix
from colorize_cli.files import walk_images
from colorize_cli.predictor import Colorizer
from colorize_cli.report import ColourReport, ReportRow, psnr_of_mse, rgb_mse


@dataclass
class Job:
    """One input file and where its colourised output goes."""

    source: Path
    dest: Path


@dataclass
class Prepared:
    """A decoded input with its full-resolution L and, for colour inputs, its RGB as ground truth."""

    job: Job
    image: DecodedImage
    l: np.ndarray
    truth: np.ndarray | None
    started: float


def plan_jobs(inputs: Sequence[Path], output: Path, fmt: str = "keep",
              warn: Callable[[str], None] = lambda m: None) -> tuple[list[Job], list[ReportRow]]:
    """Files and walked folders -> jobs mirroring their relative paths under `output`; bad inputs as rows."""
    output = Path(output)
    jobs, problems, taken = [], [], set()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            pairs = [(f, f.relative_to(item)) for f in walk_images(item, exclude=output, on_warning=warn)]
        elif item.exists() or item.is_symlink():
            pairs = [(item, mirror_name(item))]
        else:
            problems.append(ReportRow(str(item), status="failed", error="file not found"))
            continue
        for source, rel in pairs:
            dest = output / rel.with_suffix(output_suffix(source, fmt))
            if dest in taken:
                problems.append(ReportRow(str(source), str(dest), "failed", error="another input has the same output path"))
                continue
            taken.add(dest)
            jobs.append(Job(source, dest))
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
    """Decode and convert: the L the network sees (full resolution) and the colour truth, if any."""
    started = time.perf_counter()
    image = decode(job.source, max_pixels)
    if image.grey is not None:
        return Prepared(job, image, grey_to_l(image.grey), None, started)
    lab = rgb_to_lab(image.rgb)
    truth = image.rgb if mean_chroma(lab) >= GREY_CHROMA else None
    return Prepared(job, image, np.ascontiguousarray(lab[..., 0]), truth, started)


def finish(item: Prepared, ab: np.ndarray, mode: str) -> ReportRow:
    """Join predicted a, b with the original L, write the output, measure against the truth."""
    image = item.image
    rgb = join_l_ab(item.l, ab)
    encode(item.job.dest, rgb, image.alpha, image.bit_depth, image.exif, image.icc)
    width, height = image.size
    row = ReportRow(str(item.job.source), str(item.job.dest), "ok", width, height, mode,
                    notes="; ".join(image.notes) or None, ground_truth=item.truth is not None)
    if item.truth is not None:
        row.mse = rgb_mse(rgb, item.truth)
        row.psnr = psnr_of_mse(row.mse)
    row.seconds = round(time.perf_counter() - item.started, 4)
    return row


def run_batch(jobs: Iterable[Job], colorizer: Colorizer, report: ColourReport, overwrite: bool = False,
              max_pixels: int = DEFAULT_MAX_PIXELS, on_row: Callable[[ReportRow], None] = lambda r: None) -> None:
    """Colourise every job, `colorizer.batch_size` images per network call; every job ends as a report row."""
    pending: list[Prepared] = []

    def flush():
        if not pending:
            return
        try:
            abs_ = colorizer.predict_ab([p.l for p in pending])
        except Exception as exc:  # e.g. out of memory: fail these images, go on with the rest
            abs_ = [exc] * len(pending)
        for item, ab in zip(pending, abs_):
            try:
                if isinstance(ab, Exception):
                    raise ab
                row = finish(item, ab, colorizer.mode)
            except Exception as exc:
                row = ReportRow(str(item.job.source), str(item.job.dest), "failed", error=describe(exc))
            report.add(row)
            on_row(row)
        pending.clear()

    for job in jobs:
        if job.dest.exists() and not overwrite:
            row = ReportRow(str(job.source), str(job.dest), "skipped", notes="output exists (use --overwrite)")
        else:
            try:
                pending.append(prepare(job, max_pixels))
                if len(pending) >= colorizer.batch_size:
                    flush()
                continue
            except Exception as exc:
                row = ReportRow(str(job.source), str(job.dest), "failed", error=describe(exc))
        report.add(row)
        on_row(row)
    flush()


def describe(exc: Exception) -> str:
    """One line saying why a file failed."""
    if isinstance(exc, DecodeError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
