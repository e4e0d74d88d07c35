"""Training: photos in memory, source-balanced random crops, Adam, a moving average of the weights, exact resume."""

import copy
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from colorize_cli import __version__, ddp
from colorize_cli.color import lab_of_pixels, scale_ab, scale_l, srgb_of_lab_tensor, unscale_ab
from colorize_cli.files import atomic_path, write_text_atomic
from colorize_cli.metrics import pixels_mse, psnr_of_mse
from colorize_cli.predictor import Colorizer, cpu_runs_bfloat16, pick_precision
from colorize_cli.process import configure_process
from colorize_cli.registry import DEFAULT_ARCH, build_network, load_network, load_tensors, unreadable_reason, write_weights
from colorize_cli.training_data import draw, fitted_photos, load_photos, random_crops, shrink_to_render_size

LOSSES = ("psnr", "rgb", "mse", "huber", "cast")


@dataclass
class TrainOptions:
    arch: int = DEFAULT_ARCH
    data: str | None = None
    val: str | None = None
    out: str = "runs/train"
    epochs: int = 60
    epoch_size: int | None = None  # crops drawn per epoch (default: the number of training photos)
    lr: float = 1e-3
    batch_size: int = 32
    crop: int = 128
    fit: bool = False  # whole photos resized to crop x crop (the design's input) instead of random crops
    render_size: int = 0  # crops cut from each photo as resize mode fits it (larger ones shrunk to about NxN); 0: as stored
    balanced: bool = True  # each source folder drawn equally often
    ema_decay: float = 0.999  # moving average of the weights, validated and exported; 0: the raw weights
    seed: int = 0
    threads: int = 0  # torch threads (0: torch's default)
    device: str = "auto"
    precision: str = "auto"
    loss: str = "psnr"  # of the losses measured, the one that trained the shipped network 6 (models/README.md)
    huber_delta: float = 0.2
    cast_weight: float = 3.0  # for --loss cast: weight of the squared error of each crop's mean a, b
    warmup_epochs: int = 1
    init: str | None = None  # start from these weights (fine-tuning); the optimizer and schedule start afresh


@dataclass
class History:
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_psnr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)


class CheckpointError(Exception):
    """A checkpoint cannot be read or does not belong to this run."""


class ExportError(Exception):
    """The trained weights cannot be written where --export says; the checkpoints are kept."""


# --loss psnr: added to each crop's MSE, so PSNR saturates near 40 dB and a crop already almost right is not chased
PSNR_LOSS_FLOOR = 1e-4


def srgb_squared_error(pred, lab):
    """Per-pixel squared error of the sRGB colours that predicted scaled a, b make with the true L."""
    predicted = torch.cat([lab[:, :1], unscale_ab(pred.float())], 1)
    return (srgb_of_lab_tensor(predicted) - srgb_of_lab_tensor(lab)).square()


def loss_fn(name: str, huber_delta: float = TrainOptions.huber_delta, cast_weight: float = TrainOptions.cast_weight):
    """Loss of predicted scaled a, b (N2HW) against the true LAB (N3HW): the design's MSE; Huber (squared
    below the delta, linear above); MSE plus the squared error of each image's mean a, b, so that a colour
    cast over the whole crop costs more; MSE of the sRGB they make with the true L, as photos are scored; or minus
    each crop's PSNR in sRGB, averaged, as test sets are scored (photo by photo), so a cast on a nearly grey photo
    costs as much as its effect on that photo's PSNR."""
    if name == "mse":
        return lambda pred, lab: F.mse_loss(pred.float(), scale_ab(lab[:, 1:]))
    if name == "huber":
        return lambda pred, lab: F.huber_loss(pred.float(), scale_ab(lab[:, 1:]), delta=huber_delta) / huber_delta
    if name == "cast":
        def mse_and_cast(pred, lab):
            pred, target = pred.float(), scale_ab(lab[:, 1:])
            return F.mse_loss(pred, target) + cast_weight * F.mse_loss(pred.mean((2, 3)), target.mean((2, 3)))
        return mse_and_cast
    if name == "rgb":
        return lambda pred, lab: srgb_squared_error(pred, lab).mean()
    if name == "psnr":
        def minus_crop_psnr(pred, lab):
            per_crop = srgb_squared_error(pred, lab).mean((1, 2, 3))
            return 10 * torch.log10(per_crop + PSNR_LOSS_FLOOR).mean()
        return minus_crop_psnr
    raise ValueError(f"--loss {name}: choose one of {', '.join(LOSSES)}")


