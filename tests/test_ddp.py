"""Training under torchrun: two CPU processes stay in step, and their checkpoint works in one process."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from colorize_cli import ddp
from colorize_cli.cli import app
from colorize_cli.commands.train import command_line
from colorize_cli.registry import load_network
from colorize_cli.train import TrainOptions, read_checkpoint, train_network
from tests.conftest import small_photo

ROOT = Path(__file__).resolve().parents[1]

# Runs train_network() in each torchrun worker, then saves that worker's network parameters as rank<N>.pt.
WORKER = """
import json, os, sys
import torch
from colorize_cli import train as training

nets = []
build_network = training.build_network
training.build_network = lambda arch: nets.append(build_network(arch)) or nets[-1]
training.train_network(training.TrainOptions(**json.loads(sys.argv[1])), log=print)
params = {name: p.detach().clone() for name, p in nets[0].named_parameters()}
torch.save(params, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.fixture
def eight_photos(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ["astronaut", "coffee", "chelsea", "rocket"]:
        photo = small_photo(name, (48, 48))
        iio.imwrite(folder / f"{name}.png", photo)
        iio.imwrite(folder / f"{name}_flip.png", photo[:, ::-1])
    return folder


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           *args], env=env, capture_output=True, text=True, timeout=180)


def test_two_gloo_processes_end_equal_and_the_checkpoint_resumes_in_one(tmp_path, eight_photos):
    opts = TrainOptions(arch=1, data=str(eight_photos), out=str(tmp_path / "run"), epochs=2, lr=1e-2, batch_size=4,
                        crop=32, warmup_epochs=0)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    done = torchrun(2, str(worker), json.dumps(asdict(opts)), str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("epoch 2/2") == 1  # only rank 0 logs
    assert "x 2 processes of 2 crops a step" in done.stdout

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 2 and not any(k.startswith("module.") for k in state["model"])
    assert all(torch.equal(state["model"][k], rank0[k]) for k in rank0)
    losses = json.loads((tmp_path / "run" / "losses.json").read_text())
    assert len(losses["train_loss"]) == 2

    net, arch = load_network(None, tmp_path / "run" / "last.pt")
    assert arch == 1
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 32) * 2 - 1).shape == (1, 2, 32, 32)
    opts.epochs = 3
    resumed = train_network(opts, resume=tmp_path / "run" / "last.pt", log=lambda m: None)
    assert resumed.train_loss[:2] == losses["train_loss"]
    assert len(resumed.train_loss) == 3 and read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 3


def test_one_process_is_the_plain_loop():
    world = ddp.World(0, 1, torch.device("cpu"))
    net = torch.nn.Linear(2, 2)
    assert world.wrap(net) is net
    assert world.sum(1.5, 4) == [1.5, 4]
    assert world.from_main(lambda: (0.25, 30.0)) == (0.25, 30.0)


def test_cli_ddp_hands_the_same_options_to_torchrun(tmp_path, eight_photos, monkeypatch):
    launched = []

    def exec_torchrun(nproc, args):  # the real one replaces this process with torchrun
        launched.append((nproc, args))
        raise typer.Exit(0)

    monkeypatch.setattr(ddp, "exec_torchrun", exec_torchrun)
    result = CliRunner().invoke(app, ["train", "--ddp", "--nproc", "2", "--arch", "1", "--data", str(eight_photos),
                                      "--epochs", "2", "--lr", "0.01", "--no-balanced", "--out", str(tmp_path / "run"),
                                      "--export", str(tmp_path / "arch1.pt")])
    assert result.exit_code == 0, result.output
    assert launched == [(2, ["train", "--arch", "1", "--data", str(eight_photos), "--out", str(tmp_path / "run"),
                             "--epochs", "2", "--lr", "0.01", "--no-balanced", "--export", str(tmp_path / "arch1.pt")])]
    assert command_line({"seed": 3, "fit": True, "resume": Path("r/last.pt")}) == ["--seed", "3", "--fit",
                                                                                 "--resume", "r/last.pt"]


def test_nproc_without_ddp_is_a_usage_error(tmp_path, eight_photos):
    result = CliRunner().invoke(app, ["train", "--data", str(eight_photos), "--nproc", "2"])
    assert result.exit_code == 2 and "--nproc goes with --ddp" in result.output
