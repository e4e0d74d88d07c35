"""`colorize train`: options in, `train.train_and_export` called (or torchrun launched with the same options)."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.commands.common import FIRST_ARCH, LAST_ARCH, fail, renamed
from colorize_cli.errors import ExitCode
from colorize_cli.registry import DEFAULT_ARCH, WeightsError


class Loss(str, Enum):
    psnr = "psnr"
    rgb = "rgb"
    mse = "mse"
    huber = "huber"
    cast = "cast"


class TrainPrecision(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


def option(help: str, *names: str, **kwargs):
    """typer.Option with its help first. The options below default to None (not given), so a resumed run
    keeps its checkpoint's value."""
    return typer.Option(*names, help=help, **kwargs)


PathOption = Optional[Path]
ArchOption = Annotated[Optional[int], option(f"Network {FIRST_ARCH} to {LAST_ARCH} (default {DEFAULT_ARCH}).",
                                             min=FIRST_ARCH, max=LAST_ARCH)]
DataOption = Annotated[PathOption, option("Folder of colour photos to train on (recursive). Default: $COLORIZE_DATA.",
                                          envvar="COLORIZE_DATA")]
ValOption = Annotated[PathOption, option("Folder of colour photos to validate on. Default: $COLORIZE_VAL, else a tenth "
                                         "of --data.", envvar="COLORIZE_VAL")]
OutOption = Annotated[PathOption, option("Run folder for checkpoints, losses.json and loss.png.")]
EpochsOption = Annotated[Optional[int], option("Total epochs (one random crop per photo each).", min=0)]
LrOption = Annotated[Optional[float], option("Adam learning rate (peak of the cosine schedule).")]
BatchOption = Annotated[Optional[int], option("Crops per step.", min=1)]
CropOption = Annotated[Optional[int], option("Side of the random training crops.", min=16)]
EpochSizeOption = Annotated[Optional[int], option("Crops drawn per epoch (default: the number of training photos).",
                                                  min=1)]
FitOption = Annotated[Optional[bool], option("Train on whole photos resized to --crop x --crop (the design's recipe) "
                                             "instead of random crops.", "--fit/--no-fit")]
RenderSizeOption = Annotated[Optional[int], option("Cut the crops from each photo as batch's --render-size shows it to the "
                                                  "network: larger photos shrunk to about N x N pixels at their "
                                                  "aspect (0, default: from the photo as stored).", min=0)]
BalancedOption = Annotated[Optional[bool], option("Draw each folder directly under --data equally often (default), or "
                                                  "each photo equally often.", "--balanced/--no-balanced")]
EmaOption = Annotated[Optional[float], option("Decay of the moving average of the weights that is validated and "
                                              "exported (default 0.999; 0: the raw weights).", min=0.0, max=0.99999)]
LossOption = Annotated[Optional[Loss], option("psnr (default: minus each crop's PSNR in the sRGB colours the "
                                              "predicted a,b make with the true L, as photos are scored one by "
                                              "one), rgb (squared error of those colours), mse (the design's, on "
                                              "a,b), huber (squared below --huber-delta, linear above) or cast (mse "
                                              "plus --cast-weight times the squared error of each crop's mean a,b).")]
DeltaOption = Annotated[Optional[float], option("For --loss huber: errors of scaled a,b (a,b/110) above this count "
                                                "linearly, below it squared (default 0.2).", min=0.001)]
CastOption = Annotated[Optional[float], option("For --loss cast: weight of the squared error of each crop's mean "
                                               "scaled a,b (default 3).", min=0.0)]
SeedOption = Annotated[Optional[int], option("Random seed (default 0); each epoch's crops follow from it and the "
                                               "epoch, so an --init run from weights trained with the same "
                                               "seed sees their crops again: give it another.")]
ThreadsOption = Annotated[Optional[int], option("Torch threads for training (0: torch's default).", min=0)]
WorkersOption = Annotated[Optional[int], option("", "--workers", min=0, hidden=True)]  # before --threads
DeviceOption = Annotated[Optional[str], option("auto, cpu, cuda or mps.")]
PrecisionOption = Annotated[Optional[TrainPrecision], option(
    "auto (default): bfloat16 autocast on CPUs that compute it natively (AVX512-BF16 or AMX), float16 AMP on CUDA, "
    "float32 elsewhere.")]
