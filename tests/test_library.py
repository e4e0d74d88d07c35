"""The three commands as library functions, called as a program would call them, and the old option names."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from colorize_cli.batch import BatchError, BatchSettings, colorize_batch
from colorize_cli.cli import app
from colorize_cli.errors import ExitCode
from colorize_cli.evaluate import EvalError, EvalSettings, evaluate_networks


def test_colorize_batch_is_the_command_without_a_terminal(weights_dir, photo_dir, tmp_path):
    rows, said = [], []
    outcome = colorize_batch(BatchSettings([photo_dir], tmp_path / "out", weights=weights_dir / "arch1.pt",
                                           threads=1), on_row=rows.append, say=said.append)
    assert outcome.report.count("ok") == 4 == len(rows) and outcome.arch == 1
    assert (tmp_path / "out" / "report.json").is_file() and (tmp_path / "out" / "index.html").is_file()
    assert outcome.sentence().startswith("4 images: 4 colourised, 0 skipped, 0 failed")


@pytest.mark.parametrize("case", ["output is a file", "output is the input", "no inputs"])
def test_colorize_batch_refuses_unusable_paths_before_writing(weights_dir, photo_dir, tmp_path, case):
    output = {"output is a file": photo_dir / "astronaut.png", "output is the input": photo_dir,
              "no inputs": tmp_path / "out"}[case]
    inputs = [] if case == "no inputs" else [photo_dir]
    before = sorted(p.name for p in photo_dir.rglob("*"))
    with pytest.raises(BatchError) as refused:
        colorize_batch(BatchSettings(inputs, output, weights=weights_dir / "arch1.pt"))
    assert refused.value.code == ExitCode.USAGE
    assert sorted(p.name for p in photo_dir.rglob("*")) == before and not (tmp_path / "out").exists()


def test_evaluate_networks_writes_its_files_and_refuses_an_unknown_network(weights_dir, photo_dir, tmp_path):
    summary, written = evaluate_networks(EvalSettings("2", weights_dir=weights_dir, data=photo_dir,
                                                      out=tmp_path / "eval", grid_images=0))
    assert summary["images"] == 3 and summary["skipped"]["grey"] == 1
    assert [p.name for p in written] == ["eval.json", "eval.csv"]
    with pytest.raises(EvalError, match="choose 1 to 6 or all"):
        evaluate_networks(EvalSettings("7", data=photo_dir, out=tmp_path / "eval2"))


@pytest.mark.parametrize("old, new", [("--jobs", "--threads"), ("--dask-workers", "--dask-processes")])
def test_old_option_names_still_work_with_a_warning(weights_dir, photo_dir, tmp_path, old, new):
    extra = ["--backend", "dask"] if old == "--dask-workers" else []
    result = CliRunner().invoke(app, ["batch", str(photo_dir), str(tmp_path / "out"), "--weights",
                                      str(weights_dir / "arch1.pt"), old, "1", "--quiet", *extra])
    assert f"{old} is now {new}" in result.stderr
    if not extra:  # the dask run itself is tested in test_dask.py
        assert result.exit_code == 0 and len(list((tmp_path / "out").rglob("*.png"))) == 3


def test_train_workers_is_threads(tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "none"), "--workers", "1"])
    assert "--workers is now --threads" in result.stderr and result.exit_code == ExitCode.USAGE
