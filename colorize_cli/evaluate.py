"""`colorize eval` as a library: colour photos -> each network -> metrics beside the grey baseline.

The colourisation is batch's, pixels to pixels: `Colorizer.colorize`. The grey baseline joins the same L with
a = b = 0 the same way, so every number stands next to what doing nothing scores.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from skimage.transform import resize

from colorize_cli import metrics
from colorize_cli.color import as_float, bits_of, has_color
from colorize_cli.decode import DecodeError, decode
from colorize_cli.errors import CommandError, ExitCode, first_line
from colorize_cli.files import walk_images, write_csv_atomic, write_text_atomic
from colorize_cli.plots import plot_comparison_grid
from colorize_cli.predictor import NETWORK_SIDE, Colorizer, check_render_settings, pick_device
from colorize_cli.process import configure_process
from colorize_cli.registry import ARCHS, DEFAULT_ARCH, WeightsError, load_network, shipped_weights

METRICS = ("mse", "psnr", "ssim", "ciede2000", "colourfulness")
SAMPLE_DATA = "scikit-image sample photos"
SKIP_REASONS = ("grey", "unreadable", "too_small")  # the keys of the `skipped` counts
MIN_SIDE = 3  # SSIM needs a 3x3 window at least
THUMBNAIL_SIDE = 256  # grid tiles are kept at this size, not at full resolution


ALL = "all"


class EvalDataError(Exception):
    """The folder of photos to evaluate on is missing or holds no image files."""


class EvalError(CommandError):
    """The evaluation cannot start or stopped."""


@dataclass
class EvalSettings:
    """Everything `colorize eval` is told, as plain values."""

    arch: str | None = None  # a network number, "all", or None: the default (or the one --weights is for)
    weights: Path | None = None
    weights_dir: Path | None = None
    data: Path | None = None  # None: scikit-image's sample photos
    out: Path = Path("eval-out")
    mode: str = "resize"
    device: str = "auto"
    precision: str = "auto"
    render_size: int = NETWORK_SIDE
    strength: float = 1.0
    batch_size: int | None = None
    grid_images: int = 8


@dataclass
class Photo:
    """A colour photo: its pixels are the ground truth, its L what the networks see."""

    name: str
    pixels: np.ndarray  # integer RGB, uint8 or uint16
    l: np.ndarray

    @property
    def rgb(self) -> np.ndarray:
        """The truth as float RGB on a 0..1 scale, as the metrics take it."""
        return as_float(self.pixels)


@dataclass
class EvalRow:
    """One network on one photo, with the grey baseline's scores on the same photo."""

    network: int
    image: str
    width: int
    height: int
    mse: float
    psnr: float
    ssim: float
    ciede2000: float
    colourfulness: float
    truth_colourfulness: float
    baseline_mse: float
    baseline_psnr: float
    baseline_ssim: float
    baseline_ciede2000: float
    baseline_colourfulness: float


