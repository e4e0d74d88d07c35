"""`colorize train`."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.commands.common import fail
from colorize_cli.errors import ExitCode
from colorize_cli.registry import WeightsError


class Loss(str, Enum):
    mse = "mse"
    huber = "huber"


class TrainPrecision(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


def train(
    arch: Annotated[Optional[int], typer.Option(help="Network 1 to 6 (default 6).", min=1, max=6)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Folder of colour photos to train on (recursive). "
                                                 "Default: $COLORIZE_DATA.", envvar="COLORIZE_DATA")] = None,
    val: Annotated[Optional[Path], typer.Option(help="Folder of colour photos to validate on. "
                                                "Default: $COLORIZE_VAL, else a tenth of --data.",
                                                envvar="COLORIZE_VAL")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder for checkpoints, losses.json and loss.png.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Total epochs (one random crop per photo each).", min=0)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate (peak of the cosine schedule).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Crops per step.", min=1)] = None,
    crop: Annotated[Optional[int], typer.Option(help="Side of the random training crops.", min=16)] = None,
    epoch_size: Annotated[Optional[int], typer.Option(help="Crops drawn per epoch (default: the number of "
                                                      "training photos).", min=1)] = None,
    fit: Annotated[Optional[bool], typer.Option("--fit/--no-fit", help="Train on whole photos resized to "
                                                "--crop x --crop (the design's recipe) instead of random "
                                                "crops.")] = None,
    balanced: Annotated[Optional[bool], typer.Option("--balanced/--no-balanced", help="Draw each folder "
                                                     "directly under --data equally often (default), or "
                                                     "each photo equally often.")] = None,
    ema_decay: Annotated[Optional[float], typer.Option(help="Decay of the moving average of the weights that "
                                                       "is validated and exported (default 0.999; 0: the "
                                                       "raw weights).", min=0.0, max=0.99999)] = None,
    loss: Annotated[Optional[Loss], typer.Option(help="huber (default: squared below --huber-delta, "
                                                 "linear above) or mse (the design's).")] = None,
    huber_delta: Annotated[Optional[float], typer.Option(help="For --loss huber: errors of scaled a,b (a,b/110) "
                                                         "above this count linearly, below it squared "
                                                         "(default 0.2).", min=0.001)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Torch threads for training (0: torch's default).",
                                                   min=0)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
    precision: Annotated[Optional[TrainPrecision], typer.Option(help="auto (default): bfloat16 autocast on "
                                                                 "CPUs that compute it natively (AVX512-BF16 "
                                                                 "or AMX), float16 AMP on CUDA, float32 "
                                                                 "elsewhere.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue from a last.pt checkpoint.")] = None,
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights (a weights file, e.g. the "
                                                 "shipped models/arch6.pt, or a checkpoint) to fine-tune on "
                                                 "your photos; optimizer and schedule start afresh.")] = None,
    export: Annotated[Optional[Path], typer.Option(help="After training, write best.pt's weights here "
                                                   "(state dict, large tensors in fp16, + metadata) and record it in "
                                                   "manifest.json beside it.")] = None,
    ddp: Annotated[bool, typer.Option("--ddp", help="Train in --nproc processes with DistributedDataParallel "
                                      "(launches torchrun; --batch-size stays the crops per step over all).")] = False,
    nproc: Annotated[Optional[int], typer.Option(help="With --ddp: processes (default: one per CUDA device, "
                                                 "else per CPU core).", min=1)] = None,
):
    """Train one of the six networks on a folder of colour photos (also under torchrun: see --ddp)."""
    from colorize_cli import ddp as processes  # the option --ddp is `ddp` here
    from colorize_cli import train as training
    from colorize_cli.training_data import NoTrainingPhotos

    given = dict(arch=arch, data=str(data) if data else None, val=str(val) if val else None,
                 out=str(out) if out else None, epochs=epochs, epoch_size=epoch_size, lr=lr,
                 batch_size=batch_size, crop=crop, fit=fit, balanced=balanced, ema_decay=ema_decay,
                 loss=loss.value if loss else None, huber_delta=huber_delta, seed=seed, workers=workers,
                 device=device, precision=precision.value if precision else None,
                 init=str(init) if init else None)
    try:
        if resume:
            opts = training.options_from_checkpoint(resume, given)
        else:
            opts = training.TrainOptions(**{k: v for k, v in given.items() if v is not None})
            if opts.out == training.TrainOptions.out:
                opts.out = f"runs/arch{opts.arch}"
        if opts.data is None:
            fail("--data is required (or set COLORIZE_DATA): a folder of colour photos", ExitCode.USAGE)
        if nproc and not ddp:
            fail("--nproc goes with --ddp", ExitCode.USAGE)
        if ddp:
            if processes.launched():
                fail("--ddp: already running under torchrun", ExitCode.USAGE)
            args = command_line({**given, "resume": resume, "export": export})
            processes.exec_torchrun(nproc or processes.default_nproc(opts.device), ["train", *args])
        if opts.workers:
            import torch

            torch.set_num_threads(opts.workers)
        training.train(opts, resume=resume, log=lambda m: typer.echo(m, err=True))
        if export and processes.is_main_process():
            best = Path(opts.out) / "best.pt"
            try:
                entry = training.export_weights(best, export)
            except OSError as exc:
                fail(f"{export}: cannot export ({exc.strerror or exc}); {best} and last.pt are kept: export "
                     f"again with colorize train --resume {Path(opts.out) / 'last.pt'} --export PATH", ExitCode.USAGE)
            typer.echo(f"exported {export} (sha256 {entry['sha256'][:12]}..., {entry['bytes']} bytes)", err=True)
    except (training.CheckpointError, WeightsError, NoTrainingPhotos) as exc:
        fail(str(exc), ExitCode.USAGE)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc), ExitCode.USAGE)
    except KeyboardInterrupt:
        raise typer.Exit(130)  # as a shell reports Ctrl-C


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
