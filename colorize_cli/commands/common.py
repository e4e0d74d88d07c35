"""What the commands share: error exits, option choices and the options batch and eval both take."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.errors import ExitCode
from colorize_cli.predictor import RENDER_SIZES
from colorize_cli.registry import ARCHS, DEFAULT_ARCH

FIRST_ARCH, LAST_ARCH = min(ARCHS), max(ARCHS)


def fail(message: str, code: int = ExitCode.FAILED) -> None:
    """Print one error line on stderr and exit with `code`."""
    typer.echo(f"colorize: error: {message}", err=True)
    raise typer.Exit(code)


def renamed(old: str, new: str, value, current):
    """The value of a renamed option: the old name still works, with a warning on stderr."""
    if value is None:
        return current
    typer.echo(f"colorize: warning: {old} is now {new}", err=True)
    return value


class Mode(str, Enum):
    resize = "resize"
    tile = "tile"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


ArchOption = Annotated[Optional[int], typer.Option(
    help=f"Network {FIRST_ARCH} to {LAST_ARCH} (default {DEFAULT_ARCH}, or the one --weights is for).",
    min=FIRST_ARCH, max=LAST_ARCH)]
ModeOption = Annotated[Mode, typer.Option(help="resize: fit the whole image to the render size; tile: tiles "
                                          "of the render size with blended overlaps, for images much larger.")]
DeviceOption = Annotated[Device, typer.Option(help="auto picks cuda, then mps, then cpu.")]
PrecisionOption = Annotated[Precision, typer.Option(
    help="The network's arithmetic. auto: float16 on a CUDA GPU, float32 elsewhere. bfloat16: about 1.5x faster "
         "on CPUs with AVX512-BF16 or AMX, at slightly lower quality (a, b move by 0.16 on average).")]
RenderSizeOption = Annotated[int, typer.Option(
    help="The size the network sees, in px: each image is fitted to about NxN pixels at its own aspect, smaller "
         "ones kept at their own size (tiles of NxN in tile mode). A multiple "
         f"of {RENDER_SIZES.step} from {RENDER_SIZES.start} to {RENDER_SIZES.stop - 1}; the design's is 400.")]
StrengthOption = Annotated[float, typer.Option(
    help="Colour strength: the predicted a, b times this, from 0 (grey) to 2; above 1 more vivid.")]
BatchSizeOption = Annotated[Optional[int], typer.Option(
    help="Images (or tiles) per network call (default: 1 on CPU, where it is fastest; 4 on a GPU).", min=1,
    show_default=False)]
WeightsOption = Annotated[Optional[Path], typer.Option(help="Weights file or training checkpoint instead of the "
                                                       "shipped weights.")]
