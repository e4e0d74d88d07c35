"""`colorize eval`."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from colorize_cli.errors import ExitCode, first_line
from colorize_cli.commands.common import PRECISION_HELP, RENDER_SIZE_HELP, STRENGTH_HELP, Device, Mode, Precision, fail

ALL = "all"
FORMATS = {"mse": ".5f", "psnr": ".2f", "ssim": ".4f", "ciede2000": ".2f", "colourfulness": ".1f"}
HEADINGS = {"mse": "MSE", "psnr": "PSNR dB", "ssim": "SSIM", "ciede2000": "ΔE2000", "colourfulness": "colourful"}


def networks_named(arch: str | None) -> list[int | None]:
    """--arch value -> network numbers; None: the default, or the one --weights is for."""
    if arch is None:
        return [None]
    if arch.lower() == ALL:
        return list(range(1, 7))
    if arch.isdigit() and 1 <= int(arch) <= 6:
        return [int(arch)]
    raise ValueError(f"--arch {arch}: choose 1 to 6 or all")


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


def evaluate(
    arch: Annotated[Optional[str], typer.Option(help="Network 1 to 6, or all for every network in one table "
                                                "(default 6, or the one --weights is for).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Weights file or training checkpoint instead of the "
                                                    "shipped weights.")] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(help="Take archN.pt from this folder instead of the "
                                                        "shipped weights.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Folder of colour photos (recursive). Default: "
                                                 "scikit-image's bundled sample photos.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for eval.json, eval.csv and grid.png.")] = Path("eval-out"),
    mode: Annotated[Mode, typer.Option(help="resize: fit the whole image to 400x400; tile: 400x400 tiles "
                                       "with blended overlaps.")] = Mode.resize,
    device: Annotated[Device, typer.Option(help="auto picks cuda, then mps, then cpu.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision.auto,
    render_size: Annotated[int, typer.Option(help=RENDER_SIZE_HELP)] = 400,
    strength: Annotated[float, typer.Option(help=STRENGTH_HELP)] = 1.0,
    batch_size: Annotated[Optional[int], typer.Option(help="Images (or tiles) per network call (default: 1 on CPU, "
                                                      "where it is fastest; 4 on a GPU).", min=1,
                                                      show_default=False)] = None,
    grid_images: Annotated[int, typer.Option(help="Columns of grid.png: the first N photos (0: no grid).",
                                             min=0)] = 8,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout, "
                                               "nothing else there.")] = False,
):
    """Measure networks against colour photos: each photo is made grey, colourised as `batch` does, and
    compared with the original (MSE, PSNR, SSIM, CIEDE2000, colourfulness), beside the grey baseline."""
    from collections import Counter
    from contextlib import nullcontext

    from rich.console import Console

    from colorize_cli import evaluate as evaluation
    from colorize_cli.predictor import check_render_settings, pick_device
    from colorize_cli.registry import ARCHS, WeightsError, models_dir

    err = Console(stderr=True, highlight=False)
    try:
        archs = networks_named(arch)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    if weights is not None and (weights_dir is not None or len(archs) > 1):
        fail("--weights is one network's file; use --weights-dir for --arch all", ExitCode.USAGE)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder", ExitCode.USAGE)
    try:
        check_render_settings(render_size, strength)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)

    def warn(message: str) -> None:
        err.print(f"warning: {message}", markup=False, soft_wrap=True)

    skipped = Counter(dict.fromkeys(evaluation.SKIP_REASONS, 0))
    try:
        photos = evaluation.load_samples(skipped, warn) if data is None else \
            evaluation.load_folder(data, skipped, warn, exclude=out)
        torch_device = pick_device(device.value)
        colorizers = evaluation.load_colorizers(archs, weights, weights_dir, torch_device, mode.value, batch_size,
                                                  precision.value, render_size, strength)
    except (evaluation.EvalDataError, ValueError, WeightsError) as exc:
        fail(str(exc), ExitCode.USAGE)
    source = evaluation.SAMPLE_DATA if data is None else str(data)
    with err.status("evaluating") if err.is_terminal else nullcontext() as status:
        progress = (lambda name: status.update(f"evaluated {name}")) if status else (lambda name: None)
        try:
            result = evaluation.evaluate(colorizers, photos, skipped, grid_images, on_image=progress)
        except (RuntimeError, MemoryError) as exc:  # e.g. out of memory on the device: say so in one line
            fail(f"evaluation stopped: {first_line(exc)} (try a smaller --batch-size or --mode tile)", ExitCode.FAILED)
    if not result.rows:
        counts = ", ".join(f"{n} {why}" for why, n in skipped.items() if n) or "none"
        fail(f"{source}: no colour photos to evaluate (skipped: {counts})", ExitCode.USAGE)

    summaries = result.summaries()
    for s in summaries:
        s["weights"] = str(weights or (weights_dir or models_dir()) / ARCHS[s["network"]].weights_file)
    summary = {"data": source, "mode": mode.value, "render_size": render_size, "strength": strength,
               "device": str(torch_device),
               "precision": next(iter(colorizers.values())).precision, "images": result.images(),
               "skipped": dict(skipped), "out": str(out), "networks": summaries}
    written = evaluation.write_results(out, result, summary)
    if json_summary:
        typer.echo(json.dumps({**summary, "files": [str(p) for p in written]}, allow_nan=False))
    else:
        title = (f"{summary['images']} photos from {source}, {mode.value} mode at {render_size} px, strength "
                 f"{strength:g}, {summary['precision']}")
        Console(highlight=False).print(summary_table(summaries, title))
        skips = "".join(f", {n} {why} skipped" for why, n in skipped.items() if n)
        err.print(f"{summary['images']} photos from {source}{skips}; wrote {', '.join(str(p) for p in written)}",
                  markup=False, soft_wrap=True)
    raise typer.Exit(ExitCode.OK)
