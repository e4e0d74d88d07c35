"""Training: cached LAB photos, random crops, Adam, checkpoints that resume exactly, weights export."""

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import joblib
import numpy as np
import torch
import torch.nn.functional as F
from skimage.filters import gaussian

from colorize_cli import __version__, distributed
from colorize_cli.colour import lab_to_rgb, rgb_to_lab, scale_ab, scale_l, unscale_ab
from colorize_cli.decode import decode
from colorize_cli.files import atomic_path, walk_images, write_text_atomic
from colorize_cli.predictor import NETWORK_SIDE, resize_plane
from colorize_cli.registry import build_network, load_network, write_weights

LOSSES = ("mse", "huber", "rebalanced")
AB_BIN = 10.0  # a, b histogram bin width for the rebalanced loss (Zhang et al. 2016 use 10)
AB_BINS = 24  # bins per axis, covering a, b in [-120, 120)


@dataclass
class TrainOptions:
    arch: int = 6
    data: str | None = None
    val: str | None = None
    out: str = "runs/train"
    epochs: int = 60
    lr: float = 1e-3
    batch_size: int = 32
    crop: int = 128
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    amp: bool = True
    loss: str = "huber"  # of the losses measured, the one that meets the quality bar (models/README.md)
    rebalance_lambda: float = 0.5
    huber_delta: float = 0.2
    warmup_epochs: int = 1
    cache: str | None = None
    init: str | None = None  # start from these weights (fine-tuning); the optimizer and schedule start afresh


@dataclass
class History:
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_psnr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)


class CheckpointError(Exception):
    """A checkpoint cannot be read or does not belong to this run."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("COLORIZE_CACHE", Path.home() / ".cache" / "colorize"))


def _lab_of(path: str, size: int, mtime_ns: int) -> np.ndarray:
    """LAB of one photo as float16 (cached on disk by path, size and mtime)."""
    image = decode(Path(path))
    rgb = np.repeat(image.grey[..., None], 3, axis=2) if image.is_grey else image.rgb
    return rgb_to_lab(rgb).astype(np.float16)


def load_lab_photos(root: Path, cache_dir: Path | None, log=print) -> list[np.ndarray]:
    """Every image under `root` as LAB, decoded and converted once, then from the cache."""
    paths = walk_images(Path(root))
    if not paths:
        raise FileNotFoundError(f"{root}: no images found")
    cached = joblib.Memory(str(cache_dir or default_cache_dir()), verbose=0).cache(_lab_of)
    photos = []
    for p in paths:
        st = p.stat()
        try:
            photos.append(cached(str(p.resolve()), st.st_size, st.st_mtime_ns))
        except Exception as exc:  # one bad photo must not stop training
            log(f"warning: {p}: skipped ({exc})")
    return photos


def random_crops(photos, crop: int, rng: np.random.Generator) -> np.ndarray:
    """One random crop (and coin-flip mirror) of side `crop` per photo -> Nx3xCxC float32 LAB."""
    out = np.empty((len(photos), 3, crop, crop), np.float32)
    for i, lab in enumerate(photos):
        h, w = lab.shape[:2]
        if h < crop or w < crop:
            lab = np.pad(lab, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="reflect")
            h, w = lab.shape[:2]
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        patch = lab[y : y + crop, x : x + crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[i] = patch.transpose(2, 0, 1)
    return out


def fitted_val_set(photos_rgb) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Validation photos fitted to the network's 400x400 input: LAB tensor and RGB ground truth."""
    labs, rgbs = [], []
    for rgb in photos_rgb:
        t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        fitted = resize_plane(t, (NETWORK_SIDE, NETWORK_SIDE))[0].permute(1, 2, 0).clamp(0, 1).numpy()
        rgbs.append(fitted)
        labs.append(torch.from_numpy(rgb_to_lab(fitted).transpose(2, 0, 1).copy()))
    return torch.stack(labs), rgbs


