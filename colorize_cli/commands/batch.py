"""`colorize batch`: options in, `batch.colorize_batch` called, its rows shown on the terminal."""

import io
import json
import os
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.batch import DEFAULT_THREADS, BatchError, BatchSettings, colorize_batch
from colorize_cli.commands.common import (ArchOption, BatchSizeOption, Device, DeviceOption, Mode, ModeOption,
                                          Precision, PrecisionOption, RenderSizeOption, StrengthOption,
                                          WeightsOption, fail, renamed)
from colorize_cli.decode import DEFAULT_MAX_PIXELS
from colorize_cli.errors import ExitCode
from colorize_cli.lock import Locked
from colorize_cli.predictor import NETWORK_SIDE
from colorize_cli.report import json_record


class Backend(str, Enum):
    local = "local"
    dask = "dask"


class OutputFormat(str, Enum):
    keep = "keep"
    jpg = "jpg"
    png = "png"


PathsArgument = Annotated[list[Path], typer.Argument(
    help="INPUT... OUTPUT: image files or folders (walked recursively), then the output folder.",
    show_default=False, readable=False)]  # an unreadable INPUT fails alone, in the report
ThreadsOption = Annotated[int, typer.Option(
    help="Threads decoding and encoding while the network runs; on CPU in resize mode also how many network "
         "calls run at once (at most one per torch thread), sharing torch's threads.", min=1)]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="keep the input's format, or write jpg / png.")]
OverwriteOption = Annotated[bool, typer.Option(help="Redo outputs that exist (default: skip them, so a rerun resumes).")]
FilesFromOption = Annotated[Optional[str], typer.Option(help="Read input paths from FILE (- for stdin), one per line, "
                                                        "or NUL-separated with -0.")]
NullOption = Annotated[bool, typer.Option("-0", "--null", help="--files-from paths are NUL-separated (find -print0).")]
MaxPixelsOption = Annotated[int, typer.Option(help="Reject images with more pixels than this (decompression bombs); "
                                              "0: no limit.", min=0)]
