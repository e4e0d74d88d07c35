"""The shipped weights: all six present, listed with their sha256, and the default that batch uses."""

import json

import imageio.v3 as iio
import pytest
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.registry import ARCHS, WeightsError, load_network, models_dir, sha256_of
from tests.conftest import small_photo


def test_every_network_ships_weights_listed_in_the_manifest():
    manifest = json.loads((models_dir() / "manifest.json").read_text())
    for arch in ARCHS.values():
        path = models_dir() / arch.weights_file
        assert manifest[path.name]["sha256"] == sha256_of(path)
        assert manifest[path.name]["meta"]["arch"] == arch.number
        net, number = load_network(arch.number)
        assert number == arch.number and not net.training


def test_batch_needs_no_flags_and_works_from_any_directory(tmp_path, monkeypatch):
    photos = tmp_path / "old_photos"
    photos.mkdir()
    iio.imwrite(photos / "cat.jpg", small_photo("chelsea", (60, 80)).mean(axis=2).astype("uint8"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["batch", "old_photos", "out"])
    assert result.exit_code == 0, result.output
    assert iio.imread(tmp_path / "out" / "cat.jpg").shape == (60, 80, 3)
    assert "network 6" in result.output


def test_a_replaced_shipped_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "models"
    copy.mkdir()
    (copy / "manifest.json").write_text((models_dir() / "manifest.json").read_text())
    (copy / "arch1.pt").write_bytes((models_dir() / "arch2.pt").read_bytes())
    monkeypatch.setattr("colorize_cli.registry.models_dir", lambda: copy)
    with pytest.raises(WeightsError, match="sha256"):
        load_network(1)


@pytest.mark.parametrize("arch", [3, 4, 5, 6])
def test_shipped_unets_use_their_whole_decoder(arch):
    """The ReLU before the output conv passes most pixels of a real photo: the network has not
    collapsed to a 3x3 conv of L (what a dead ReLU there leaves)."""
    import torch

    from colorize_cli.color import rgb_to_lab, scale_l

    net, _ = load_network(arch)
    seen = []
    net.last.register_forward_hook(lambda m, i, out: seen.append(out))
    lab = rgb_to_lab(small_photo("coffee", (128, 160)) / 255.0)
    with torch.no_grad():
        net(scale_l(torch.from_numpy(lab[None, None, :, :, 0]).float()))
    assert (seen[0] > 0).float().mean() > 0.5


def test_shipped_network_6_colours_sample_photos_better_than_grey():
    """On scikit-image's colour photos (not used in training) network 6 beats leaving them grey on the
    design's MSE and on CIEDE2000, and adds visible colour."""
    from collections import Counter

    from colorize_cli import evaluate as evaluation

    colorizers = evaluation.load_colorizers([6])
    result = evaluation.measure(colorizers, evaluation.load_samples(Counter()), grid_images=0)
    summary = evaluation.summarise(result.rows)
    assert summary["images"] >= 6
    assert summary["difference"]["mse"] < 0
    assert summary["difference"]["ciede2000"] < 0
    assert summary["colourfulness_ratio"] > 0.15
