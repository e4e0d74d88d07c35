"""Training photos: decoded once into 8-bit RGB in memory, drawn source by source, cropped, turned into LAB."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colorize_cli.color import lab_of_pixels
from colorize_cli.decode import decode
from colorize_cli.encode import to_bits
from colorize_cli.errors import first_line
from colorize_cli.files import walk_images
from colorize_cli.predictor import fitted_size


class NoTrainingPhotos(Exception):
    """Nothing under the data folder can be trained on."""


@dataclass
class PhotoSet:
    """8-bit RGB photos (HxWx3 uint8, a third of float16 LAB's memory) and the source folder of each."""

    photos: list[np.ndarray]
    sources: list[str]
    source_of: np.ndarray  # index into `sources`, one per photo

    def __post_init__(self):
        self.members = [np.flatnonzero(self.source_of == s) for s in range(len(self.sources))]

    def __len__(self) -> int:
        return len(self.photos)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.photos)


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels (grey or RGB, 8 or 16 bits) as HxWx3 uint8."""
    pixels = to_bits(pixels, 8)
    return np.ascontiguousarray(np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels)


def source_name(root: Path, path: Path) -> str:
    """The folder directly under `root` that holds `path` (".": photos at the top level)."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else "."


def load_photos(root: Path, log=print) -> PhotoSet:
    """Every readable image under `root`; a file that cannot be read is skipped with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise NoTrainingPhotos(f"{root}: not a folder")
    paths = walk_images(root, on_warning=lambda message: log(f"warning: {message}"))
    photos, names = [], []
    for path in paths:
        try:
            photos.append(to_rgb8(decode(path).pixels))
            names.append(source_name(root, path))
        except Exception as exc:  # one bad photo must not stop training
            log(f"warning: {path}: skipped ({first_line(exc)})")
    if not photos:
        found = f"none of its {len(paths)} image files could be read" if paths else "no image files found"
        raise NoTrainingPhotos(f"{root}: {found}")
    sources = sorted(set(names))
    return PhotoSet(photos, sources, np.array([sources.index(n) for n in names]))


def draw(photo_set: PhotoSet, count: int, balanced: bool, rng: np.random.Generator) -> np.ndarray:
    """`count` photo indices: each source folder equally likely (balanced), or each photo equally likely."""
    if not balanced:
        return rng.integers(0, len(photo_set), count)
    folders = rng.integers(0, len(photo_set.sources), count)
    members = photo_set.members
    return np.array([members[f][rng.integers(0, len(members[f]))] for f in folders])


def at_render_size(rgb: np.ndarray, render_size: int) -> np.ndarray:
    """The photo at the size resize mode gives the network (larger ones shrunk to about render_size x render_size);
    a smaller one as stored, since a crop needs no rounding to the network's stride."""
    from PIL import Image

    if rgb.shape[0] * rgb.shape[1] <= render_size * render_size:
        return rgb
    h, w = fitted_size(rgb.shape[:2], render_size)
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))


def shrink_to_render_size(photo_set: PhotoSet, render_size: int) -> None:
    """Keep each photo at the scale `colorize batch` shows it to the network, so crops have objects at the size met
    in use; in place, one photo at a time, so the originals are freed as they go."""
    for i, rgb in enumerate(photo_set.photos):
        photo_set.photos[i] = at_render_size(rgb, render_size)


def random_crops(photos: list[np.ndarray], crop: int, rng: np.random.Generator) -> np.ndarray:
    """One random crop (and coin-flip mirror) of side `crop` per photo -> Nx3xCxC float32 LAB."""
    out = np.empty((len(photos), crop, crop, 3), np.uint8)
    for i, rgb in enumerate(photos):
        h, w = rgb.shape[:2]
        if h < crop or w < crop:
            rgb = np.pad(rgb, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="reflect")
            h, w = rgb.shape[:2]
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        patch = rgb[y : y + crop, x : x + crop]
        out[i] = patch[:, ::-1] if rng.random() < 0.5 else patch
    return lab_of_pixels(out).transpose(0, 3, 1, 2)


def fitted_photos(photos: list[np.ndarray], side: int, rng: np.random.Generator) -> np.ndarray:
    """Whole photos resized to side x side (the design's training input), coin-flip mirrored -> Nx3xSxS LAB."""
    from PIL import Image

    out = np.empty((len(photos), side, side, 3), np.uint8)
    for i, rgb in enumerate(photos):
        fitted = np.asarray(Image.fromarray(rgb).resize((side, side), Image.BILINEAR))
        out[i] = fitted[:, ::-1] if rng.random() < 0.5 else fitted
    return lab_of_pixels(out).transpose(0, 3, 1, 2)
