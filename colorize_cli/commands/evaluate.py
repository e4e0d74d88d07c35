"""`colorize eval`: options in, `evaluate.evaluate_networks` called, the table or JSON out."""

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.commands.common import (FIRST_ARCH, LAST_ARCH, BatchSizeOption, Device, DeviceOption, Mode,
                                          ModeOption, Precision, PrecisionOption, RenderSizeOption, StrengthOption,
                                          WeightsOption, fail)
from colorize_cli.errors import ExitCode
from colorize_cli.evaluate import EvalError, EvalSettings, evaluate_networks
from colorize_cli.predictor import NETWORK_SIDE
from colorize_cli.registry import DEFAULT_ARCH

FORMATS = {"mse": ".5f", "psnr": ".2f", "ssim": ".4f", "ciede2000": ".2f", "colourfulness": ".1f"}
HEADINGS = {"mse": "MSE", "psnr": "PSNR dB", "ssim": "SSIM", "ciede2000": "ΔE2000", "colourfulness": "colourful"}


def summary_table(summaries: list[dict], title: str):
    """Means per network, each followed by its difference to the grey baseline; then the baseline itself."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, caption="lower is better: MSE, ΔE2000; higher: PSNR, SSIM",
                  caption_justify="left")
    table.add_column("network")
    for heading in HEADINGS.values():
        table.add_column(heading, justify="right")
    table.add_column("vs truth", justify="right")
    for s in summaries:
        ratio = f"{s['colourfulness_ratio']:.2f}x" if s["colourfulness_ratio"] is not None else "-"
        table.add_row(str(s["network"]), *[f"{s['mean'][m]:{f}}" for m, f in FORMATS.items()], ratio)
        table.add_row("  vs grey", *[f"{s['difference'][m]:+{f}}" for m, f in FORMATS.items()], "", style="dim")
    first = summaries[0]
    table.add_row("grey baseline", *[f"{first['baseline'][m]:{f}}" for m, f in FORMATS.items()], "", style="bold")
    table.add_row("ground truth", "", "", "", "", f"{first['truth_colourfulness']:{FORMATS['colourfulness']}}",
                  "1.00x", style="bold")
    return table


ArchsOption = Annotated[Optional[str], typer.Option(
    help=f"Network {FIRST_ARCH} to {LAST_ARCH}, or all for every network in one table (default {DEFAULT_ARCH}, or "
         "the one --weights is for).")]
WeightsDirOption = Annotated[Optional[Path], typer.Option(help="Take archN.pt from this folder instead of the "
                                                          "shipped weights.")]
DataOption = Annotated[Optional[Path], typer.Option(help="Folder of colour photos (recursive). Default: "
                                                    "scikit-image's bundled sample photos.")]
OutOption = Annotated[Path, typer.Option(help="Folder for eval.json, eval.csv and grid.png.")]
GridOption = Annotated[int, typer.Option(help="Columns of grid.png: the first N photos (0: no grid).", min=0)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout, nothing else there.")]


def evaluate(arch: ArchsOption = None, weights: WeightsOption = None, weights_dir: WeightsDirOption = None,
             data: DataOption = None, out: OutOption = Path("eval-out"), mode: ModeOption = Mode.resize,
             device: DeviceOption = Device.auto, precision: PrecisionOption = Precision.auto,
             render_size: RenderSizeOption = NETWORK_SIDE, strength: StrengthOption = 1.0,
             batch_size: BatchSizeOption = None, grid_images: GridOption = 8, json_summary: JsonOption = False):
    """Measure networks against colour photos: each photo is made grey, colourised as `batch` does, and
    compared with the original (MSE, PSNR, SSIM, CIEDE2000, colourfulness), beside the grey baseline."""
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    settings = EvalSettings(arch, weights, weights_dir, data, out, mode.value, device.value, precision.value,
                            render_size, strength, batch_size, grid_images)
    warn = lambda message: err.print(f"warning: {message}", markup=False, soft_wrap=True)  # noqa: E731
    with err.status("evaluating") if err.is_terminal else nullcontext() as status:
        try:
            summary, written = evaluate_networks(settings, warn, lambda name: status and status.update(f"evaluated {name}"))
        except EvalError as exc:
            fail(str(exc), exc.code)
    if json_summary:
        typer.echo(json.dumps({**summary, "files": [str(p) for p in written]}, allow_nan=False))
        raise typer.Exit(ExitCode.OK)
    title = (f"{summary['images']} photos from {summary['data']}, {mode.value} mode at {render_size} px, strength "
             f"{strength:g}, {summary['precision']}")
    Console(highlight=False).print(summary_table(summary["networks"], title))
    skips = "".join(f", {n} {why} skipped" for why, n in summary["skipped"].items() if n)
    err.print(f"{summary['images']} photos from {summary['data']}{skips}; wrote {', '.join(str(p) for p in written)}",
              markup=False, soft_wrap=True)
    raise typer.Exit(ExitCode.OK)
