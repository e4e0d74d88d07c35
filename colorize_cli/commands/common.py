"""What the commands share: error exits and option choices."""

from enum import Enum

import typer


def fail(message: str, code: int = 1) -> None:
    """Print one error line on stderr and exit with `code` (2: usage, 1: failure)."""
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