ResumeOption = Annotated[PathOption, option("Continue from a last.pt checkpoint.")]
InitOption = Annotated[PathOption, option("Start from these weights (a weights file, e.g. the shipped models/arch6.pt, "
                                          "or a checkpoint) to fine-tune on your photos; optimizer and schedule start "
                                          "afresh.")]
ExportOption = Annotated[PathOption, option("After training, write best.pt's weights here (state dict, large tensors in "
                                            "fp16, + metadata) and record it in manifest.json beside it.")]
DdpOption = Annotated[bool, option("Train in --nproc processes with DistributedDataParallel (launches torchrun; "
                                   "--batch-size stays the crops per step over all).", "--ddp")]
NprocOption = Annotated[Optional[int], option("With --ddp: processes (default: one per CUDA device, else per CPU "
                                              "core).", min=1)]


def train(arch: ArchOption = None, data: DataOption = None, val: ValOption = None, out: OutOption = None,
          epochs: EpochsOption = None, lr: LrOption = None, batch_size: BatchOption = None, crop: CropOption = None,
          epoch_size: EpochSizeOption = None, fit: FitOption = None, render_size: RenderSizeOption = None,
          balanced: BalancedOption = None,
          ema_decay: EmaOption = None, loss: LossOption = None, huber_delta: DeltaOption = None,
          cast_weight: CastOption = None,
          seed: SeedOption = None, threads: ThreadsOption = None, device: DeviceOption = None,
          precision: PrecisionOption = None, resume: ResumeOption = None, init: InitOption = None,
          export: ExportOption = None, ddp: DdpOption = False, nproc: NprocOption = None,
          workers: WorkersOption = None):
    """Train one of the six networks on a folder of colour photos (also under torchrun: see --ddp)."""
    from colorize_cli import train as training
    from colorize_cli.training_data import NoTrainingPhotos

    given = dict(arch=arch, data=data and str(data), val=val and str(val), out=out and str(out), epochs=epochs,
                 epoch_size=epoch_size, lr=lr, batch_size=batch_size, crop=crop, fit=fit,
                 render_size=render_size, balanced=balanced,
                 ema_decay=ema_decay, loss=loss and loss.value, huber_delta=huber_delta,
                 cast_weight=cast_weight, seed=seed,
                 threads=renamed("--workers", "--threads", workers, threads), device=device,
                 precision=precision and precision.value, init=init and str(init))
    try:
        opts = training.options_given(given, resume)
        if nproc and not ddp:
            fail("--nproc goes with --ddp", ExitCode.USAGE)
        if ddp:
            launch_ddp(opts, {**given, "resume": resume, "export": export}, nproc)
        entry = training.train_and_export(opts, resume, export, log=lambda m: typer.echo(m, err=True))
    except (training.CheckpointError, training.ExportError, WeightsError, NoTrainingPhotos, FileNotFoundError,
            ValueError) as exc:
        fail(str(exc), ExitCode.USAGE)
    except KeyboardInterrupt:
        raise typer.Exit(130)  # as a shell reports Ctrl-C
    if entry:
        typer.echo(f"exported {export} (sha256 {entry['sha256'][:12]}..., {entry['bytes']} bytes)", err=True)


def launch_ddp(opts, options: dict, nproc: int | None) -> None:
    """Replace this process with torchrun running `colorize train` with the same options in each process."""
    from colorize_cli import ddp as processes  # the option --ddp is `ddp` in train()

    if processes.launched():
        fail("--ddp: already running under torchrun", ExitCode.USAGE)
    processes.exec_torchrun(nproc or processes.default_nproc(opts.device), ["train", *command_line(options)])


def command_line(options: dict) -> list[str]:
    """Options as `colorize train` arguments again (for the torchrun workers)."""
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        elif value is not None:
            args += [flag, str(value)]
    return args
