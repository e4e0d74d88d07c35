"""`colorize eval`: the library on arrays, the grid's layout, and the command as users type it."""

import csv
import json
from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from skimage import color
from skimage.metrics import structural_similarity
from typer.testing import CliRunner

from colorize_cli import evaluate as evaluation
from colorize_cli.cli import app
from colorize_cli.predictor import Colorizer
from colorize_cli.plots import GRID_DPI, GRID_TILE_INCHES, plot_comparison_grid

TILE = int(GRID_TILE_INCHES * GRID_DPI)


def run(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def only_colour(folder: Path) -> Path:
    (folder / "camera.png").unlink()
    return folder


def test_grey_and_colour_photos():
    assert evaluation.color_photo("grey", np.full((8, 8, 3), 77, np.uint8)) is None
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 204
    photo = evaluation.color_photo("red", rgb)
    assert photo.l.shape == (8, 8) and photo.rgb is not None


def test_sample_photos_load_without_network():
    skipped = Counter()
    first = next(evaluation.load_samples(skipped))
    assert first.name == "astronaut" and first.rgb.shape == (512, 512, 3) and not skipped
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= {name for name, _ in evaluation.sample_photos()}


def test_rows_match_batch_path_and_independent_grey_baseline(weights_dir, photo_dir):
    colorizers = evaluation.load_colorizers([3], weights_dir=weights_dir, batch_size=2)
    result = evaluation.measure(colorizers, evaluation.load_folder(photo_dir, Counter()), grid_images=1)
    row = next(r for r in result.rows if r.image == "astronaut.png")
    truth = iio.imread(photo_dir / "astronaut.png").astype(np.float64) / 255.0

    lab = color.rgb2lab(truth)
    lab[..., 1:] = 0.0
    grey = np.round(np.clip(color.lab2rgb(lab), 0, 1) * 255) / 255  # written as 8-bit pixels, as batch writes
    assert row.baseline_mse == pytest.approx(np.mean((grey - truth) ** 2), rel=1e-4)
    assert row.baseline_psnr == pytest.approx(10 * np.log10(1 / np.mean((grey - truth) ** 2)), abs=1e-3)
    assert row.baseline_ssim == pytest.approx(
        structural_similarity(truth, grey, channel_axis=2, data_range=1.0), abs=1e-4)
    assert row.baseline_ciede2000 == pytest.approx(
        color.deltaE_ciede2000(color.rgb2lab(truth), color.rgb2lab(grey)).mean(), rel=1e-3)
    assert row.baseline_colourfulness == pytest.approx(0.0, abs=0.15)  # 8-bit rounding: a code apart here and there

    pixels = iio.imread(photo_dir / "astronaut.png")
    l = Colorizer.preprocess(pixels)
    predicted = Colorizer.postprocess(l, colorizers[3].predict_ab([l])[0], 8) / 255.0  # what `batch` writes
    assert row.mse == pytest.approx(np.mean((predicted - truth) ** 2), rel=1e-4)
    assert (row.width, row.height) == (64, 48)
    assert [c.name for c in result.grid] == ["astronaut.png"]


def test_summary_is_means_and_differences_to_baseline(weights_dir, photo_dir):
    colorizers = evaluation.load_colorizers([1], weights_dir=weights_dir)
    result = evaluation.measure(colorizers, evaluation.load_folder(only_colour(photo_dir), Counter()))
    (summary,) = result.summaries()
    assert summary["network"] == 1 and summary["images"] == 3
    assert summary["mean"]["mse"] == pytest.approx(np.mean([r.mse for r in result.rows]))
    assert summary["difference"]["ssim"] == pytest.approx(
        np.mean([r.ssim for r in result.rows]) - np.mean([r.baseline_ssim for r in result.rows]))
    assert summary["colourfulness_ratio"] == pytest.approx(
        summary["mean"]["colourfulness"] / np.mean([r.truth_colourfulness for r in result.rows]))


@pytest.mark.parametrize(("images", "networks"), [(2, 1), (3, 1), (1, 6)])
def test_grid_is_rows_by_columns_of_tiles(tmp_path, images, networks):
    tiles = [np.random.default_rng(i).random((20, 30, 3)) for i in range(images)]
    predicted = {f"network {n}": tiles for n in range(1, networks + 1)}
    errors = {label: [0.01] * images for label in predicted}
    plot_comparison_grid([f"img{i}" for i in range(images)], tiles, tiles, predicted, errors, tmp_path / "g.png")
    height, width = iio.imread(tmp_path / "g.png").shape[:2]
    assert (height, width) == ((2 + networks) * TILE, images * TILE)


def test_arch_all_evaluates_six_networks_and_skips_the_grey_photo(weights_dir, photo_dir, tmp_path):
    out = tmp_path / "eval-out"
    result = run("--arch", "all", "--weights-dir", weights_dir, "--data", photo_dir, "--out", out, "--batch-size", 3)
    assert result.exit_code == 0, result.output
    assert "camera.png" in result.stderr and "grey" in result.stderr
    body = json.loads((out / "eval.json").read_text())
    assert [s["network"] for s in body["networks"]] == [1, 2, 3, 4, 5, 6]
    assert body["images"] == 3 and body["skipped"]["grey"] == 1
    with open(out / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18 and {"baseline_mse", "ciede2000", "truth_colourfulness"} <= set(rows[0])
    assert iio.imread(out / "grid.png").shape[:2] == ((2 + 6) * TILE, 3 * TILE)
    assert "grey baseline" in result.stdout


def test_json_summary_on_stdout_and_grid_cap(weights_dir, photo_dir, tmp_path):
    (photo_dir / "broken.png").write_bytes(b"not a png")
    result = run("--arch", "1", "--weights-dir", weights_dir, "--data", photo_dir, "--out", tmp_path / "o",
                 "--json", "--grid-images", 2, "--mode", "tile", "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["skipped"] == {"grey": 1, "unreadable": 1, "too_small": 0}
    assert summary["networks"][0]["network"] == 1 and summary["mode"] == "tile"
    assert summary["precision"] == "float32"  # auto on CPU
    assert iio.imread(tmp_path / "o" / "grid.png").shape[:2] == (3 * TILE, 2 * TILE)


def test_weights_file_alone_names_its_network(weights_dir, photo_dir, tmp_path):
    result = run("--weights", weights_dir / "arch2.pt", "--data", only_colour(photo_dir), "--out", tmp_path / "o",
                 "--json", "--grid-images", 0)
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)["networks"]
    assert summary["network"] == 2 and summary["weights"].endswith("arch2.pt")
    assert not (tmp_path / "o" / "grid.png").exists()


def test_default_data_is_the_sample_photos(weights_dir, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 255, (24, 32, 3), np.uint8)
    monkeypatch.setattr(evaluation, "sample_photos", lambda: [("a", lambda: photo)])
    result = run("--arch", "1", "--weights-dir", weights_dir, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["data"] == evaluation.SAMPLE_DATA and summary["images"] == 1


@pytest.mark.parametrize("case", ["grey only", "empty", "missing"])
def test_no_colour_photos_is_a_usage_error_naming_the_folder(weights_dir, photo_dir, tmp_path, case):
    folder = tmp_path / "data"
    if case == "grey only":
        folder.mkdir()
        (photo_dir / "camera.png").rename(folder / "camera.png")
    elif case == "empty":
        folder.mkdir()
    result = run("--arch", "1", "--weights-dir", weights_dir, "--data", folder, "--out", tmp_path / "o")
    assert result.exit_code == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("colorize: error: ") and str(folder) in error
    assert result.stdout == ""


def test_missing_weights_file_for_arch_all(weights_dir, photo_dir, tmp_path):
    partial = tmp_path / "weights"
    partial.mkdir()
    (partial / "arch1.pt").write_bytes((weights_dir / "arch1.pt").read_bytes())
    result = run("--arch", "all", "--weights-dir", partial, "--data", photo_dir)
    assert result.exit_code == 2 and "arch2.pt" in result.stderr


def test_bad_arch_is_a_usage_error():
    result = run("--arch", "seven")
    assert result.exit_code == 2 and "--arch seven" in result.stderr


def test_a_failure_while_evaluating_is_one_clear_line(tmp_path, weights_dir, monkeypatch):
    def out_of_memory(self, ls):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr("colorize_cli.predictor.Colorizer.predict_ab", out_of_memory)
    result = CliRunner().invoke(app, ["eval", "--weights", str(weights_dir / "arch1.pt"), "--out", str(tmp_path / "e")])
    assert result.exit_code == 1
    assert "evaluation stopped: CUDA out of memory" in result.output and "Traceback" not in result.output
