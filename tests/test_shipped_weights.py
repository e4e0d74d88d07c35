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
