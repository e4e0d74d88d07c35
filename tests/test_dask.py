"""`colorize batch --backend dask`: the local run's outputs and rows, on a cluster; killed workers; the extra."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.files import TEMP_SUFFIX
from tests.conftest import small_photo

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


@pytest.fixture(scope="module")
def scheduler():
    """A two-process cluster that the tests reach with --scheduler, closed after them."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def write_photos(folder: Path, count: int) -> list[Path]:
    """`count` small colour photos of different sizes around 40x56, one of them grey, as PNG and JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = small_photo(PHOTOS[i % len(PHOTOS)], (40 + i % 3, 56 - i % 4))
        if i == 1:
            pixels = pixels.mean(axis=2).astype(np.uint8)
        path = folder / f"p{i:02d}.{'jpg' if i % 4 == 3 else 'png'}"
        iio.imwrite(path, pixels, **({"quality": 95} if path.suffix == ".jpg" else {}))
        paths.append(path)
    return paths


def batch(weights_dir, *args):
    return CliRunner().invoke(app, ["batch", "--weights", str(weights_dir / "arch1.pt"), "--json", *map(str, args)])


def streamed(result) -> dict:
    """--json lines as input name -> (status, output name)."""
    lines = map(json.loads, result.stdout.splitlines())
    return {Path(r["input"]).name: (r["status"], Path(r["output"]).name) for r in lines}


def rows_by_input(folder: Path) -> dict:
    return {Path(r["input"]).name: r for r in json.loads((folder / "report.json").read_text())["rows"]}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_dask_run_matches_the_local_run(weights_dir, tmp_path, scheduler):
    from distributed import Client

    from colorize_cli.backends import dask as scale_out

    sources = write_photos(tmp_path / "in", 10)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    def loads() -> tuple[int, int]:
        """Networks loaded and chunks run, summed over the workers."""
        with Client(scheduler, set_as_default=False) as client:
            caches = client.run(scale_out.worker_colorizer.cache_info).values()
        return sum(c.misses for c in caches), sum(c.hits + c.misses for c in caches)

    loaded_before, chunks_before = loads()
    local = batch(weights_dir, tmp_path / "in", tmp_path / "local")
    assert local.exit_code == 1, local.output  # broken.png fails in both runs
    remote = batch(weights_dir, "--backend", "dask", "--scheduler", scheduler, "--chunk-size", 2,
                   tmp_path / "in", tmp_path / "dask")
    assert remote.exit_code == 1, remote.output
    assert streamed(remote) == streamed(local)

    expected, got = rows_by_input(tmp_path / "local"), rows_by_input(tmp_path / "dask")
    assert got.keys() == expected.keys() == {s.name for s in sources} | {"broken.png"}
    for name, row in expected.items():
        assert (got[name]["status"], got[name]["width"], got[name]["height"], got[name]["error"]) == \
            (row["status"], row["width"], row["height"], row["error"]), name
        assert (got[name]["mse"] is None) == (row["mse"] is None), name
        if row["mse"] is not None:
            assert abs(got[name]["mse"] - row["mse"]) < 1e-6, name
    assert got["p01.png"]["mse"] is None and got["broken.png"]["status"] == "failed"
    for source in sources:
        a = iio.imread(tmp_path / "local" / source.name).astype(int)
        b = iio.imread(tmp_path / "dask" / source.name).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, source.name

    loaded, chunks = loads()  # 11 files in chunks of 2; at most one network load per worker
    assert loaded - loaded_before <= 2 and chunks - chunks_before == 6

    rerun = batch(weights_dir, "--backend", "dask", "--scheduler", scheduler, tmp_path / "in", tmp_path / "dask")
    assert {json.loads(line)["status"] for line in rerun.stdout.splitlines()} == {"skipped", "failed"}
    assert temp_files(tmp_path) == []


# joblib warns when its generator is closed early, as this test does on purpose
@pytest.mark.filterwarnings("ignore:.*adjusting the input task iterator:UserWarning")
def test_jobs_of_chunks_lost_with_the_cluster_fail_and_a_rerun_finishes_them(weights_dir, tmp_path, scheduler,
                                                                            monkeypatch):
    from colorize_cli.backends import dask as scale_out
    from colorize_cli.batch import plan_jobs
    from colorize_cli.report import ColorReport

    real_dispatch = scale_out.dispatch

    def first_chunk_then_lost(*args):
        results = real_dispatch(*args)
        yield next(results)
        results.close()
        raise OSError("scheduler connection lost")

    sources = write_photos(tmp_path / "in", 5)
    jobs, _ = plan_jobs([tmp_path / "in"], tmp_path / "out")
    spec = scale_out.NetworkSpec.of(weights_dir / "arch1.pt", 1, "resize", 4, "cpu")
    monkeypatch.setattr(scale_out, "dispatch", first_chunk_then_lost)
    report = ColorReport()
    scale_out.run_jobs(jobs, spec, report, scheduler=scheduler, chunk_size=2)
    assert [(Path(r.input).name, r.status) for r in report.rows] == \
        [(s.name, "ok" if i < 2 else "failed") for i, s in enumerate(sources)]
    assert report.rows[-1].error == "dask: OSError: scheduler connection lost; rerun to finish"

    monkeypatch.setattr(scale_out, "dispatch", real_dispatch)
    report = ColorReport()
    scale_out.run_jobs(jobs, spec, report, scheduler=scheduler, chunk_size=2)
    statuses = [r.status for r in report.rows]  # chunks already sent may have finished after the loss
    assert statuses[:2] == ["skipped"] * 2 and set(statuses[2:]) <= {"skipped", "ok"} and len(statuses) == 5
    assert all(job.dest.is_file() for job in jobs)


def descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill(process) -> None:
    """SIGKILL a psutil.Process that may have gone already."""
    import psutil

    try:
        process.send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass


def test_rerun_after_killed_workers_completes_everything(weights_dir, tmp_path):
    pytest.importorskip("distributed")
    sources = write_photos(tmp_path / "in", 24)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "colorize_cli", "batch", "--weights", str(weights_dir / "arch3.pt"),
               "--backend", "dask", "--dask-processes", "2", "--chunk-size", "1", "--batch-size", "1", "--json",
               "--quiet", "in", "out"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def wait_for(outputs: int) -> None:
            deadline = time.monotonic() + 60
            while len(list(out.glob("p*"))) < outputs and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)

        wait_for(3)
        workers = [p for p in descendants(process.pid) if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 2, process.stderr.read().decode() if process.poll() is not None else workers
        kill(workers[0])  # the cluster goes on without it
        wait_for(len(list(out.glob("p*"))) + 3)
    finally:
        process.send_signal(signal.SIGSTOP)  # no new worker processes while the tree is killed
        left = descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        for child in left:
            kill(child)
        process.wait()
        process.stderr.close()
    done = sorted(out.glob("p*"))
    assert 6 <= len(done) < 24, "the run should have been killed half-way"

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    lines = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert sorted(line["input"] for line in lines) == [f"in/{s.name}" for s in sources]
    assert {line["input"] for line in lines if line["status"] == "skipped"} == {f"in/{p.name}" for p in done}
    for source in sources:
        with Image.open(out / source.name) as image, Image.open(source) as original:
            image.load()
            assert image.size == original.size
    assert temp_files(tmp_path) == []


def test_dask_options_need_the_dask_backend(weights_dir, tmp_path):
    result = batch(weights_dir, "--chunk-size", 4, tmp_path, tmp_path / "out")
    assert result.exit_code == 2 and "--chunk-size needs --backend dask" in result.stderr


def test_missing_dask_names_the_extra(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    result = batch(weights_dir, "--backend", "dask", tmp_path, tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        ('colorize: error: --backend dask needs the dask extra (distributed is not installed): '
         'pip install "colorize[dask]"')
    ]
    assert not (tmp_path / "out").exists()


def test_the_precision_reaches_the_workers_network(weights_dir):
    import torch

    from colorize_cli.backends import dask as scale_out
    from colorize_cli.predictor import cpu_runs_bfloat16

    spec = scale_out.NetworkSpec.of(weights_dir / "arch1.pt", 1, "resize", None, "cpu")
    assert scale_out.worker_colorizer(spec).dtype == torch.float32  # auto, on a CPU
    if cpu_runs_bfloat16():
        spec = scale_out.NetworkSpec.of(weights_dir / "arch1.pt", 1, "resize", None, "cpu", "bfloat16")
        assert scale_out.worker_colorizer(spec).dtype == torch.bfloat16


def test_a_precision_the_cpu_workers_would_refuse_is_a_usage_error_first(weights_dir, tmp_path):
    write_photos(tmp_path / "in", 1)
    result = batch(weights_dir, "--backend", "dask", "--device", "cpu", "--precision", "float16",
                   tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "colorize: error: --precision float16: CPUs have no fast float16; use bfloat16 or float32"]
    assert not (tmp_path / "out").exists()
