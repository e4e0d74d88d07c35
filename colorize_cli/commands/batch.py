"""`colorize batch`."""

import io
import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.errors import ExitCode
from colorize_cli.commands.common import PRECISION_HELP, RENDER_SIZE_HELP, STRENGTH_HELP, Device, Mode, Precision, fail

DEFAULT_JOBS = 2


class Backend(str, Enum):
    local = "local"
    dask = "dask"


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
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision.auto,
    render_size: Annotated[int, typer.Option(help=RENDER_SIZE_HELP)] = 400,
    strength: Annotated[float, typer.Option(help=STRENGTH_HELP)] = 1.0,
    batch_size: Annotated[Optional[int], typer.Option(help="Images (or tiles) per network call (default: 1 on CPU, "
                                                      "where it is fastest; 4 on a GPU).", min=1,
                                                      show_default=False)] = None,
    jobs: Annotated[int, typer.Option(help="Threads decoding and encoding while the network runs; on CPU in "
                                      "resize mode also how many network calls run at once (at most one "
                                      "per torch thread), sharing torch's threads.",
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
    gallery: Annotated[bool, typer.Option("--gallery/--no-gallery", help="Write OUTPUT/index.html, each "
                                          "input beside its output, with thumbnails in OUTPUT/.thumbs.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary; errors "
                                        "still go to stderr.")] = False,
    backend: Annotated[Backend, typer.Option(help="local: this machine; dask: chunks of files on the workers "
                                             "of a Dask cluster (needs the dask extra).")] = Backend.local,
    scheduler: Annotated[Optional[str], typer.Option(help="--backend dask: a running scheduler, e.g. "
                                                     "tcp://host:8786; its workers must see INPUT, OUTPUT and "
                                                     "--weights at the same paths. Default: start a local "
                                                     "cluster.", show_default=False)] = None,
    dask_workers: Annotated[Optional[int], typer.Option(help="--backend dask without --scheduler: worker "
                                                        "processes of the local cluster (default 2).",
                                                        min=1, show_default=False)] = None,
    chunk_size: Annotated[Optional[int], typer.Option(help="--backend dask: files per task (default 16).",
                                                      min=1, show_default=False)] = None,
):
    """Colourise images: INPUT... OUTPUT. Writes the images at their original size, report.csv and report.json.

    Inputs are only read. Outputs go to a temporary file and are renamed: a killed run leaves none half-written.
    A rerun skips finished outputs. OUTPUT/.colorize.lock keeps two runs off the same OUTPUT.

    With --backend dask the files go to a Dask cluster in chunks; each worker loads the network once.

    Exit codes: 0 all done, 1 some files failed (or stdout failed), 2 usage error (options, OUTPUT is a
    file, the input folder or not writable, weights, dask cluster), 3 OUTPUT locked. An input given twice is
    one job.
    """
    from rich.console import Console

    from colorize_cli.batch import plan_jobs, run_batch
    from colorize_cli.files import remove_stale_temps
    from colorize_cli.lock import Locked, folder_lock
    from colorize_cli.gallery import write_gallery
    from colorize_cli.predictor import Colorizer, check_render_settings, pick_device, pick_precision
    from colorize_cli.registry import WeightsError, load_network
    from colorize_cli.report import ColorReport

    err = Console(stderr=True, highlight=False)
    inputs, output = paths[:-1], paths[-1]
    if files_from:
        try:
            inputs = inputs + read_file_list(files_from, null)
        except OSError as exc:
            fail(f"--files-from {files_from}: {exc.strerror or exc}", ExitCode.USAGE)
    if not inputs:
        fail("give at least one INPUT and an OUTPUT folder (or --files-from)", ExitCode.USAGE)
    if output.exists() and not output.is_dir():
        fail(f"OUTPUT {output} exists and is not a folder", ExitCode.USAGE)
    for item in inputs:
        if item.is_dir() and os.path.realpath(item) == os.path.realpath(output):
            fail(f"OUTPUT {output} is the input folder {item}: choose another OUTPUT (a folder inside it works)",
                 ExitCode.USAGE)
    dask_options = {"--scheduler": scheduler, "--dask-workers": dask_workers, "--chunk-size": chunk_size}
    if backend is Backend.local:
        given = [name for name, value in dask_options.items() if value is not None]
        if given:
            fail(f"{given[0]} needs --backend dask", ExitCode.USAGE)
    else:
        from colorize_cli import scale_out

        if scheduler and dask_workers is not None:
            fail("--dask-workers sizes the local cluster; a --scheduler cluster has its own workers", ExitCode.USAGE)
        try:
            scale_out.require_dask()
            if scheduler:
                scale_out.check_scheduler(scheduler)
        except (scale_out.DaskMissing, scale_out.ClusterUnavailable) as exc:
            fail(str(exc), ExitCode.USAGE)
    try:  # with dask the network is loaded here only to check the weights; each worker picks its own device
        torch_device = pick_device(device.value if backend is Backend.local else "cpu")
        net, arch = load_network(arch, weights, torch_device)
        check_render_settings(render_size, strength)
        if backend is Backend.local:
            colorizer = Colorizer(net, torch_device, mode.value, batch_size, precision=precision.value,
                                  render_size=render_size, strength=strength)
        elif device is Device.cpu:  # else each worker checks --precision against the device it picks
            pick_precision(precision.value, torch_device)
    except (ValueError, WeightsError) as exc:
        fail(str(exc), ExitCode.USAGE)

    def say(message: str) -> None:
        if not quiet:
            err.print(message, markup=False, soft_wrap=True)

    if backend is Backend.local:
        runs_on = str(torch_device) if colorizer.precision == "float32" else f"{torch_device} in {colorizer.precision}"

        def process(planned):
            run_batch(planned, colorizer, report, overwrite, max_pixels, on_row, jobs)
    else:
        spec = scale_out.NetworkSpec.of(weights, arch, mode.value, batch_size, device.value, precision.value,
                                        render_size, strength)
        n_workers = dask_workers or scale_out.DEFAULT_DASK_WORKERS
        runs_on = f"dask {scheduler}" if scheduler else f"a local dask cluster of {n_workers} workers"
        del net  # the workers load their own

        def process(planned):
            try:
                scale_out.run_on_dask(planned, spec, report, overwrite, max_pixels, on_row, jobs, scheduler,
                                      n_workers, chunk_size or scale_out.DEFAULT_CHUNK_SIZE, quiet)
            except scale_out.ClusterUnavailable as exc:
                fail(str(exc), ExitCode.USAGE)
            remove_stale_temps(output)  # a worker killed mid-write leaves its temporary file; dask redid the chunk
    report = ColorReport(output)
    show_bar = not (quiet or json_lines) and sys.stderr.isatty()
    bar = task = None
    stdout_trouble = []  # why JSON lines stopped, if stdout failed (a closed pipe, a full disk)

    def on_row(row):
        if row.status == "failed":
            err.print(f"colorize: {row.input}: {row.error}", markup=False, soft_wrap=True)
        elif row.notes and row.status == "ok":
            say(f"warning: {row.input}: {row.notes}")
        if json_lines and not stdout_trouble:
            record = {"status": row.status, "input": row.input, "output": row.output, "mse": row.mse,
                      "render_size": row.render_size, "strength": row.strength, "error": row.error}
            try:
                typer.echo(json.dumps(record))
                sys.stdout.flush()
            except OSError as exc:
                stdout_trouble.append(exc.strerror or str(exc))
                silence_stdout()
        if bar is not None:
            bar.advance(task)

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"OUTPUT {output}: {exc.strerror or exc}", ExitCode.USAGE)
    locked = False
    try:
        with folder_lock(output, wait, on_wait=say):
            locked = True
            started = time.perf_counter()
            report.carry_over_settings()
            stale = remove_stale_temps(output)
            if stale:
                say(f"removed {len(stale)} temporary files left in {output} by an interrupted run")
            planned, problems = plan_jobs(inputs, output, output_format.value, warn=lambda m: say(f"warning: {m}"),
                                          gallery=gallery)
            for row in problems:
                report.add(row)
                on_row(row)
            if show_bar:
                from rich.progress import Progress

                with Progress(console=err, transient=True) as bar:
                    task = bar.add_task("colourising", total=len(planned))
                    process(planned)
            else:
                process(planned)
            seconds = time.perf_counter() - started
            report.write(output, seconds)
            if gallery:
                write_gallery(output, report.rows, title=f"colorize: {output}")
    except Locked as exc:
        fail(str(exc), ExitCode.LOCKED)
    except OSError as exc:  # the lock file (OUTPUT cannot be written: usage) or the report cannot be written
        fail(f"{'' if locked else 'OUTPUT '}{exc.filename or output}: {exc.strerror or exc}",
             ExitCode.FAILED if locked else ExitCode.USAGE)
    summary = report.summary(seconds)
    mean = f", mean MSE {summary['mean_mse']:.5f} ({summary['mean_psnr']:.2f} dB)" if summary["mean_mse"] is not None else ""
    say(f"{summary['images']} images: {summary['ok']} colourised, {summary['skipped']} skipped, "
        f"{summary['failed']} failed{mean}, {seconds:.1f}s, network {arch} on {runs_on}; "
        f"report in {output / 'report.csv'}")
    if stdout_trouble:
        fail(f"stdout: {stdout_trouble[0]}; JSON lines stopped there (report.csv and report.json have every row)",
             ExitCode.FAILED)
    raise typer.Exit(ExitCode.FAILED if summary["failed"] else ExitCode.OK)


def silence_stdout() -> None:
    """After stdout fails, send what is left for it to /dev/null, so Python's exit flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (tests): nothing to flush there
        pass
