"""`colorize batch` as cron jobs and pipelines use it: kills, reruns, locks, file lists, output streams, weights."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import colorize_cli.registry
from colorize_cli.cli import app
from colorize_cli.files import TEMP_SUFFIX
from colorize_cli.lock import LOCK_NAME, folder_lock

REPO = Path(__file__).resolve().parents[1]


def photo(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    """A small colour PNG or JPEG at `path`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / w, y / h, rng.uniform(0.2, 0.8) + 0 * x], axis=2) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def batch(weights_dir, *args, input=None, env=None):
    args = ["batch", "--weights", str(weights_dir / "arch1.pt"), *map(str, args)]
    return CliRunner().invoke(app, args, input=input, env=env)


def json_lines(result) -> dict:
    """--json output by input name; every stdout line must be JSON."""
    return {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def assert_valid(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.size == size


def test_kill_and_resume(weights_dir, tmp_path):
    sources = [photo(tmp_path / "in" / f"p{i:02d}.png", 32 + i, 40, seed=i) for i in range(30)]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "colorize_cli", "batch", "--weights", str(weights_dir / "arch3.pt"),
               "--batch-size", "1", "--quiet", str(tmp_path / "in"), str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(out.glob("p*.png"))) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    done = sorted(out.glob("p*.png"))
    assert 3 <= len(done) < 30, "the run should have been killed half-way"
    for path in done:  # whatever a kill leaves is complete
        assert_valid(path, (40, 32 + int(path.stem[1:])))

    result = batch(weights_dir, "--json", tmp_path / "in", out)
    assert result.exit_code == 0, result.output
    statuses = {name: line["status"] for name, line in json_lines(result).items()}
    assert statuses == {s.name: "skipped" if out / s.name in done else "ok" for s in sources}
    for i, source in enumerate(sources):
        assert_valid(out / source.name, (40, 32 + i))
    assert temp_files(tmp_path) == []


def test_rerun_skips_finished_outputs_and_removes_stale_temp_files(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "b.png")
    (tmp_path / "in" / f".a.png.1234abcd{TEMP_SUFFIX}").write_bytes(b"half an image")
    out = tmp_path / "out"
    assert batch(weights_dir, tmp_path / "in", out).exit_code == 0
    (out / "b.png").unlink()
    stale = out / f".b.png.deadbeef{TEMP_SUFFIX}"
    stale.write_bytes(b"half an image")
    result = batch(weights_dir, "--json", tmp_path / "in", out)
    assert result.exit_code == 0
    assert {n: r["status"] for n, r in json_lines(result).items()} == {"a.png": "skipped", "b.png": "ok"}
    assert not stale.exists()
    assert "removed 1 temporary files" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["skipped"] == 1 and report["summary"]["ok"] == 1
    assert (tmp_path / "in" / f".a.png.1234abcd{TEMP_SUFFIX}").exists()  # inputs are never touched


def test_outputs_get_ordinary_permissions(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    assert batch(weights_dir, tmp_path / "in", tmp_path / "out").exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("a.png", "report.json", "report.csv"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_locked_output_exits_3(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    with folder_lock(tmp_path / "out"):
        result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"colorize: error: {tmp_path / 'out'} is in use by another colorize run (pid {os.getpid()})")
    assert "--wait" in result.stderr
    assert not (tmp_path / "out" / "a.png").exists()
    assert (tmp_path / "out" / LOCK_NAME).exists()


def test_wait_runs_once_the_lock_is_free(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    held, release = threading.Event(), threading.Event()

    def hold():
        with folder_lock(tmp_path / "out"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    result = batch(weights_dir, "--wait", tmp_path / "in", tmp_path / "out")
    holder.join()
    assert result.exit_code == 0, result.output
    assert "waiting for it to finish" in result.stderr
    assert (tmp_path / "out" / "a.png").exists()


def test_files_from_a_file_one_per_line(weights_dir, tmp_path):
    a, b = photo(tmp_path / "in" / "a b.png"), photo(tmp_path / "in" / "c.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{a}\n\n{b}\n{tmp_path / 'gone.png'}\n")
    result = batch(weights_dir, "--json", "--files-from", listing, tmp_path / "out")
    lines = json_lines(result)
    assert result.exit_code == 1
    assert lines["a b.png"]["status"] == lines["c.jpg"]["status"] == "ok"
    assert lines["gone.png"] == {"status": "failed", "input": str(tmp_path / "gone.png"), "output": None,
                                 "mse": None, "render_size": None, "strength": None, "error": "file not found"}
    assert (tmp_path / "out" / "a b.png").exists() and (tmp_path / "out" / "c.jpg").exists()


def test_files_from_stdin_nul_separated_like_find_print0(weights_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ["in/new\nline.png", "in/sub/plain.png", os.fsdecode(b"in/latin1-\xe9.png")]
    for i, name in enumerate(names):
        photo(tmp_path / name, seed=i)
    listing = b"".join(os.fsencode(f"./{name}") + b"\0" for name in names)
    result = batch(weights_dir, "--json", "--files-from", "-", "-0", "out", input=listing)
    assert result.exit_code == 0, result.output
    assert sorted(json_lines(result)) == sorted(Path(n).name for n in names)
    for name in names:  # relative paths are mirrored under OUTPUT
        assert_valid(tmp_path / "out" / name, (32, 24))
    assert os.fsencode(names[2]) in (tmp_path / "out" / "report.csv").read_bytes()


def test_symlink_loop_is_walked_once(weights_dir, tmp_path):
    photo(tmp_path / "in" / "sub" / "a.png")
    (tmp_path / "in" / "sub" / "loop").symlink_to(tmp_path / "in")
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0
    assert list(json_lines(result)) == ["a.png"]
    assert f"warning: {tmp_path / 'in' / 'sub' / 'loop'}: already walked" in result.stderr


def test_output_inside_input_is_never_walked(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    for _ in range(2):
        result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "in" / "out")
        assert result.exit_code == 0
        assert list(json_lines(result)) == ["a.png"]
    assert not (tmp_path / "in" / "out" / "out").exists()


def test_output_never_overwrites_an_input(weights_dir, tmp_path):
    source = photo(tmp_path / "in" / "a.png")
    before = source.read_bytes()
    result = batch(weights_dir, "--overwrite", "--json", source, tmp_path / "in")
    assert result.exit_code == 1
    assert json_lines(result)["a.png"]["error"] == "output path is an input file; choose another OUTPUT"
    assert source.read_bytes() == before


def test_stdout_json_only_quiet_and_no_colour(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "bad.png").write_text("not an image")
    result = batch(weights_dir, "--json", "--quiet", tmp_path / "in", tmp_path / "out",
                   env={"NO_COLOR": "1", "FORCE_COLOR": None})
    assert result.exit_code == 1
    assert {name: line["status"] for name, line in json_lines(result).items()} == {"a.png": "ok", "bad.png": "failed"}
    assert result.stderr == f"colorize: {tmp_path / 'in' / 'bad.png'}: not an image file (unrecognised format)\n"
    assert "\x1b" not in result.output


def test_summary_goes_to_stderr(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0 and result.stdout == ""
    assert "1 images: 1 colourised, 0 skipped, 0 failed" in result.stderr
    assert "\x1b" not in result.stderr  # not a terminal: no progress bar, no colour


@pytest.mark.parametrize("args, message", [
    (["out"], "give at least one INPUT and an OUTPUT folder"),
    (["in", "in/a.png"], "exists and is not a folder"),
    (["--files-from", "missing.txt", "out"], "--files-from missing.txt: No such file or directory"),
])
def test_usage_errors_exit_2(weights_dir, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "in" / "a.png")
    result = batch(weights_dir, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("colorize: error: ") and message in result.stderr


def weights_error(args, tmp_path):
    photo(tmp_path / "in" / "a.png")
    result = CliRunner().invoke(app, ["batch", *map(str, args), str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("colorize: error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "a.png").exists()
    return result.stderr


def test_weights_for_another_network(weights_dir, tmp_path):
    message = weights_error(["--arch", 5, "--weights", weights_dir / "arch6.pt"], tmp_path)
    assert "weights are for network 6, not network 5" in message


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_corrupt_weights(weights_dir, tmp_path, damage):
    bad = tmp_path / "bad.pt"
    data = (weights_dir / "arch1.pt").read_bytes()
    bad.write_bytes(np.random.default_rng(0).bytes(4096) if damage == "random" else data[: len(data) // 2])
    assert "not a readable weights file" in weights_error(["--weights", bad], tmp_path)


def test_shipped_weights_must_match_the_manifest(weights_dir, tmp_path, monkeypatch):
    shipped = tmp_path / "models"
    shutil.copytree(weights_dir, shipped)
    data = bytearray((shipped / "arch1.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (shipped / "arch1.pt").write_bytes(bytes(data))
    monkeypatch.setattr(colorize_cli.registry, "models_dir", lambda: shipped)
    assert "sha256 does not match" in weights_error(["--arch", 1], tmp_path)
