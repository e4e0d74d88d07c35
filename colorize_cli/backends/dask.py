"""The dask backend (`colorize batch --backend dask`): the per-image work of a local run, in chunks, on the workers of a Dask cluster.

The client plans and skips finished outputs; each chunk of jobs goes to a worker through joblib's dask
backend. A worker loads the network once and runs the local backend on its chunk, so decoding, the atomic writes,
skip-existing and the report rows are exactly those of a local run; the rows come back to the client.

Workers read the inputs and the weights file and write the outputs themselves, by absolute path: on a
remote cluster those paths must be the same on every worker (a shared filesystem), and colorize must be
installed there. dask itself is imported only here, and only when a run asks for it.
"""

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from colorize_cli.backends import local
from colorize_cli.batch import BatchError, BatchSettings, Job, describe, jobs_to_do
from colorize_cli.decode import DEFAULT_MAX_PIXELS
from colorize_cli.process import configure_process
from colorize_cli.files import remove_stale_temps
from colorize_cli.predictor import NETWORK_SIDE, Colorizer, pick_device, pick_precision
from colorize_cli.registry import WeightsError, load_network, sha256_of, shipped_weights
from colorize_cli.report import ColorReport, ReportRow

DASK_EXTRA = 'pip install "colorize[dask]"'
DEFAULT_CHUNK_SIZE = 16
DEFAULT_DASK_PROCESSES = 2


class DaskMissing(Exception):
    """dask.distributed is not installed."""


class ClusterUnavailable(Exception):
    """The scheduler cannot be reached, or the local cluster cannot be started."""


def require_dask() -> None:
    """Raise DaskMissing, naming the extra to install, unless dask.distributed imports."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "dask.distributed"
        raise DaskMissing(f"--backend dask needs the dask extra ({missing} is not installed): {DASK_EXTRA}") from None


def check_scheduler(address: str) -> None:
    """Raise ClusterUnavailable for an address no Client can use (a failed Client hangs a minute on exit)."""
    from distributed.comm.addressing import get_address_host_port, parse_address
    from distributed.comm.registry import backends

    try:
        scheme, _ = parse_address(address)
        if scheme not in backends or scheme == "inproc":
            raise ValueError(f"unknown scheme {scheme}://")
        if scheme in ("tcp", "tls", "ws", "wss"):
            get_address_host_port(address)
    except ValueError as exc:
        raise ClusterUnavailable(f"--scheduler {address}: {exc}; give an address like tcp://host:8786") from None


@dataclass(frozen=True)
class NetworkSpec:
    """What a worker needs to build the client's Colorizer; hashable, so each worker caches the result."""

    weights: str | None  # absolute path as the workers see it; None: the weights shipped with the worker's colorize
    sha256: str  # of the file the client checked, so a worker never colourises with other weights
    arch: int
    mode: str
    batch_size: int | None  # None: the worker's device default
    device: str  # auto, cpu, cuda or mps, picked on each worker
    precision: str = "auto"  # resolved on each worker for its device
    render_size: int = NETWORK_SIDE
    strength: float = 1.0

    @classmethod
    def of(cls, weights: Path | None, arch: int, mode: str, batch_size: int | None, device: str,
           precision: str = "auto", render_size: int = NETWORK_SIDE, strength: float = 1.0) -> "NetworkSpec":
        """The client side: `weights` (or the shipped file for `arch`), already loaded once by the client."""
        path = shipped_weights(arch) if weights is None else Path(weights)
        return cls(None if weights is None else os.path.abspath(path), sha256_of(path), arch, mode, batch_size, device,
                   precision, render_size, strength)


@lru_cache(maxsize=2)
def worker_colorizer(spec: NetworkSpec) -> Colorizer:
    """The network of `spec`, loaded once per worker process (and per spec: a long-lived cluster serves many runs)."""
    path = shipped_weights(spec.arch) if spec.weights is None else Path(spec.weights)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found; the workers must see it at the same path")
    if sha256_of(path) != spec.sha256:
        raise WeightsError(f"{path}: not the weights file the client checked (sha256 differs)")
    device = pick_device(spec.device)
    net, _ = load_network(spec.arch, path, device)
    configure_process()
    return Colorizer(net, device, spec.mode, spec.batch_size, precision=spec.precision,
                     render_size=spec.render_size, strength=spec.strength)