WaitOption = Annotated[bool, typer.Option(help="Wait for another run on the same OUTPUT instead of exiting with code 3.")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON line per file on stdout, nothing else there.")]
GalleryOption = Annotated[bool, typer.Option("--gallery/--no-gallery", help="Write OUTPUT/index.html, each input "
                                             "beside its output, with thumbnails in OUTPUT/.thumbs.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary; errors still go to stderr.")]
BackendOption = Annotated[Backend, typer.Option(help="local: this machine; dask: chunks of files on the workers of a "
                                                "Dask cluster (needs the dask extra).")]
SchedulerOption = Annotated[Optional[str], typer.Option(
    help="--backend dask: a running scheduler, e.g. tcp://host:8786; its workers must see INPUT, OUTPUT and --weights "
         "at the same paths. Default: start a local cluster.", show_default=False)]
DaskProcessesOption = Annotated[Optional[int], typer.Option(
    help="--backend dask without --scheduler: worker processes of the local cluster (default 2).", min=1,
    show_default=False)]
ChunkSizeOption = Annotated[Optional[int], typer.Option(help="--backend dask: files per task (default 16).", min=1,
                                                        show_default=False)]
JobsOption = Annotated[Optional[int], typer.Option("--jobs", min=1, hidden=True)]  # before --threads
DaskWorkersOption = Annotated[Optional[int], typer.Option("--dask-workers", min=1, hidden=True)]  # before --dask-processes


def batch(paths: PathsArgument, mode: ModeOption = Mode.resize, arch: ArchOption = None,
          weights: WeightsOption = None, device: DeviceOption = Device.auto,
          precision: PrecisionOption = Precision.auto, render_size: RenderSizeOption = NETWORK_SIDE,
          strength: StrengthOption = 1.0, batch_size: BatchSizeOption = None, threads: ThreadsOption = DEFAULT_THREADS,
          output_format: FormatOption = OutputFormat.keep, overwrite: OverwriteOption = False,
          files_from: FilesFromOption = None, null: NullOption = False, max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
          wait: WaitOption = False, json_lines: JsonOption = False, gallery: GalleryOption = True,
          quiet: QuietOption = False, backend: BackendOption = Backend.local, scheduler: SchedulerOption = None,
          dask_processes: DaskProcessesOption = None, chunk_size: ChunkSizeOption = None,
          jobs: JobsOption = None, dask_workers: DaskWorkersOption = None):
    """Colourise images: INPUT... OUTPUT. Writes the images at their original size, report.csv and report.json.

    Inputs are only read. Outputs go to a temporary file and are renamed: a killed run leaves none half-written.
    A rerun skips finished outputs. OUTPUT/.colorize.lock keeps two runs off the same OUTPUT.

    With --backend dask the files go to a Dask cluster in chunks; each worker loads the network once.

    Exit codes: 0 all done, 1 some files failed (or stdout failed), 2 usage error (options, OUTPUT is a
    file, the input folder or not writable, weights, dask cluster), 3 OUTPUT locked. An input given twice is
    one job.
    """
    terminal = BatchTerminal(quiet, json_lines)
    settings = BatchSettings(
        paths[:-1] + listed_inputs(files_from, null), paths[-1], arch, weights, mode.value, device.value,
        precision.value, render_size, strength, batch_size, renamed("--jobs", "--threads", jobs, threads),
        output_format.value, overwrite, max_pixels, wait, gallery, backend.value, scheduler,
        renamed("--dask-workers", "--dask-processes", dask_workers, dask_processes), chunk_size, quiet)
    try:
        outcome = colorize_batch(settings, terminal.on_row, terminal.say, terminal.progress)
    except BatchError as exc:
        fail(str(exc), exc.code)
    except Locked as exc:
        fail(str(exc), ExitCode.LOCKED)
    terminal.say(outcome.sentence())
    if terminal.stdout_trouble:
        fail(f"stdout: {terminal.stdout_trouble}; JSON lines stopped there (report.csv and report.json have every "
             "row)", ExitCode.FAILED)
    raise typer.Exit(ExitCode.FAILED if outcome.report.count("failed") else ExitCode.OK)


def listed_inputs(source: str | None, nul: bool) -> list[Path]:
    """--files-from: paths from a file (or - for stdin), one per line or NUL-separated; names need not be UTF-8."""
    if not source:
        return []
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        fail(f"--files-from {source}: {exc.strerror or exc}", ExitCode.USAGE)
    parts = data.split(b"\0") if nul else data.splitlines()
    return [Path(os.fsdecode(p)) for p in parts if p.strip()]


class BatchTerminal:
    """What a run shows: failures and warnings on stderr, JSON lines on stdout, a progress bar on a terminal."""

    def __init__(self, quiet: bool, json_lines: bool):
        from rich.console import Console

        self.err = Console(stderr=True, highlight=False)
        self.quiet, self.json_lines = quiet, json_lines
        self.bar = self.task = None
        self.stdout_trouble = None  # why JSON lines stopped, if stdout failed (a closed pipe, a full disk)

    def say(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False, soft_wrap=True)

    def on_row(self, row) -> None:
        if row.status == "failed":
            self.err.print(f"colorize: {row.input}: {row.error}", markup=False, soft_wrap=True)
        elif row.notes and row.status == "ok":
            self.say(f"warning: {row.input}: {row.notes}")
        if self.json_lines and not self.stdout_trouble:
            try:
                typer.echo(json.dumps(json_record(row)))
                sys.stdout.flush()
            except OSError as exc:
                self.stdout_trouble = exc.strerror or str(exc)
                silence_stdout()
        if self.bar is not None:
            self.bar.advance(self.task)

    @contextmanager
    def progress(self, total: int):
        """A progress bar over the run, on a terminal only."""
        if self.quiet or self.json_lines or not sys.stderr.isatty():
            yield
            return
        from rich.progress import Progress

        with Progress(console=self.err, transient=True) as self.bar:
            self.task = self.bar.add_task("colourising", total=total)
            yield
        self.bar = None


def silence_stdout() -> None:
    """After stdout fails, send what is left for it to /dev/null, so Python's exit flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (tests): nothing to flush there
        pass
