"""`colorize train`: a tiny run lowers the loss, checkpoints resume exactly, exports load in batch."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.registry import load_network, read_weights
from colorize_cli.train import CheckpointError, TrainOptions, read_checkpoint, train_network
from tests.conftest import small_photo

runner = CliRunner()


@pytest.fixture
def tiny_photos(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        photo = small_photo(name, (64, 64))
        iio.imwrite(folder / f"{name}.png", photo)
        iio.imwrite(folder / f"{name}_flip.jpg", photo[:, ::-1], quality=95)
    return folder


def options(tmp_path, data, **kw):
    base = dict(arch=1, data=str(data), out=str(tmp_path / "run"), epochs=3, lr=1e-2, batch_size=4, crop=32,
                warmup_epochs=0)
    return TrainOptions(**{**base, **kw})


def test_tiny_run_lowers_the_loss_and_writes_checkpoints_and_plot(tmp_path, tiny_photos):
    history = train_network(options(tmp_path, tiny_photos), log=lambda m: None)
    assert len(history.train_loss) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "losses.json", "loss.png"):
        assert (run / name).is_file()
    assert iio.imread(run / "loss.png").ndim == 3
    losses = json.loads((run / "losses.json").read_text())
    assert losses["train_loss"] == pytest.approx(history.train_loss)
    state = read_checkpoint(run / "last.pt")
    assert state["epoch"] == 3 and state["arch"] == 1 and state["options"]["crop"] == 32
    assert "optimizer" in state and state["version"]


def test_resume_continues_to_the_requested_epoch_with_the_same_history(tmp_path, tiny_photos):
    first = train_network(options(tmp_path, tiny_photos, epochs=2), log=lambda m: None)
    resumed = train_network(options(tmp_path, tiny_photos, epochs=3), resume=tmp_path / "run" / "last.pt", log=lambda m: None)
    assert resumed.train_loss[:2] == first.train_loss
    assert len(resumed.train_loss) == 3
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 3


def test_ctrl_c_saves_last_pt_and_resume_is_exact(tmp_path, tiny_photos):
    """Interrupted in the middle of epoch 2, then resumed == three epochs straight."""
    straight = train_network(options(tmp_path / "a", tiny_photos), log=lambda m: None)

    def interrupt(epoch, step, steps):
        if (epoch, step) == (1, 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_network(options(tmp_path / "b", tiny_photos), log=lambda m: None, progress=interrupt)
    saved = read_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert (saved["epoch"], saved["step"]) == (1, 1)
    train_network(options(tmp_path / "b", tiny_photos), resume=tmp_path / "b" / "run" / "last.pt", log=lambda m: None)
    resumed = read_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert resumed["history"]["train_loss"] == pytest.approx(straight.train_loss, rel=1e-5)
    assert resumed["history"]["val_loss"] == pytest.approx(straight.val_loss, rel=1e-5)


def test_cli_train_export_then_batch_uses_the_weights(tmp_path, tiny_photos):
    models = tmp_path / "models"
    result = runner.invoke(app, ["train", "--arch", "3", "--data", str(tiny_photos), "--epochs", "1", "--crop", "32",
                                 "--batch-size", "4", "--out", str(tmp_path / "run"),
                                 "--export", str(models / "arch3.pt")])
    assert result.exit_code == 0, result.output
    state, meta = read_weights(models / "arch3.pt")
    assert meta["arch"] == 3 and meta["storage"] == "float16"
    manifest = json.loads((models / "manifest.json").read_text())
    assert len(manifest["arch3.pt"]["sha256"]) == 64
    # fp16 storage gives the same outputs as the fp32 checkpoint, within 1e-3
    exported, _ = load_network(None, models / "arch3.pt")
    trained, _ = load_network(None, tmp_path / "run" / "best.pt")
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (exported(x) - trained(x)).abs().max() < 1e-3
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(tiny_photos), str(out), "--weights", str(models / "arch3.pt")])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 4


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_checkpoint_gives_a_clear_error(tmp_path, tiny_photos, damage):
    train_network(options(tmp_path, tiny_photos, epochs=1), log=lambda m: None)
    last = tmp_path / "run" / "last.pt"
    blob = last.read_bytes()
    last.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(last)
    result = runner.invoke(app, ["train", "--resume", str(last)])
    assert result.exit_code == 2
    assert "last.pt" in result.output and "Traceback" not in result.output


def test_init_starts_from_given_weights(tmp_path, tiny_photos, weights_dir):
    train_network(options(tmp_path, tiny_photos, epochs=1, lr=1e-12, init=str(weights_dir / "arch1.pt")), log=lambda m: None)
    trained = read_checkpoint(tmp_path / "run" / "last.pt")["model"]
    start, _ = load_network(1, weights_dir / "arch1.pt")
    for name, value in start.state_dict().items():
        if value.is_floating_point() and "running" not in name:
            assert torch.allclose(trained[name], value, atol=1e-6), name


def test_init_with_the_wrong_network_is_a_clear_error(tmp_path, tiny_photos, weights_dir):
    result = runner.invoke(app, ["train", "--arch", "1", "--data", str(tiny_photos), "--epochs", "1",
                                 "--out", str(tmp_path / "run"), "--init", str(weights_dir / "arch6.pt")])
    assert result.exit_code == 2
    assert "arch6.pt" in result.output and "network 6" in result.output


def test_huber_is_squared_below_delta_and_linear_above():
    from colorize_cli.train import loss_fn

    huber = loss_fn("huber", huber_delta=0.2)
    zero = torch.zeros(1, 3, 1, 1)  # the true LAB: a, b of 0
    small, large = torch.full((1, 2, 1, 1), 0.1), torch.full((1, 2, 1, 1), 1.2)
    assert huber(small, zero).item() == pytest.approx(0.5 * 0.1**2 / 0.2)
    assert huber(large, zero).item() == pytest.approx(1.2 - 0.1)
    assert loss_fn("mse")(large, zero).item() == pytest.approx(1.44)


def test_cast_loss_charges_a_shift_of_the_whole_crop_and_not_errors_that_average_out():
    from colorize_cli.train import loss_fn

    cast = loss_fn("cast", cast_weight=3.0)
    truth = torch.zeros(2, 3, 4, 4)
    shifted = torch.full((2, 2, 4, 4), 0.1)  # a cast: every pixel off by the same 0.1
    checkered = torch.full((2, 2, 4, 4), 0.1)
    checkered[..., ::2, :] = -0.1  # the same error per pixel, but the crop's mean is right
    assert cast(shifted, truth).item() == pytest.approx(0.01 + 3.0 * 0.01)
    assert cast(checkered, truth).item() == pytest.approx(0.01)
    assert loss_fn("mse")(shifted, truth).item() == pytest.approx(loss_fn("mse")(checkered, truth).item())


def test_rgb_loss_is_the_mse_of_the_srgb_colours_a_photo_is_scored_in():
    from colorize_cli.color import lab_to_rgb, scale_ab
    from colorize_cli.train import loss_fn

    rng = np.random.default_rng(0)
    truth = np.stack([rng.uniform(5, 95, (8, 8)), rng.uniform(-60, 60, (8, 8)), rng.uniform(-60, 60, (8, 8))], -1)
    guess = truth.copy()
    guess[..., 1:] = rng.uniform(-100, 100, (8, 8, 2))  # some far outside sRGB: clipped, as batch clips them
    as_tensor = lambda lab: torch.from_numpy(lab.astype(np.float32)).permute(2, 0, 1)[None]
    rgb = loss_fn("rgb")
    expected = np.mean((lab_to_rgb(guess) - lab_to_rgb(truth)) ** 2)
    assert rgb(scale_ab(as_tensor(guess)[:, 1:]), as_tensor(truth)).item() == pytest.approx(expected, rel=1e-3)
    assert rgb(scale_ab(as_tensor(truth)[:, 1:]), as_tensor(truth)).item() == pytest.approx(0, abs=1e-9)


def test_psnr_loss_is_minus_the_mean_psnr_of_the_crops_in_srgb():
    from colorize_cli.color import lab_to_rgb, scale_ab
    from colorize_cli.train import PSNR_LOSS_FLOOR, loss_fn

    rng = np.random.default_rng(1)
    grey = np.stack([rng.uniform(20, 80, (8, 8)), np.zeros((8, 8)), np.zeros((8, 8))], -1)
    colourful = grey.copy()
    colourful[..., 1:] = rng.uniform(-40, 40, (8, 8, 2))
    truth = np.stack([grey, colourful])
    guess = truth.copy()
    guess[..., 2] += 10  # the same yellow cast on both crops
    as_tensor = lambda lab: torch.from_numpy(lab.astype(np.float32)).permute(0, 3, 1, 2)
    crop_mse = [np.mean((lab_to_rgb(g) - lab_to_rgb(t)) ** 2) for g, t in zip(guess, truth)]
    expected = np.mean([10 * np.log10(m + PSNR_LOSS_FLOOR) for m in crop_mse])
    psnr = loss_fn("psnr")
    assert psnr(scale_ab(as_tensor(guess)[:, 1:]), as_tensor(truth)).item() == pytest.approx(expected, rel=1e-3)
    assert psnr(scale_ab(as_tensor(truth)[:, 1:]), as_tensor(truth)).item() == pytest.approx(-40, abs=1e-3)


@pytest.mark.parametrize("loss", ["cast", "rgb", "psnr"])
def test_training_with_each_new_loss_lowers_it(tmp_path, tiny_photos, loss):
    history = train_network(options(tmp_path, tiny_photos, loss=loss), log=lambda m: None)
    assert history.train_loss[-1] < history.train_loss[0]


def test_cast_weight_is_kept_by_a_resumed_run(tmp_path, tiny_photos):
    from colorize_cli.train import options_from_checkpoint

    train_network(options(tmp_path, tiny_photos, epochs=1, loss="cast", cast_weight=5.0), log=lambda m: None)
    last = tmp_path / "run" / "last.pt"
    assert options_from_checkpoint(last, {}).cast_weight == 5.0


def test_resume_keeps_each_runs_huber_delta(tmp_path, tiny_photos):
    from colorize_cli.train import options_from_checkpoint

    train_network(options(tmp_path, tiny_photos, epochs=1, huber_delta=0.3), log=lambda m: None)
    last = tmp_path / "run" / "last.pt"
    assert options_from_checkpoint(last, {}).huber_delta == 0.3
    assert options_from_checkpoint(last, {"huber_delta": 0.2}).huber_delta == 0.2


@pytest.mark.skipif(not __import__("colorize_cli.predictor", fromlist=["x"]).cpu_runs_bfloat16(),
                    reason="this CPU has no native bfloat16")
def test_bfloat16_training_on_cpu_lowers_the_loss(tmp_path, tiny_photos):
    history = train_network(options(tmp_path, tiny_photos, precision="bfloat16", epochs=4), log=lambda m: None)
    assert history.train_loss[-1] < history.train_loss[0]


def test_auto_precision_is_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    from colorize_cli import train as training

    cpu = torch.device("cpu")
    monkeypatch.setattr(training, "cpu_runs_bfloat16", lambda: True)
    assert training.training_precision("auto", cpu) == torch.bfloat16
    assert training.training_precision("float32", cpu) == torch.float32
    monkeypatch.setattr(training, "cpu_runs_bfloat16", lambda: False)
    assert training.training_precision("auto", cpu) == torch.float32
    with pytest.raises(ValueError, match="float16"):
        training.training_precision("float16", cpu)


def test_the_moving_average_is_what_export_writes(tmp_path, tiny_photos):
    from colorize_cli.train import export_weights

    train_network(options(tmp_path, tiny_photos, epochs=2, ema_decay=0.9), log=lambda m: None)
    state = read_checkpoint(tmp_path / "run" / "best.pt")
    raw, average = state["model"], state["average"]
    name = next(k for k, v in raw.items() if v.is_floating_point() and v.numel() >= 4096)
    assert not torch.allclose(raw[name], average[name])  # the average lags the raw weights
    export_weights(tmp_path / "run" / "best.pt", tmp_path / "arch1.pt")
    exported, meta = read_weights(tmp_path / "arch1.pt")
    assert meta["averaged"] is True
    assert torch.allclose(exported[name].float(), average[name], atol=1e-3)
    assert not torch.allclose(exported[name].float(), raw[name], atol=1e-3)


def test_without_a_moving_average_export_writes_the_raw_weights(tmp_path, tiny_photos):
    from colorize_cli.train import export_weights

    train_network(options(tmp_path, tiny_photos, epochs=1, ema_decay=0), log=lambda m: None)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert state["average"] is None
    export_weights(tmp_path / "run" / "last.pt", tmp_path / "arch1.pt")
    exported, meta = read_weights(tmp_path / "arch1.pt")
    assert meta["averaged"] is False
    assert all(torch.allclose(exported[k].float(), v, atol=1e-2) for k, v in state["model"].items()
               if v.is_floating_point())


def test_the_moving_average_resumes_exactly(tmp_path, tiny_photos):
    def interrupt(epoch, step, steps):
        if (epoch, step) == (1, 1):
            raise KeyboardInterrupt

    train_network(options(tmp_path / "a", tiny_photos, ema_decay=0.9), log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        train_network(options(tmp_path / "b", tiny_photos, ema_decay=0.9), log=lambda m: None, progress=interrupt)
    train_network(options(tmp_path / "b", tiny_photos, ema_decay=0.9), resume=tmp_path / "b" / "run" / "last.pt",
          log=lambda m: None)
    straight = read_checkpoint(tmp_path / "a" / "run" / "last.pt")["average"]
    resumed = read_checkpoint(tmp_path / "b" / "run" / "last.pt")["average"]
    assert all(torch.allclose(straight[k].float(), resumed[k].float(), atol=1e-5) for k in straight)


def test_whole_photo_fitting_trains_on_the_design_input(tmp_path, tiny_photos):
    history = train_network(options(tmp_path, tiny_photos, epochs=2, crop=48, fit=True), log=lambda m: None)
    assert len(history.train_loss) == 2 and all(np.isfinite(history.train_loss))


def test_batchnorm_recalibration_uses_the_plain_statistics_of_all_batches():
    from colorize_cli.train import recalibrate_batchnorm

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3)).eval()
    batches = [torch.randn(4, 1, 8, 8) * (i + 1) + i for i in range(5)]
    recalibrate_batchnorm(net, batches)
    with torch.no_grad():
        features = [net[0](b) for b in batches]
    norm = net[1]
    assert torch.allclose(norm.running_mean, torch.cat(features).mean((0, 2, 3)), atol=1e-5)  # equal batches
    batch_vars = torch.stack([f.var((0, 2, 3), unbiased=True) for f in features])
    assert torch.allclose(norm.running_var, batch_vars.mean(0), rtol=1e-4)
    assert norm.momentum == 0.1 and not net.training  # put back as it was


def test_the_exported_average_carries_statistics_of_its_own(tmp_path, tiny_photos):
    from colorize_cli.train import CALIBRATION_BATCHES

    train_network(options(tmp_path, tiny_photos, epochs=2, ema_decay=0.9), log=lambda m: None)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    tracked = [v for k, v in state["average"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == CALIBRATION_BATCHES for v in tracked)  # not the raw network's copied ones
    assert all(int(v) == 2 * 2 for k, v in state["model"].items() if k.endswith("num_batches_tracked"))


def test_a_run_stopped_mid_epoch_keeps_the_averages_own_statistics(tmp_path, tiny_photos):
    from colorize_cli.train import CALIBRATION_BATCHES

    def interrupt(epoch, step, steps):
        if (epoch, step) == (1, 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_network(options(tmp_path, tiny_photos, epochs=2, ema_decay=0.9), log=lambda m: None, progress=interrupt)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    tracked = [int(v) for k, v in state["average"].items() if k.endswith("num_batches_tracked")]
    assert tracked and set(tracked) == {CALIBRATION_BATCHES}  # epoch 1's calibration, not the raw network's 3 steps
    assert all(int(v) == 3 for k, v in state["model"].items() if k.endswith("num_batches_tracked"))