def ab_prior_weights(photos, lam: float) -> torch.Tensor:
    """Per-bin weights that favour rare a, b (class rebalancing, Zhang et al. 2016), mean 1 over pixels."""
    counts = np.zeros((AB_BINS, AB_BINS))
    for lab in photos:
        ab = lab[::4, ::4, 1:].reshape(-1, 2).astype(np.float32)
        idx = np.clip(((ab + AB_BIN * AB_BINS / 2) // AB_BIN).astype(int), 0, AB_BINS - 1)
        np.add.at(counts, (idx[:, 0], idx[:, 1]), 1)
    p = counts / counts.sum()
    p = gaussian(p, sigma=0.5, mode="constant", preserve_range=True)
    seen = counts > 0
    w = 1.0 / ((1 - lam) * p + lam / seen.sum())
    w = w / (p * w).sum()
    w[~seen] = w[seen].max()
    return torch.tensor(w, dtype=torch.float32)


def loss_fn(name: str, prior: torch.Tensor | None, huber_delta: float = TrainOptions.huber_delta):
    """Loss on scaled a, b: the design's MSE, Huber, or MSE weighted by the rarity of the true a, b."""
    if name == "mse":
        return lambda pred, target: F.mse_loss(pred, target)
    if name == "huber":
        return lambda pred, target: F.huber_loss(pred, target, delta=huber_delta) / huber_delta
    if name == "rebalanced":

        def rebalanced(pred, target):
            ab = unscale_ab(target.float())
            idx = torch.clamp(((ab + AB_BIN * AB_BINS / 2) // AB_BIN).long(), 0, AB_BINS - 1)
            w = prior.to(target.device)[idx[:, 0], idx[:, 1]]
            return (w[:, None] * (pred.float() - target.float()) ** 2).mean()

        return rebalanced
    raise ValueError(f"--loss {name}: choose one of {', '.join(LOSSES)}")


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.inference_mode()
def validate(net, val_lab: torch.Tensor, val_rgb, criterion, device) -> tuple[float, float]:
    """Validation loss on scaled a, b, and mean PSNR of the design's RGB error."""
    net.eval()
    losses, psnrs = [], []
    for i in range(0, len(val_lab), 8):
        lab = val_lab[i : i + 8].to(device)
        pred = net(scale_l(lab[:, :1]))
        losses.append(criterion(pred, scale_ab(lab[:, 1:])).item() * len(lab))
        ab = unscale_ab(pred).float().cpu().numpy()
        for j, rgb_true in enumerate(val_rgb[i : i + 8]):
            lab_pred = np.concatenate([lab[j, :1].cpu().numpy(), ab[j]]).transpose(1, 2, 0)
            psnrs.append(psnr(float(np.mean((lab_to_rgb(lab_pred) - rgb_true) ** 2))))
    net.train()
    return sum(losses) / len(val_lab), float(np.mean(psnrs))


def learning_rate(opts: TrainOptions, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 1% over all epochs (a function of the step: resumes exactly)."""
    total = opts.epochs * steps_per_epoch
    warm = opts.warmup_epochs * steps_per_epoch
    if step < warm:
        return opts.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return opts.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def save_checkpoint(path: Path, net, optimizer, at: dict, history: History, best: float, opts, prior) -> None:
    """A plain dict with everything needed to rebuild and resume: `at` is the epoch and step reached."""
    blob = {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": at["epoch"],
        "step": at["step"],
        "partial_loss": at["total"],
        "partial_seen": at["seen"],
        "history": asdict(history),
        "best_val_loss": best,
        "arch": opts.arch,
        "options": asdict(opts),
        "ab_prior": prior,
        "version": __version__,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def read_checkpoint(path: Path) -> dict:
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({first[:200]})") from None
    if not isinstance(blob, dict) or not {"model", "optimizer", "epoch", "options"} <= blob.keys():
        raise CheckpointError(f"{path}: not a colorize training checkpoint")
    return blob


def train(opts: TrainOptions, resume: Path | None = None, log=print, progress=None) -> History:
    """Train network `opts.arch`; write last.pt, best.pt, losses.json and loss.png into `opts.out`.

    Under torchrun (WORLD_SIZE > 1) every process trains a DistributedDataParallel copy: each epoch's shuffled
    photos are split among the processes as DistributedSampler does, and `opts.batch_size` stays the crops per
    step over all of them (batch_size // processes each), so runs compare with single-process ones. Process 0
    alone validates, logs and writes the run folder; the checkpoint holds the plain network, not the wrapper.
    """
    with distributed.process_group(opts.device) as world:
        return _train(opts, world, resume, log if world.main else lambda message: None, progress)


def _train(opts: TrainOptions, world: distributed.World, resume: Path | None, log, progress) -> History:
    from colorize_cli.plots import plot_losses

    torch.manual_seed(opts.seed)
    device = world.device
    net = build_network(opts.arch).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=opts.lr)
    history, start_epoch, start_step, partial, best = History(), 0, 0, (0.0, 0), math.inf
    state = read_checkpoint(resume) if resume else None
    if state:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        start_epoch, start_step, best = state["epoch"], state.get("step", 0), state["best_val_loss"]
        partial = (state.get("partial_loss", 0.0), state.get("partial_seen", 0))
    elif opts.init:
        net.load_state_dict(load_network(opts.arch, Path(opts.init))[0].state_dict())
    model = world.wrap(net)
    if opts.data is None:
        raise ValueError("--data is required: a folder of colour photos")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(opts.cache) if opts.cache else None
    photos = load_lab_photos(Path(opts.data), cache, log)
    val_photos = load_lab_photos(Path(opts.val), cache, log) if opts.val else photos[: max(1, len(photos) // 10)]
    val_lab, val_rgb = fitted_val_set([lab_to_rgb(p.astype(np.float32)) for p in val_photos])
    prior = state["ab_prior"] if state and state.get("ab_prior") is not None else None
    if opts.loss == "rebalanced" and prior is None:
        prior = ab_prior_weights(photos, opts.rebalance_lambda)
    criterion = loss_fn(opts.loss, prior, opts.huber_delta)
    use_amp = opts.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    batch = max(1, opts.batch_size // world.size)  # per process
    steps_per_epoch = math.ceil(math.ceil(len(photos) / world.size) / batch)
    processes = f" x {world.size} processes of {batch} crops a step" if world.size > 1 else ""
    log(f"network {opts.arch}: {len(photos)} training photos, {len(val_photos)} validation, device {device}"
        f"{processes}, epochs {start_epoch}->{opts.epochs}, {steps_per_epoch} steps each")

    step_state = {"epoch": start_epoch, "step": start_step, "total": partial[0], "seen": partial[1]}
    previous = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        net.train()
        for epoch in range(start_epoch, opts.epochs):
            t0 = time.perf_counter()
            order = world.share_of(np.random.default_rng([opts.seed, epoch]).permutation(len(photos)))
            first = step_state["step"] if epoch == start_epoch else 0
            total, seen = (step_state["total"], step_state["seen"]) if first else (0.0, 0)
            for s in range(first, steps_per_epoch):
                idx = order[s * batch : (s + 1) * batch]
                key = [opts.seed, epoch, s] if world.size == 1 else [opts.seed, epoch, s, world.rank]
                rng = np.random.default_rng(key)  # per step, so a resume mid-epoch is exact
                lab = torch.from_numpy(random_crops([photos[i] for i in idx], opts.crop, rng)).to(device)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(opts, epoch * steps_per_epoch + s, steps_per_epoch)
                with torch.autocast(device.type, enabled=use_amp):
                    loss = criterion(model(scale_l(lab[:, :1])), scale_ab(lab[:, 1:]))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step_total, step_seen = world.sum(loss.item() * len(idx), len(idx))
                total += step_total
                seen += int(step_seen)
                step_state.update(epoch=epoch, step=s + 1, total=total, seen=seen)
                if progress:
                    progress(epoch, s + 1, steps_per_epoch)
            val_loss, val_psnr = world.from_main(lambda: validate(net, val_lab, val_rgb, criterion, device))
            history.train_loss.append(total / seen)
            history.val_loss.append(val_loss)
            history.val_psnr.append(val_psnr)
            history.seconds.append(time.perf_counter() - t0)
            improved = val_loss < best
            best = min(best, val_loss)
            step_state.update(epoch=epoch + 1, step=0, total=0.0, seen=0)
            if world.main:
                save_checkpoint(out / "last.pt", net, optimizer, step_state, history, best, opts, prior)
                if improved:
                    save_checkpoint(out / "best.pt", net, optimizer, step_state, history, best, opts, prior)
                write_text_atomic(out / "losses.json", json.dumps(asdict(history), indent=1))
                plot_losses(history, out / "loss.png", title=f"network {opts.arch}")
            log(f"epoch {epoch + 1}/{opts.epochs}  train {history.train_loss[-1]:.5f}  val {val_loss:.5f}  "
                f"val PSNR {val_psnr:.2f} dB  {history.seconds[-1]:.1f}s{'  *best' if improved else ''}")
    except KeyboardInterrupt:
        for sig in (signal.SIGINT, signal.SIGTERM):  # torchrun passes Ctrl-C on once more: finish the save
            signal.signal(sig, signal.SIG_IGN)
        if world.main:
            save_checkpoint(out / "last.pt", net, optimizer, step_state, history, best, opts, prior)
        log(f"interrupted: saved {out / 'last.pt'} at epoch {step_state['epoch'] + 1}, step {step_state['step']}; "
            f"continue with --resume {out / 'last.pt'}")
        raise
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    return history


def options_from_checkpoint(path: Path, overrides: dict) -> TrainOptions:
    """The options a checkpoint was trained with, updated with those given again on the command line."""
    saved = read_checkpoint(path)["options"]
    fields = TrainOptions.__dataclass_fields__
    merged = {k: v for k, v in saved.items() if k in fields}
    merged.setdefault("huber_delta", 0.1)  # checkpoints from before --huber-delta: Huber's delta was 0.1
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return TrainOptions(**merged)


def export_weights(checkpoint: Path, dest: Path, half: bool = True) -> dict:
    """Write a checkpoint's network as a weights-only file and record it in manifest.json beside it."""
    state = read_checkpoint(checkpoint)
    net = build_network(state["arch"])
    net.load_state_dict(state["model"])
    history = state["history"]
    meta = {
        "epochs": state["epoch"],
        "version": state.get("version"),
        "loss": state["options"].get("loss"),
        "crop": state["options"].get("crop"),
        "val_loss": history["val_loss"][-1] if history["val_loss"] else None,
        "val_psnr": history["val_psnr"][-1] if history["val_psnr"] else None,
    }
    return write_weights(net, state["arch"], dest, meta, half)