def validate(net, photos: list[np.ndarray], criterion, device) -> tuple[float, float]:
    """Validation loss on scaled a, b and mean PSNR, on the path `colorize eval` measures: each photo whole,
    through Colorizer.colorize at its own size."""
    colorizer = Colorizer(net, device, precision="float32")  # as batch on CPU; best.pt is chosen by it
    losses, psnrs = [], []
    for photo in photos:
        (colorized,) = colorizer.colorize([photo])
        predicted = torch.from_numpy(np.asarray(colorized.ab)).permute(2, 0, 1)[None]
        truth = torch.from_numpy(lab_of_pixels(photo)).permute(2, 0, 1)[None]
        losses.append(criterion(scale_ab(predicted), truth).item())
        psnrs.append(psnr_of_mse(pixels_mse(colorized.pixels, photo)))
    net.train()
    return float(np.mean(losses)), float(np.mean(psnrs))


def learning_rate(opts: TrainOptions, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 1% over all epochs (a function of the step: resumes exactly)."""
    total = opts.epochs * steps_per_epoch
    warm = opts.warmup_epochs * steps_per_epoch
    if step < warm:
        return opts.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return opts.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


class WeightAverage:
    """Exponential moving average of a network's weights: what gets exported (its BatchNorm statistics are set by
    recalibrate_batchnorm for these weights, never copied from the raw network's last batches)."""

    def __init__(self, net: torch.nn.Module, decay: float):
        self.decay = decay
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # short memory at first, while the weights move most
        torch._foreach_lerp_(list(self.net.parameters()), list(net.parameters()), 1 - decay)


# how best_val_loss is measured; a resumed run measured otherwise starts its best afresh (before: "whole photos",
# squeezed to 400x400 with the raw weights' BatchNorm statistics)
VALIDATED_ON = "whole photos at their own aspect, BatchNorm recalibrated"
CALIBRATION_BATCHES = 50  # training batches whose BatchNorm statistics the validated network uses


@torch.no_grad()
def recalibrate_batchnorm(net: torch.nn.Module, batches) -> None:
    """Set every BatchNorm's running statistics to the plain mean over `batches` (N1HW scaled L), for these weights.

    The copied statistics belong to the raw weights and to the last few batches only; with them the
    network's overall colour shifts from epoch to epoch.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta, was_training = [m.momentum for m in norms], net.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for l in batches:
        net(l)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.train(was_training)


def save_checkpoint(path: Path, net, average, optimizer, at: dict, history: History, best: float, opts) -> None:
    """A plain dict with everything needed to rebuild and resume: `at` is the epoch and step reached."""
    blob = {
        "model": net.state_dict(),
        "average": average.net.state_dict() if average else None,
        "optimizer": optimizer.state_dict(),
        "epoch": at["epoch"],
        "step": at["step"],
        "partial_loss": at["total"],
        "partial_seen": at["seen"],
        "history": asdict(history),
        "best_val_loss": best,
        "validated_on": VALIDATED_ON,
        "arch": opts.arch,
        "options": asdict(opts),
        "version": __version__,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def read_checkpoint(path: Path) -> dict:
    try:
        blob = load_tensors(Path(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({unreadable_reason(exc)})") from None
    if not isinstance(blob, dict) or not {"model", "optimizer", "epoch", "options"} <= blob.keys():
        raise CheckpointError(f"{path}: not a colorize training checkpoint")
    return blob


def train_network(opts: TrainOptions, resume: Path | None = None, log=print, progress=None) -> History:
    """Train network `opts.arch`; write last.pt, best.pt, losses.json and loss.png into `opts.out`.

    Under torchrun (WORLD_SIZE > 1) every process trains a DistributedDataParallel copy on its own random
    draws, and `opts.batch_size` stays the crops per step over all of them (batch_size // processes each), so
    runs compare with single-process ones. Process 0
    alone validates, logs and writes the run folder; the checkpoint holds the plain network, not the wrapper.
    """
    configure_process()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    with ddp.process_group(opts.device) as world:
        return _train(opts, world, resume, log if world.main else lambda message: None, progress)


def training_precision(name: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 autocast on CPUs that compute it natively, float16 AMP on CUDA, float32 elsewhere."""
    if name == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_runs_bfloat16() else torch.float32
        return torch.float16 if device.type == "cuda" else torch.float32
    return pick_precision(name, device)


def training_batch(photo_set, indices, opts: TrainOptions, rng: np.random.Generator) -> torch.Tensor:
    """The LAB batch of one step (NCHW, channels-last in memory): random crops, or whole photos fitted."""
    photos = [photo_set.photos[i] for i in indices]
    lab = fitted_photos(photos, opts.crop, rng) if opts.fit else random_crops(photos, opts.crop, rng)
    return torch.from_numpy(lab)


def calibration_batches(photo_set, opts: TrainOptions, epoch: int, batch: int, device, memory_format):
    """The scaled L of CALIBRATION_BATCHES training batches, drawn alike in every process."""
    rng = np.random.default_rng([opts.seed, epoch, 0, 1])
    for _ in range(CALIBRATION_BATCHES):
        lab = training_batch(photo_set, draw(photo_set, batch, opts.balanced, rng), opts, rng)
        yield scale_l(lab[:, :1]).to(device, memory_format=memory_format)


def _train(opts: TrainOptions, world: ddp.World, resume: Path | None, log, progress) -> History:
    from colorize_cli.plots import plot_losses

    torch.manual_seed(opts.seed)
    device = world.device
    dtype = training_precision(opts.precision, device)
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    net = build_network(opts.arch).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=opts.lr)
    history, start_epoch, start_step, partial, best = History(), 0, 0, (0.0, 0), math.inf
    state = read_checkpoint(resume) if resume else None
    if state:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        start_epoch, start_step = state["epoch"], state.get("step", 0)
        best = state["best_val_loss"] if state.get("validated_on") == VALIDATED_ON else math.inf
        partial = (state.get("partial_loss", 0.0), state.get("partial_seen", 0))
    elif opts.init:
        net.load_state_dict(load_network(opts.arch, Path(opts.init))[0].state_dict())
    average = WeightAverage(net, opts.ema_decay) if opts.ema_decay > 0 else None
    if average and state and state.get("average"):
        average.net.load_state_dict(state["average"])
    model = world.wrap(net)
    if opts.data is None:
        raise ValueError("--data is required: a folder of colour photos")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    photo_set = load_photos(Path(opts.data), log)
    if opts.val:
        val_photos = load_photos(Path(opts.val), log).photos
    else:
        val_photos = photo_set.photos[: max(1, len(photo_set) // 10)]
    if opts.render_size and not opts.fit:  # after taking validation photos, which stay as stored
        shrink_to_render_size(photo_set, opts.render_size)
    criterion = loss_fn(opts.loss, opts.huber_delta, opts.cast_weight)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    batch = max(1, opts.batch_size // world.size)  # per process
    epoch_size = opts.epoch_size or len(photo_set)
    steps_per_epoch = math.ceil(epoch_size / (batch * world.size))
    processes = f" x {world.size} processes of {batch} crops a step" if world.size > 1 else ""
    sampling = "each folder equally likely" if opts.balanced else "each photo equally likely"
    log(f"network {opts.arch}: {len(photo_set)} training photos ({photo_set.nbytes / 2**30:.2f} GiB, "
        f"{len(photo_set.sources)} folders, {sampling}), {len(val_photos)} validation, device {device} in "
        f"{str(dtype).removeprefix('torch.')}{processes}, epochs {start_epoch}->{opts.epochs}, "
        f"{steps_per_epoch} steps each")

    step_state = {"epoch": start_epoch, "step": start_step, "total": partial[0], "seen": partial[1]}
    previous = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, signal.default_int_handler)
    save = lambda path: save_checkpoint(path, net, average, optimizer, step_state, history, best, opts)
    try:
        net.train()
        for epoch in range(start_epoch, opts.epochs):
            t0 = time.perf_counter()
            first = step_state["step"] if epoch == start_epoch else 0
            total, seen = (step_state["total"], step_state["seen"]) if first else (0.0, 0)
            for s in range(first, steps_per_epoch):
                key = [opts.seed, epoch, s] if world.size == 1 else [opts.seed, epoch, s, world.rank]
                rng = np.random.default_rng(key)  # per step, so a resume mid-epoch is exact
                idx = draw(photo_set, batch, opts.balanced, rng)
                lab = training_batch(photo_set, idx, opts, rng).to(device, memory_format=memory_format)
                step = epoch * steps_per_epoch + s
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(opts, step, steps_per_epoch)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    loss = criterion(model(scale_l(lab[:, :1])), lab)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if average:
                    average.update(net, step)
                step_total, step_seen = world.sum(loss.item() * len(idx), len(idx))
                total += step_total
                seen += int(step_seen)
                step_state.update(epoch=epoch, step=s + 1, total=total, seen=seen)
                if progress:
                    progress(epoch, s + 1, steps_per_epoch)
            validated = average.net if average else net
            recalibrate_batchnorm(validated, calibration_batches(photo_set, opts, epoch, batch, device, memory_format))
            val_loss, val_psnr = world.from_main(lambda: validate(validated, val_photos, criterion, device))
            if average:
                average.net.eval()
            history.train_loss.append(total / seen)
            history.val_loss.append(val_loss)
            history.val_psnr.append(val_psnr)
            history.seconds.append(time.perf_counter() - t0)
            improved = val_loss < best
            best = min(best, val_loss)
            step_state.update(epoch=epoch + 1, step=0, total=0.0, seen=0)
            if world.main:
                save(out / "last.pt")
                if improved:
                    save(out / "best.pt")
                write_text_atomic(out / "losses.json", json.dumps(asdict(history), indent=1))
                plot_losses(history, out / "loss.png", title=f"network {opts.arch}")
            log(f"epoch {epoch + 1}/{opts.epochs}  train {history.train_loss[-1]:.5f}  val {val_loss:.5f}  "
                f"val PSNR {val_psnr:.2f} dB  {history.seconds[-1]:.1f}s{'  *best' if improved else ''}")
    except KeyboardInterrupt:
        for sig in (signal.SIGINT, signal.SIGTERM):  # torchrun passes Ctrl-C on once more: finish the save
            signal.signal(sig, signal.SIG_IGN)
        if world.main:
            save(out / "last.pt")
        log(f"interrupted: saved {out / 'last.pt'} at epoch {step_state['epoch'] + 1}, step {step_state['step']}; "
            f"continue with --resume {out / 'last.pt'}")
        raise
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    return history


def options_given(given: dict, resume: Path | None = None) -> TrainOptions:
    """The options of a run: those given (None: not given) over the resumed checkpoint's, or the defaults."""
    if resume:
        return options_from_checkpoint(resume, given)
    opts = TrainOptions(**{k: v for k, v in given.items() if v is not None})
    if opts.out == TrainOptions.out:
        opts.out = f"runs/arch{opts.arch}"
    if opts.data is None:
        raise ValueError("--data is required (or set COLORIZE_DATA): a folder of colour photos")
    return opts


def train_and_export(opts: TrainOptions, resume: Path | None = None, export: Path | None = None, log=print) -> dict | None:
    """The whole of `colorize train` in one process: train, then export best.pt's weights to `export` (process
    0 only); returns the manifest entry written, if any. A failed export raises ExportError naming what is kept."""
    train_network(opts, resume=resume, log=log)
    if not export or not ddp.is_main_process():
        return None
    best = Path(opts.out) / "best.pt"
    try:
        return export_weights(best, export)
    except OSError as exc:
        raise ExportError(f"{export}: cannot export ({exc.strerror or exc}); {best} and last.pt are kept: export again "
                      f"with colorize train --resume {Path(opts.out) / 'last.pt'} --export PATH") from None


def options_from_checkpoint(path: Path, overrides: dict) -> TrainOptions:
    """The options a checkpoint was trained with, updated with those given again on the command line."""
    saved = dict(read_checkpoint(path)["options"])
    if "workers" in saved:  # a checkpoint from before --threads
        saved.setdefault("threads", saved.pop("workers"))
    fields = TrainOptions.__dataclass_fields__
    merged = {k: v for k, v in saved.items() if k in fields}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return TrainOptions(**merged)


def export_weights(checkpoint: Path, dest: Path, half: bool = True) -> dict:
    """Write a checkpoint's network as a weights-only file and record it in manifest.json beside it."""
    state = read_checkpoint(checkpoint)
    net = build_network(state["arch"])
    net.load_state_dict(state.get("average") or state["model"])
    history = state["history"]
    meta = {
        "epochs": state["epoch"],
        "version": state.get("version"),
        "loss": state["options"].get("loss"),
        "crop": state["options"].get("crop"),
        "averaged": bool(state.get("average")),
        "val_loss": history["val_loss"][-1] if history["val_loss"] else None,
        "val_psnr": history["val_psnr"][-1] if history["val_psnr"] else None,
    }
    return write_weights(net, state["arch"], dest, meta, half)
