"""What the commands share: error exits and option choices."""

from enum import Enum

import typer

from colorize_cli.errors import ExitCode


def fail(message: str, code: int = ExitCode.FAILED) -> None:
    """Print one error line on stderr and exit with `code`."""
    typer.echo(f"colorize: error: {message}", err=True)
    raise typer.Exit(code)


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


PRECISION_HELP = ("The network's arithmetic. auto: float16 on a CUDA GPU, float32 elsewhere. bfloat16: about "
                  "1.5x faster on CPUs with AVX512-BF16 or AMX, at slightly lower quality (a, b move by 0.16 "
                  "on average).")

RENDER_SIZE_HELP = ("The side the network sees, in px: each image is fitted to NxN (tiles of NxN in tile mode). "
                    "A multiple of 16 from 64 to 1024; the design's is 400.")
STRENGTH_HELP = "Colour strength: the predicted a, b times this, from 0 (grey) to 2; above 1 more vivid."