@dataclass
class GridColumn:
    """One photo of the comparison grid, as thumbnails: grey input, actual, and each network's prediction."""

    name: str
    grey: np.ndarray
    actual: np.ndarray
    predicted: dict[int, np.ndarray] = field(default_factory=dict)
    mse: dict[int, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Every row (sorted by network), the grid's columns, and how many photos were skipped, by reason."""

    rows: list[EvalRow]
    grid: list[GridColumn]
    skipped: Counter

    def images(self) -> int:
        return len({r.image for r in self.rows})

    def summaries(self) -> list[dict]:
        return [summarise([r for r in self.rows if r.network == n]) for n in sorted({r.network for r in self.rows})]


def color_photo(name: str, pixels: np.ndarray) -> Photo | None:
    """Integer pixels -> a Photo, or None when the image is grey (nothing to compare colours with)."""
    return Photo(name, pixels, Colorizer.preprocess(pixels)) if has_color(pixels) else None


def sample_photos() -> list[tuple[str, Callable[[], np.ndarray]]]:
    """The colour photos scikit-image ships (none needs a download), as (name, loader of uint8 RGB)."""
    from skimage import data

    return [
        ("astronaut", data.astronaut),
        ("chelsea", data.chelsea),
        ("coffee", data.coffee),
        ("rocket", data.rocket),
        ("motorcycle", lambda: data.stereo_motorcycle()[0]),
        ("retina", data.retina),
        ("hubble_deep_field", data.hubble_deep_field),
        ("immunohistochemistry", data.immunohistochemistry),
    ]


def load_samples(skipped: Counter, warn: Callable[[str], None] = lambda m: None) -> Iterator[Photo]:
    """The bundled sample photos; one that fails to load is warned about and counted as unreadable."""
    for name, load in sample_photos():
        try:
            photo = color_photo(name, np.ascontiguousarray(load()[..., :3]))
        except Exception as exc:  # a scikit-image without this file: evaluate the others
            skipped["unreadable"] += 1
            warn(f"sample photo {name}: {exc}; skipped")
            continue
        if photo is None:
            skipped["grey"] += 1
            warn(f"sample photo {name}: grey image; skipped")
        else:
            yield photo


def load_folder(folder: Path, skipped: Counter, warn: Callable[[str], None] = lambda m: None,
                exclude: Path | None = None) -> Iterator[Photo]:
    """The colour photos under `folder`, decoded one at a time; grey, tiny and undecodable ones are
    warned about and counted in `skipped`. Raises EvalDataError at once for a missing or empty folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalDataError(f"{folder}: {'not a folder' if folder.exists() else 'folder not found'}")
    paths = walk_images(folder, exclude=exclude, on_warning=warn)
    if not paths:
        raise EvalDataError(f"{folder}: no image files in the folder")
    return _decode_photos(folder, paths, skipped, warn)


def _decode_photos(folder: Path, paths: list[Path], skipped: Counter, warn) -> Iterator[Photo]:
    for path in paths:
        name = path.relative_to(folder).as_posix()
        try:
            image = decode(path)
        except DecodeError as exc:
            skipped["unreadable"] += 1
            warn(f"{path}: {exc}; skipped")
            continue
        photo = color_photo(name, image.pixels)
        if photo is None:
            skipped["grey"] += 1
            warn(f"{path}: grey image, no colours to compare with; skipped")
        elif min(photo.l.shape) < MIN_SIDE:
            skipped["too_small"] += 1
            warn(f"{path}: smaller than {MIN_SIDE} px a side; skipped")
        else:
            yield photo


def load_colorizers(archs: Iterable[int | None], weights: Path | None = None, weights_dir: Path | None = None,
                    device="cpu", mode: str = "resize", batch_size: int | None = None,
                    precision: str = "auto", render_size: int = NETWORK_SIDE,
                    strength: float = 1.0) -> dict[int, Colorizer]:
    """Network number -> Colorizer: from `weights`, from archN.pt in `weights_dir`, or the shipped weights.
    Raises WeightsError naming a missing or bad file."""
    colorizers = {}
    for arch in archs:
        path = weights
        if weights_dir is not None:
            arch = DEFAULT_ARCH if arch is None else arch
            path = Path(weights_dir) / ARCHS[arch].weights_file
        net, number = load_network(arch, path, device)
        colorizers[number] = Colorizer(net, device, mode, batch_size, precision=precision, render_size=render_size,
                                       strength=strength)
    return colorizers


def grey_baseline(photo: Photo) -> np.ndarray:
    """What doing nothing gives: the photo's L with a = b = 0, as float RGB."""
    no_color = np.zeros((*photo.l.shape, 2), np.float32)
    return as_float(Colorizer.postprocess(photo.l, no_color, bits_of(photo.pixels)))


def thumbnail(rgb: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Shrink so the longer side is at most `side`, for the grid."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    return resize(rgb, (max(1, round(h * scale)), max(1, round(w * scale))), anti_aliasing=True).astype(np.float32)


def measure(colorizers: dict[int, Colorizer], photos: Iterable[Photo], skipped: Counter | None = None,
            grid_images: int = 8, on_image: Callable[[str], None] = lambda name: None) -> Evaluation:
    """Every network on every photo, `batch_size` photos per network call; each photo is decoded once."""
    result = Evaluation([], [], skipped if skipped is not None else Counter())
    chunk_size = max(c.batch_size for c in colorizers.values())
    chunk: list[Photo] = []
    for photo in photos:
        chunk.append(photo)
        if len(chunk) >= chunk_size:
            _evaluate_chunk(colorizers, chunk, result, grid_images, on_image)
            chunk = []
    if chunk:
        _evaluate_chunk(colorizers, chunk, result, grid_images, on_image)
    result.rows.sort(key=lambda r: r.network)  # stable: photos stay in their order
    return result


def _evaluate_chunk(colorizers, photos: list[Photo], result: Evaluation, grid_images: int, on_image) -> None:
    predictions = {n: c.colorize([p.pixels for p in photos], [p.l for p in photos]) for n, c in colorizers.items()}
    for i, photo in enumerate(photos):
        truth = photo.rgb
        grey = grey_baseline(photo)
        baseline = {f"baseline_{k}": v for k, v in metrics.compare(grey, truth).items()}
        truth_colourfulness = metrics.colorfulness(truth)
        height, width = photo.l.shape
        column = GridColumn(photo.name, thumbnail(grey), thumbnail(truth)) if len(result.grid) < grid_images else None
        for number, colorized in predictions.items():
            predicted = as_float(colorized[i].pixels)
            scores = metrics.compare(predicted, truth)
            result.rows.append(EvalRow(number, photo.name, width, height, **scores,
                                       truth_colourfulness=truth_colourfulness, **baseline))
            if column is not None:
                column.predicted[number] = thumbnail(predicted)
                column.mse[number] = scores["mse"]
        if column is not None:
            result.grid.append(column)
        on_image(photo.name)


def summarise(rows: list[EvalRow]) -> dict:
    """One network's means over its rows, the grey baseline's means, and the difference of the two."""
    mean = {m: float(np.mean([getattr(r, m) for r in rows])) for m in METRICS}
    baseline = {m: float(np.mean([getattr(r, f"baseline_{m}") for r in rows])) for m in METRICS}
    truth_colourfulness = float(np.mean([r.truth_colourfulness for r in rows]))
    return {
        "network": rows[0].network,
        "images": len(rows),
        "mean": mean,
        "baseline": baseline,
        "difference": {m: mean[m] - baseline[m] for m in METRICS},
        "truth_colourfulness": truth_colourfulness,
        "colourfulness_ratio": mean["colourfulness"] / truth_colourfulness if truth_colourfulness > 0 else None,
    }


def write_results(out: Path, result: Evaluation, summary: dict) -> list[Path]:
    """eval.json (`summary` plus the rows), eval.csv (the rows) and grid.png in `out`; returns the paths."""
    out = Path(out)
    rows = [asdict(r) for r in result.rows]
    written = [out / "eval.json", out / "eval.csv"]
    write_text_atomic(written[0], json.dumps({**summary, "rows": rows}, indent=1, allow_nan=False) + "\n")
    write_csv_atomic(written[1], rows, [f.name for f in fields(EvalRow)])
    grid = out / "grid.png"
    if result.grid:
        draw_grid(result.grid, grid)
        written.append(grid)
    else:
        grid.unlink(missing_ok=True)  # an earlier run's grid would not match these numbers
    return written


def draw_grid(columns: list[GridColumn], path: Path) -> None:
    """The design's figure: input (grey) / actual / one predicted row per network, one column per photo."""
    networks = list(columns[0].predicted)
    plot_comparison_grid(
        [c.name for c in columns],
        [c.grey for c in columns],
        [c.actual for c in columns],
        {f"network {n}": [c.predicted[n] for c in columns] for n in networks},
        {f"network {n}": [c.mse[n] for c in columns] for n in networks},
        path,
    )


def networks_named(arch: str | None) -> list[int | None]:
    """--arch value -> network numbers; None: the default, or the one --weights is for."""
    if arch is None:
        return [None]
    if arch.lower() == ALL:
        return list(ARCHS)
    if arch.isdigit() and int(arch) in ARCHS:
        return [int(arch)]
    raise ValueError(f"--arch {arch}: choose {min(ARCHS)} to {max(ARCHS)} or {ALL}")


def evaluate_networks(settings: EvalSettings, warn: Callable[[str], None] = lambda m: None,
                      on_image: Callable[[str], None] = lambda name: None) -> tuple[dict, list[Path]]:
    """The whole of `colorize eval`: measure, then write eval.json, eval.csv and grid.png into `settings.out`.
    Returns (the summary eval.json holds, without its rows; the files written). Raises EvalError."""
    configure_process()
    try:
        archs = networks_named(settings.arch)
        if settings.weights is not None and (settings.weights_dir is not None or len(archs) > 1):
            raise ValueError("--weights is one network's file; use --weights-dir for --arch all")
        if settings.out.exists() and not settings.out.is_dir():
            raise ValueError(f"--out {settings.out} exists and is not a folder")
        check_render_settings(settings.render_size, settings.strength)
        skipped = Counter(dict.fromkeys(SKIP_REASONS, 0))
        photos = load_samples(skipped, warn) if settings.data is None else \
            load_folder(settings.data, skipped, warn, exclude=settings.out)
        device = pick_device(settings.device)
        colorizers = load_colorizers(archs, settings.weights, settings.weights_dir, device, settings.mode,
                                     settings.batch_size, settings.precision, settings.render_size, settings.strength)
    except (EvalDataError, ValueError, WeightsError) as exc:
        raise EvalError(str(exc)) from None
    source = SAMPLE_DATA if settings.data is None else str(settings.data)
    try:
        result = measure(colorizers, photos, skipped, settings.grid_images, on_image)
    except (RuntimeError, MemoryError) as exc:  # e.g. out of memory on the device: said in one line
        raise EvalError(f"evaluation stopped: {first_line(exc)} (try a smaller --batch-size or --mode tile)",
                        ExitCode.FAILED) from None
    if not result.rows:
        counts = ", ".join(f"{n} {why}" for why, n in skipped.items() if n) or "none"
        raise EvalError(f"{source}: no colour photos to evaluate (skipped: {counts})")
    summaries = result.summaries()
    for s in summaries:
        s["weights"] = str(settings.weights or (Path(settings.weights_dir) / ARCHS[s["network"]].weights_file
                                                 if settings.weights_dir else shipped_weights(s["network"])))
    summary = {"data": source, "mode": settings.mode, "render_size": settings.render_size,
               "strength": settings.strength, "device": str(device),
               "precision": next(iter(colorizers.values())).precision, "images": result.images(),
               "skipped": dict(skipped), "out": str(settings.out), "networks": summaries}
    return summary, write_results(settings.out, result, summary)
