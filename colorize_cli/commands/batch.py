"""`colorize batch`."""

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.commands.common import fail

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
DEFAULT_JOBS = 2


class Mode(str, Enum):
    resize = "resize"
    tile = "tile"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class OutputFormat(str, Enum):
    keep = "keep"
    jpg = "jpg"
    png = "png"


def read_file_list(source: str, nul: bool) -> list[Path]:
    """Paths from a file (or - for stdin), one per line or NUL-separated; names need not be UTF-8."""
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    parts = data.split(b"\0") if nul else data.splitlines()
    return [Path(os.fsdecode(p)) for p in parts if p.strip()]


def batch(
    paths: Annotated[list[Path], typer.Argument(help="INPUT... OUTPUT: image files or folders (walked "
                                                "recursively), then the output folder.", show_default=False,
                                                readable=False)],  # an unreadable INPUT fails alone, in the report
    mode: Annotated[Mode, typer.Option(help="resize: fit the whole image to 400x400; tile: 400x400 tiles "
                                       "with blended overlaps, for images much larger than 400 px.")] = Mode.resize,
    arch: Annotated[Optional[int], typer.Option(help="Network 1 to 6 (default 6, or the one --weights is for).",
                                                min=1, max=6)] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Weights file instead of the shipped ones.")] = None,
    device: Annotated[Device, typer.Option(help="auto picks cuda, then mps, then cpu.")] = Device.auto,
    batch_size: Annotated[int, typer.Option(help="Images (or tiles) per network call.", min=1)] = 4,
    jobs: Annotated[int, typer.Option(help="Threads decoding and encoding while the network runs.",
                                      min=1)] = DEFAULT_JOBS,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="keep the input's format, "
                                                        "or write jpg / png.")] = OutputFormat.keep,
    overwrite: Annotated[bool, typer.Option(help="Redo outputs that exist (default: skip them, so a "
                                            "rerun resumes).")] = False,
    files_from: Annotated[Optional[str], typer.Option(help="Read input paths from FILE (- for stdin), "
                                                      "one per line, or NUL-separated with -0.")] = None,
    null: Annotated[bool, typer.Option("-0", "--null", help="--files-from paths are NUL-separated "
                                       "(find -print0).")] = False,
    max_pixels: Annotated[int, typer.Option(help="Reject images with more pixels than this "
                                            "(decompression bombs); 0: no limit.", min=0)] = 200_000_000,
    wait: Annotated[bool, typer.Option(help="Wait for another run on the same OUTPUT instead of exiting "
                                       "with code 3.")] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON line per file on stdout, nothing "
                                             "else there.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary; errors "
                                        "still go to stderr.")] = False,
):
    """Colourise images: INPUT... OUTPUT. Writes the images at their original size, report.csv and report.json.

    Inputs are only read. Outputs go to a temporary file and are renamed: a killed run leaves none half-written.
    A rerun skips finished outputs. OUTPUT/.colorize.lock keeps two runs off the same OUTPUT.

    Exit codes: 0 all done, 1 some files failed, 2 usage error (options, OUTPUT, weights), 3 OUTPUT locked.
    """
    from rich.console import Console

    from colorize_cli.batch import plan_jobs, run_batch
    from colorize_cli.files import remove_stale_temps
    from colorize_cli.lock import Locked, folder_lock
    from colorize_cli.predictor import Colorizer, pick_device
    from colorize_cli.registry import WeightsError, load_network
    from colorize_cli.report import ColourReport

    err = Console(stderr=True, highlight=False)
    inputs, output = paths[:-1], paths[-1]
    if files_from:
        try:
            inputs = inputs + read_file_list(files_from, null)
        except OSError as exc:
            fail(f"--files-from {files_from}: {exc.strerror or exc}", EXIT_USAGE)
    if not inputs:
        fail("give at least one INPUT and an OUTPUT folder (or --files-from)", EXIT_USAGE)
    if output.exists() and not output.is_dir():
        fail(f"OUTPUT {output} exists and is not a folder", EXIT_USAGE)
    try:
        torch_device = pick_device(device.value)
        net, arch = load_network(arch, weights, torch_device)
    except (ValueError, WeightsError) as exc:
        fail(str(exc), EXIT_USAGE)

    def say(message: str) -> None:
        if not quiet:
            err.print(message, markup=False, soft_wrap=True)

    colorizer = Colorizer(net, torch_device, mode.value, batch_size)
    report = ColourReport()
    show_bar = not (quiet or json_lines) and sys.stderr.isatty()
    bar = task = None

    def on_row(row):
        if row.status == "failed":
            err.print(f"colorize: {row.input}: {row.error}", markup=False, soft_wrap=True)
        elif row.notes and row.status == "ok":
            say(f"warning: {row.input}: {row.notes}")
        if json_lines:
            record = {"status": row.status, "input": row.input, "output": row.output, "mse": row.mse,
                      "error": row.error}
            typer.echo(json.dumps(record))
        if bar is not None:
            bar.advance(task)

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"OUTPUT {output}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        with folder_lock(output, wait, on_wait=say):
            started = time.perf_counter()
            stale = remove_stale_temps(output)
            if stale:
                say(f"removed {len(stale)} temporary files left in {output} by an interrupted run")
            planned, problems = plan_jobs(inputs, output, output_format.value, warn=lambda m: say(f"warning: {m}"))
            for row in problems:
                report.add(row)
                on_row(row)
            if show_bar:
                from rich.progress import Progress

                with Progress(console=err, transient=True) as bar:
                    task = bar.add_task("colourising", total=len(planned))
                    run_batch(planned, colorizer, report, overwrite, max_pixels, on_row, jobs)
            else:
                run_batch(planned, colorizer, report, overwrite, max_pixels, on_row, jobs)
            seconds = time.perf_counter() - started
            report.write(output, seconds)
    except Locked as exc:
        fail(str(exc), EXIT_LOCKED)
    except OSError as exc:  # the lock file or the report cannot be written
        fail(f"{exc.filename or output}: {exc.strerror or exc}", EXIT_FAILED)
    summary = report.summary(seconds)
    mean = f", mean MSE {summary['mean_mse']:.5f} ({summary['mean_psnr']:.2f} dB)" if summary["mean_mse"] is not None else ""
    say(f"{summary['images']} images: {summary['ok']} colourised, {summary['skipped']} skipped, "
        f"{summary['failed']} failed{mean}, {seconds:.1f}s, network {arch} on {torch_device}; "
        f"report in {output / 'report.csv'}")
    raise typer.Exit(EXIT_FAILED if summary["failed"] else EXIT_OK)
