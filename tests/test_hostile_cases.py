"""`colorize batch` (and train) on hostile cases: each builds its own case and runs the CLI as a user would."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.files import TEMP_SUFFIX, atomic_path, remove_stale_temps, temp_name
from tests.test_batch_runs import batch, json_lines, photo

ROOT = Path(__file__).resolve().parents[1]


def gradient(h: int = 24, w: int = 32) -> np.ndarray:
    """uint8 RGB with colour across the image and no pixel at either end of the range."""
    y, x = np.mgrid[0:h, 0:w]
    return (np.stack([x / w, y / h, 0.5 + 0 * x], axis=2) * 200 + 20).astype(np.uint8)


def mean_level(path: Path) -> float:
    with Image.open(path) as image:
        return float(np.asarray(image.convert("L"), np.float32).mean()) / 255


@pytest.mark.parametrize("name, samples", [
    ("f16.tif", lambda rgb: (rgb / 255).astype(np.float16)),
    ("f32_255.tif", lambda rgb: rgb.astype(np.float32)),
    ("f64.tif", lambda rgb: rgb.astype(np.float64) / 255),
    ("i32_big.tif", lambda rgb: rgb.astype(np.int32) * 1000),
    ("i16.tif", lambda rgb: rgb.astype(np.int16)),
])
def test_every_sample_type_is_mapped_by_what_it_holds(weights_dir, tmp_path, name, samples):
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / name, samples(gradient()), photometric="rgb")
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json_lines(result)[name]["status"] == "ok"
    # neither black nor white: the output's lightness follows the input's (the original L is kept)
    assert 0.15 < mean_level(tmp_path / "out" / name) < 0.85
    if name in ("f32_255.tif", "i32_big.tif"):
        assert f"warning: {tmp_path / 'in' / name}: " in result.stderr and "samples run" in result.stderr


def test_samples_with_no_finite_value_are_refused_in_one_line(weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "nan.tif", np.full((8, 8, 3), np.nan, np.float32), photometric="rgb")
    result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    assert f"colorize: {tmp_path / 'in' / 'nan.tif'}: no finite sample values" in result.stderr


def test_output_equal_to_input_is_refused_before_anything_is_written(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    for output in (tmp_path / "in", tmp_path / "in" / "."):
        result = batch(weights_dir, tmp_path / "in", output)
        assert result.exit_code == 2
        assert "is the input folder" in result.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before
    result = batch(weights_dir, tmp_path / "in", tmp_path / "in" / "out")  # inside INPUT still works
    assert result.exit_code == 0 and (tmp_path / "in" / "out" / "a.png").is_file()


def test_the_sweep_leaves_a_live_writers_temporary_file_alone(tmp_path):
    target = tmp_path / "out" / "sub" / "a.png"
    stale = tmp_path / "out" / f".old.png.0123abcd{TEMP_SUFFIX}"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed run")
    with atomic_path(target) as live:
        live.write_bytes(b"being written")
        assert remove_stale_temps(tmp_path / "out") == [stale]
        assert live.exists()
    assert target.read_bytes() == b"being written"


def test_a_run_on_out_keeps_the_files_of_a_run_on_out_sub(weights_dir, tmp_path):
    """Another process writes OUT/sub/x.png through atomic_path and waits; a batch on OUT runs meanwhile."""
    photo(tmp_path / "in" / "a.png")
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom colorize_cli.files import atomic_path\n"
         "with atomic_path(Path(sys.argv[1])) as tmp:\n    tmp.write_bytes(b'data')\n    print('ready', flush=True)\n"
         "    sys.stdin.readline()\n", str(tmp_path / "out" / "sub" / "x.png")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert writer.stdout.readline().strip() == "ready"
        result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
        assert result.exit_code == 0, result.output
        assert "removed" not in result.stderr
    finally:
        writer.communicate("go\n", timeout=30)
    assert writer.returncode == 0
    assert (tmp_path / "out" / "sub" / "x.png").read_bytes() == b"data"


def test_an_unreadable_subfolder_is_a_failed_row_said_even_when_quiet(weights_dir, tmp_path, monkeypatch):
    photo(tmp_path / "in" / "a.png")
    secret = photo(tmp_path / "in" / "secret" / "b.png").parent
    scandir = os.scandir

    def refuse(path="."):
        if Path(path) == secret:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    result = batch(weights_dir, "--quiet", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    assert f"colorize: {secret}: cannot list folder (Permission denied)" in result.stderr
    rows = {Path(r["input"]).name: r for r in json.loads((tmp_path / "out" / "report.json").read_text())["rows"]}
    assert rows["secret"]["status"] == "failed" and rows["a.png"]["status"] == "ok"


@pytest.mark.parametrize("name, fmt", [("a.avif", "AVIF"), ("b.jfif", "JPEG"), ("c.jp2", "JPEG2000"),
                                       ("d.ppm", "PPM")])
def test_a_walked_folder_takes_every_format_the_decoder_reads(weights_dir, tmp_path, name, fmt):
    (tmp_path / "in").mkdir()
    Image.fromarray(gradient()).save(tmp_path / "in" / name, format=fmt)
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json_lines(result)[name]["status"] == "ok"


def test_a_folder_with_files_but_no_images_says_so(weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    (tmp_path / "in" / "scan.xyz").write_bytes(b"\0" * 10)
    result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0
    assert f"{tmp_path / 'in'}: 2 files, none of them in an image format colorize reads" in result.stderr


def test_long_file_names_keep_their_temporary_name_within_the_limit(weights_dir, tmp_path):
    name = "p" * 246 + ".png"  # 250 bytes: the longest names a file system takes get a shorter temporary name
    photo(tmp_path / "in" / name)
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json_lines(result)[name]["status"] == "ok" and (tmp_path / "out" / name).is_file()
    assert len(temp_name("é" * 127 + ".png", "0123abcd").encode("utf-8", "surrogateescape")) <= 255


def test_an_exif_block_too_large_for_jpeg_is_left_out_with_a_warning(weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    exif = Image.Exif()
    exif[0x010E] = "x" * 70000  # ImageDescription
    Image.fromarray(gradient()).save(tmp_path / "in" / "big.png", exif=exif.tobytes())
    result = batch(weights_dir, "--json", "--format", "jpg", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json_lines(result)["big.png"]["status"] == "ok"
    assert "too large for JPEG: left out" in result.stderr
    with Image.open(tmp_path / "out" / "big.jpg") as image:
        assert image.size == (32, 24)


def run_shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("tail", ["| head -c 1 > /dev/null", "> /dev/full"])
def test_stdout_trouble_names_stdout_and_the_report_is_still_written(weights_dir, tmp_path, tail):
    for i in range(40):
        photo(tmp_path / "in" / f"{i:02}_{'x' * 200}.png", seed=i)
    cli = f"{sys.executable} -m colorize_cli"
    done = run_shell(f"{cli} batch --weights {weights_dir / 'arch1.pt'} --json in out {tail}", tmp_path)
    assert "colorize: error: stdout: " in done.stderr
    assert "OUT" not in done.stderr.replace(str(tmp_path / "out"), "")
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    with open(tmp_path / "out" / "report.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 40


def test_tifffiles_own_words_come_as_our_one_line(weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "random.tif").write_bytes(b"II*\0" + np.random.default_rng(0).bytes(3000))
    done = run_shell(f"{sys.executable} -m colorize_cli batch --weights {weights_dir / 'arch1.pt'} in out", tmp_path)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "random.tif" in line or "tifffile" in line]
    assert len(lines) == 1 and "tifffile" not in lines[0]
    # tifffile's own reason (its log line), not the IndexError it raises after it
    assert lines[0].startswith(f"colorize: {Path('in') / 'random.tif'}: damaged or unsupported image (invalid offset")


def test_a_raw_pickle_as_weights_is_one_line_that_does_not_advise_unsafe_loading(tmp_path):
    import pickle

    (tmp_path / "raw.pt").write_bytes(pickle.dumps(Path("x"), protocol=4))
    photo(tmp_path / "in" / "a.png")
    done = run_shell(f"{sys.executable} -m colorize_cli batch --weights raw.pt in out", tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("colorize: error: raw.pt: not a readable weights file")
    assert "weights_only=False" not in done.stderr and "weights_only` set to `False" not in done.stderr


def test_report_csv_cells_cannot_become_formulas(weights_dir, tmp_path, monkeypatch):
    names = ["=cmd|' calc'!A0.png", "+1.png", "@x.png", "-y.png"]
    for name in names:
        photo(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert batch(weights_dir, "--", *names, "out").exit_code == 0
    with open(tmp_path / "out" / "report.csv", newline="") as f:
        inputs = [row["input"] for row in csv.DictReader(f)]
    assert inputs == [f"'{name}" for name in names]
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["rows"]
    assert [r["input"] for r in rows] == names


def test_an_output_folder_that_cannot_be_written_is_a_usage_error(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".colorize.lock").mkdir()  # the lock cannot be made: OUTPUT cannot be written as needed
    result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.startswith("colorize: error: OUTPUT ")


def test_the_same_input_given_twice_is_one_job(weights_dir, tmp_path):
    a = photo(tmp_path / "in" / "a.png")
    result = batch(weights_dir, "--json", a, a, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in map(json.loads, result.stdout.splitlines())] == ["ok"]


def test_training_data_that_is_all_corrupt_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jpg").write_bytes(b"not a jpeg")
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_two_names_for_one_file_in_a_folder_are_two_jobs(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").symlink_to(tmp_path / "in" / "a.png")
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert {n: r["status"] for n, r in json_lines(result).items()} == {"a.png": "ok", "b.png": "ok"}


def test_a_thumbnail_that_cannot_be_written_is_a_note_not_a_failure(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".thumbs").write_text("a file where the thumbnails' folder goes")
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json_lines(result)["a.png"]["status"] == "ok" and "no gallery thumbnail" in result.stderr


def test_high_dynamic_range_floats_are_stretched_not_read_as_8_bit_codes(weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "hdr.tif", gradient().astype(np.float32) / 255 * 4, photometric="rgb")
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert json_lines(result)["hdr.tif"]["status"] == "ok"
    assert 0.3 < mean_level(tmp_path / "out" / "hdr.tif") < 0.8
    assert "stretched" in result.stderr


def test_postscript_named_like_a_jpeg_never_reaches_ghostscript(weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ps.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    result = batch(weights_dir, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1 and "ps.jpg: not an image file" in result.stderr
