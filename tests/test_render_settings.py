"""--render-size and --strength: what the network sees, how strong its colour is, and where the report says so."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.predictor import Colorizer
from colorize_cli.registry import load_network
from tests.conftest import SeenShapes
from tests.test_batch_runs import batch, json_lines, photo


@pytest.mark.parametrize("mode, size, expected", [("resize", 256, {(192, 336)}), ("resize", 64, {(48, 80)}),
                                                  ("tile", 128, {(128, 128)})])
def test_the_network_sees_the_render_size(weights_dir, mode, size, expected):
    net = SeenShapes(load_network(1, weights_dir / "arch1.pt")[0])
    ab = Colorizer(net, mode=mode, render_size=size).predict_ab([np.full((300, 500), 50, np.float32)])[0]
    assert {shape[-2:] for shape in net.shapes} == expected and ab.shape == (300, 500, 2)


def test_strength_scales_a_b_and_zero_gives_grey(weights_dir):
    net = load_network(3, weights_dir / "arch3.pt")[0]
    l = np.random.default_rng(0).uniform(20, 80, (64, 64)).astype(np.float32)
    plain, double, none = (Colorizer(net, strength=s).predict_ab([l])[0] for s in (1.0, 2.0, 0.0))
    assert np.abs(plain).max() > 0.1
    assert np.allclose(double, 2 * plain, atol=1e-4) and np.all(none == 0)


def test_batch_with_strength_zero_writes_the_grey_image(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    assert batch(weights_dir, "--strength", "0", tmp_path / "in", tmp_path / "out").exit_code == 0
    rgb = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGB"), np.int16)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 1 and np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 1


def test_the_report_records_the_settings_and_kept_outputs_keep_theirs(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    first = batch(weights_dir, "--json", "--render-size", "256", "--strength", "1.3", tmp_path / "in", tmp_path / "out")
    line = json_lines(first)["a.png"]
    assert (line["status"], line["render_size"], line["strength"]) == ("ok", 256, 1.3)
    photo(tmp_path / "in" / "b.png", seed=1)
    second = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")  # default settings now
    lines = json_lines(second)
    assert (lines["a.png"]["status"], lines["a.png"]["render_size"], lines["a.png"]["strength"]) == ("skipped", 256, 1.3)
    assert (lines["b.png"]["status"], lines["b.png"]["render_size"], lines["b.png"]["strength"]) == ("ok", 400, 1.0)
    rows = {r["input"].rsplit("/", 1)[-1]: r for r in json.loads((tmp_path / "out" / "report.json").read_text())["rows"]}
    assert rows["a.png"]["render_size"] == 256 and rows["b.png"]["render_size"] == 400
    assert "render_size" in (tmp_path / "out" / "report.csv").read_text().splitlines()[0]
    third = batch(weights_dir, "--json", "--overwrite", tmp_path / "in", tmp_path / "out")
    assert json_lines(third)["a.png"]["render_size"] == 400


@pytest.mark.parametrize("option, value, message", [
    ("--render-size", "100", "a multiple of 16 from 64 to 1024"), ("--render-size", "48", "from 64 to 1024"),
    ("--render-size", "1040", "from 64 to 1024"), ("--strength", "2.5", "from 0 (grey) to 2"),
    ("--strength", "-0.1", "from 0 (grey) to 2")])
def test_out_of_range_settings_are_one_line_exit_2_and_nothing_written(weights_dir, tmp_path, option, value, message):
    photo(tmp_path / "in" / "a.png")
    result = batch(weights_dir, option, value, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["eval", "--weights", str(weights_dir / "arch1.pt"), option, value,
                                      "--data", str(tmp_path / "in"), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "eval").exists()


def test_eval_measures_a_render_size_and_a_strength(weights_dir, tmp_path):
    for i in range(2):
        photo(tmp_path / "in" / f"{i}.png", 160, 200, seed=i)
    summaries = []
    for args in ([], ["--render-size", "64"], ["--strength", "0"]):
        result = CliRunner().invoke(app, ["eval", "--weights", str(weights_dir / "arch3.pt"), "--json", *args,
                                          "--data", str(tmp_path / "in"), "--out", str(tmp_path / "eval"),
                                          "--grid-images", "0"])
        assert result.exit_code == 0, result.output
        summaries.append(json.loads(result.stdout))
    assert [s["render_size"] for s in summaries] == [400, 64, 400]
    assert [s["strength"] for s in summaries] == [1.0, 1.0, 0.0]
    mse = [s["networks"][0]["mean"]["mse"] for s in summaries]
    assert mse[0] != mse[1]
    grey = summaries[2]["networks"][0]
    assert grey["mean"]["mse"] == pytest.approx(grey["baseline"]["mse"], rel=1e-3)
