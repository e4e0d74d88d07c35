"""`colorize batch` as users type it: outputs at the input's size, the report, skip-existing, exit codes."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from colorize_cli.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_the_three_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("batch", "train", "eval"):
        assert command in result.output


@pytest.mark.parametrize("mode", ["resize", "tile"])
def test_batch_mirrors_the_tree_at_each_input_size(tmp_path, photo_dir, weights_dir, mode):
    out = tmp_path / "out"
    result = run("batch", photo_dir, out, "--weights", weights_dir / "arch3.pt", "--mode", mode)
    assert result.exit_code == 0, result.output
    for source in ["astronaut.png", "camera.png", "sub/coffee.jpg", "sub/chelsea.png"]:
        original, coloured = iio.imread(photo_dir / source), iio.imread(out / source)
        assert coloured.shape[:2] == original.shape[:2]
        assert coloured.ndim == 3 and coloured.shape[2] == 3
    report = json.loads((out / "report.json").read_text())
    rows = {r["input"]: r for r in report["rows"]}
    assert len(rows) == 4 and report["summary"]["ok"] == 4
    grey = rows[str(photo_dir / "camera.png")]
    assert grey["ground_truth"] is False and grey["mse"] is None
    colour = rows[str(photo_dir / "sub" / "coffee.jpg")]
    assert colour["ground_truth"] is True and 0 < colour["mse"] < 1
    assert colour["psnr"] == pytest.approx(10 * np.log10(1 / colour["mse"]))
    assert (colour["width"], colour["height"], colour["mode"]) == (56, 40, mode)
    csv_lines = (out / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("input,output,status") and len(csv_lines) == 5


def test_output_keeps_the_original_l(tmp_path, photo_dir, weights_dir):
    from colorize_cli.color import rgb_to_lab

    out = tmp_path / "out"
    run("batch", photo_dir / "astronaut.png", out, "--weights", weights_dir / "arch6.pt")
    original = iio.imread(photo_dir / "astronaut.png").astype(np.float32) / 255
    coloured = iio.imread(out / "astronaut.png").astype(np.float32) / 255
    l_in, l_out = rgb_to_lab(original)[..., 0], rgb_to_lab(coloured)[..., 0]
    mid = (l_in > 25) & (l_in < 80)
    assert np.median(np.abs(l_in - l_out)[mid]) < 1.0


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, photo_dir, weights_dir):
    out = tmp_path / "out"
    weights = weights_dir / "arch1.pt"
    assert run("batch", photo_dir, out, "--weights", weights).exit_code == 0
    stamp = (out / "camera.png").stat().st_mtime_ns
    again = run("batch", photo_dir, out, "--weights", weights)
    assert again.exit_code == 0
    assert json.loads((out / "report.json").read_text())["summary"]["skipped"] == 4
    assert (out / "camera.png").stat().st_mtime_ns == stamp
    assert run("batch", photo_dir, out, "--weights", weights, "--overwrite").exit_code == 0
    assert json.loads((out / "report.json").read_text())["summary"]["ok"] == 4


def test_a_bad_file_is_reported_and_the_batch_goes_on(tmp_path, photo_dir, weights_dir):
    (photo_dir / "notes.jpg").write_text("this is not a photo")
    out = tmp_path / "out"
    result = run("batch", photo_dir, out, "--weights", weights_dir / "arch1.pt")
    assert result.exit_code == 1
    assert "notes.jpg" in result.output
    rows = json.loads((out / "report.json").read_text())["rows"]
    bad = [r for r in rows if r["input"].endswith("notes.jpg")]
    assert bad[0]["status"] == "failed" and bad[0]["error"]
    assert sum(r["status"] == "ok" for r in rows) == 4


def test_format_option_changes_the_output_type(tmp_path, photo_dir, weights_dir):
    out = tmp_path / "out"
    assert run("batch", photo_dir, out, "--weights", weights_dir / "arch1.pt", "--format", "jpg").exit_code == 0
    assert sorted(p.name for p in out.rglob("*.jpg") if ".thumbs" not in p.parts) == ["astronaut.jpg", "camera.jpg", "chelsea.jpg", "coffee.jpg"]


def test_output_inside_input_is_not_read_again(tmp_path, photo_dir, weights_dir):
    out = photo_dir / "coloured"
    assert run("batch", photo_dir, out, "--weights", weights_dir / "arch1.pt").exit_code == 0
    assert run("batch", photo_dir, out, "--weights", weights_dir / "arch1.pt", "--overwrite").exit_code == 0
    assert not (out / "coloured").exists()
    assert len(json.loads((out / "report.json").read_text())["rows"]) == 4


@pytest.mark.parametrize("args, message", [
    (["batch", "only-one-path"], "OUTPUT"),
    (["batch", "in", "out", "--arch", "9"], "less than or equal to 6"),
    (["batch", "in", "out", "--mode", "sideways"], "sideways"),
])
def test_usage_errors_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_weights_is_a_clear_usage_error(tmp_path, photo_dir):
    result = run("batch", photo_dir, tmp_path / "out", "--weights", tmp_path / "nope.pt")
    assert result.exit_code == 2
    assert "nope.pt" in result.output and "not found" in result.output


def test_bfloat16_runs_where_the_cpu_has_it_and_is_refused_in_one_line_where_not(tmp_path, photo_dir, weights_dir,
                                                                               monkeypatch):
    from colorize_cli import predictor

    args = ("batch", photo_dir, tmp_path / "out", "--weights", weights_dir / "arch6.pt", "--device", "cpu",
            "--precision", "bfloat16")
    if predictor.cpu_runs_bfloat16():
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "out" / "report.json").read_text())["summary"]["ok"] == 4
    monkeypatch.setattr(predictor, "cpu_runs_bfloat16", lambda: False)
    result = run(*args[:2], tmp_path / "refused", *args[3:])
    assert result.exit_code == 2
    assert "no native bfloat16" in result.output and not (tmp_path / "refused").exists()
