"""The `colorize` command line: thin commands over the library functions."""

from typing import Annotated, Optional

import typer

from colorize_cli import __version__
from colorize_cli.commands import batch, evaluate, train

app = typer.Typer(
    help="Put colour back into black-and-white photographs with a convolutional network.",
    no_args_is_help=True,
    add_completion=False,
)

def version_callback(value: bool):
    if value:
        typer.echo(f"colorize {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
):
    """Put colour back into black-and-white photographs with a convolutional network."""
    from colorize_cli.process import configure_process

    configure_process()


app.command("batch")(batch.batch)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)


def main():
    app()
