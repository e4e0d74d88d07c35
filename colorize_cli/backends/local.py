"""The local backend: decode, network and encode overlapped in threads on this machine."""

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from colorize_cli.batch import Job, Prepared, failed_row, finish, jobs_to_do, outcome, prepare
from colorize_cli.decode import DEFAULT_MAX_PIXELS
from colorize_cli.heap import image_done
from colorize_cli.predictor import Colorizer, torch_threads
from colorize_cli.report import ColorReport, ReportRow


def run_jobs(jobs: Iterable[Job], colorizer: Colorizer, report: ColorReport, overwrite: bool = False,
             max_pixels: int = DEFAULT_MAX_PIXELS, on_row: Callable[[ReportRow], None] = lambda r: None,
             threads: int = 1) -> None:
    """Colourise every job, `colorizer.batch_size` images per network call; every job ends as a report row.

    Decoding and encoding run in `threads` threads while the network works on the images before them;
    on CPU the network calls run in lanes that share torch's threads (Colorizer.network_lanes). At most
    a few batches are in flight at once, and the heap's free pages go back to the OS now and then
    (heap.image_done), so memory does not grow with the number of images.
    """
    def emit(row: ReportRow) -> None:
        report.add(row)
        on_row(row)

    todo = jobs_to_do(jobs, overwrite, emit)
    per_call = colorizer.batch_size if colorizer.mode == "resize" else 1  # tile mode batches tiles instead
    lanes, threads_per_lane = colorizer.network_lanes(threads)
    in_flight = per_call * lanes + threads
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="colorize") as pool, \
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