def colorize_chunk(jobs: Sequence[Job], spec: NetworkSpec, overwrite: bool = False,
                   max_pixels: int = DEFAULT_MAX_PIXELS, threads: int = 1) -> list[ReportRow]:
    """On a worker: colourise one chunk with the local pipeline; every job comes back as a row."""
    try:
        colorizer = worker_colorizer(spec)
    except Exception as exc:  # e.g. weights not visible on this worker: its chunks fail, the others go on
        error = f"{describe(exc)} (on dask worker {socket.gethostname()})"
        return [ReportRow(str(job.source), str(job.dest), "failed", error=error) for job in jobs]
    report = ColorReport()
    local.run_jobs(jobs, colorizer, report, overwrite, max_pixels, threads=threads)
    return report.rows


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = DEFAULT_DASK_PROCESSES, quiet: bool = False):
    """A Client of the scheduler at `scheduler`, or of a LocalCluster of `n_workers` single-threaded processes
    started for this run and closed after it."""
    from distributed import Client, LocalCluster

    try:
        if scheduler:
            client = Client(scheduler, set_as_default=False)
            cluster = None
        else:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None,
                                   silence_logs=logging.ERROR if quiet else logging.WARNING)
            client = Client(cluster, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        where = f"the dask scheduler {scheduler}" if scheduler else "a local dask cluster"
        raise ClusterUnavailable(f"cannot reach {where}: {describe(exc)}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def chunked(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def run_jobs(jobs: Sequence[Job], spec: NetworkSpec, report: ColorReport, overwrite: bool = False,
             max_pixels: int = DEFAULT_MAX_PIXELS, on_row: Callable[[ReportRow], None] = lambda r: None,
             threads: int = 1, scheduler: str | None = None, n_workers: int = DEFAULT_DASK_PROCESSES,
             chunk_size: int = DEFAULT_CHUNK_SIZE, quiet: bool = False) -> None:
    """The local backend on a Dask cluster: finished outputs are skipped here, the rest goes out in chunks of
    `chunk_size`; every job ends as a report row, in chunk order.

    If the cluster fails part-way (a worker killed too often, the scheduler lost), the jobs whose chunks did
    not come back become failed rows; outputs are written atomically, so a rerun finishes them.
    Raises ClusterUnavailable if there is no cluster to start with.
    """
    def emit(row: ReportRow) -> None:
        report.add(row)
        on_row(row)

    todo = jobs_to_do(jobs, overwrite, emit)
    if not todo:
        return
    # workers get absolute paths; the rows keep the names the user gave, as in a local run
    given, absolute = {}, []
    for job in todo:
        source, dest = os.path.abspath(job.source), os.path.abspath(job.dest)
        given[source], given[dest] = str(job.source), str(job.dest)
        thumbnails = job.thumbnails and tuple(Path(os.path.abspath(t)) for t in job.thumbnails)
        absolute.append(Job(Path(source), Path(dest), thumbnails))
    chunks = chunked(absolute, chunk_size)
    with dask_client(scheduler, n_workers, quiet) as client, \
            closing(dispatch(client, chunks, spec, overwrite, max_pixels, threads)) as results:
        for returned in range(len(chunks)):
            try:
                rows = next(results)
            except Exception as exc:  # the cluster failed: what did not come back fails, a rerun completes it
                error = f"dask: {describe(exc)}; rerun to finish"
                for job in (job for chunk in chunks[returned:] for job in chunk):
                    emit(ReportRow(given[str(job.source)], given[str(job.dest)], "failed", error=error))
                return
            for row in rows:
                emit(replace(row, input=given.get(row.input, row.input), output=given.get(row.output, row.output)))


def dispatch(client, chunks: list[list[Job]], spec: NetworkSpec, overwrite: bool, max_pixels: int,
             threads: int) -> Iterator[list[ReportRow]]:
    """The rows of each chunk, in order, as the workers finish them; at most two chunks per worker core queued."""
    import joblib

    with joblib.parallel_config(backend="dask", client=client):
        parallel = joblib.Parallel(n_jobs=-1, batch_size=1, return_as="generator")
        yield from parallel(joblib.delayed(colorize_chunk)(chunk, spec, overwrite, max_pixels, threads)
                            for chunk in chunks)


def runner(settings: BatchSettings, say: Callable[[str], None]):
    """(run, network number, where it runs) for `colorize_batch`, the cluster options and the weights checked
    here first (raises BatchError). The network is loaded here only to check the weights: each worker
    loads its own and picks its own device."""
    if settings.scheduler and settings.dask_processes is not None:
        raise BatchError("--dask-processes sizes the local cluster; a --scheduler cluster has its own workers")
    try:
        require_dask()
        if settings.scheduler:
            check_scheduler(settings.scheduler)
        _, arch = load_network(settings.arch, settings.weights, "cpu")
        if settings.device == "cpu":  # else each worker checks --precision against the device it picks
            pick_precision(settings.precision, "cpu")
    except (DaskMissing, ClusterUnavailable, ValueError, WeightsError) as exc:
        raise BatchError(str(exc)) from None
    spec = NetworkSpec.of(settings.weights, arch, settings.mode, settings.batch_size, settings.device,
                          settings.precision, settings.render_size, settings.strength)
    processes = settings.dask_processes or DEFAULT_DASK_PROCESSES

    def run(jobs, report, on_row):
        try:
            run_jobs(jobs, spec, report, settings.overwrite, settings.max_pixels, on_row, settings.threads,
                     settings.scheduler, processes, settings.chunk_size or DEFAULT_CHUNK_SIZE, settings.quiet)
        except ClusterUnavailable as exc:
            raise BatchError(str(exc)) from None
        remove_stale_temps(settings.output)  # a worker killed mid-write leaves its temporary file; dask redid the chunk

    runs_on = f"dask {settings.scheduler}" if settings.scheduler else f"a local dask cluster of {processes} workers"
    return run, arch, runs_on
