"""The one colourisation path, pixels to pixels: integer RGB -> full-resolution L -> network at the render size
(resize or tiles) -> a, b at full size -> integer RGB. batch, its Dask workers, eval and training's validation
all go through `Colorizer`."""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.color import bits_of, l_of_pixels, pixels_of_lab, scale_l, unscale_ab

NETWORK_SIDE = 400  # the design's input side: the default render size
NETWORK_STRIDE = 16  # the U-Nets halve the plane four times, so the sides they see divide by 16
RENDER_SIZES = range(64, 1025, 16)  # what --render-size accepts: the networks halve a side up to four times
MAX_STRENGTH = 2.0
MODES = ("resize", "tile")
CPU_BATCH_SIZE = 1  # fastest on CPU and flat in memory (benchmarks/README.md); GPUs get more per call
ACCELERATOR_BATCH_SIZE = 4


def pick_device(name: str = "auto") -> torch.device:
    """auto -> cuda, then mps, then cpu; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: choose auto, cpu, cuda or mps")
    return torch.device(name)


PRECISIONS = ("auto", "float32", "float16", "bfloat16")


def cpu_runs_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(name: str, device: torch.device | str) -> torch.dtype:
    """The network's compute type: auto is float16 on CUDA and float32 elsewhere. Against float32,
    float16 keeps a, b within 1e-2 of their range (110); bfloat16, with fewer mantissa bits, moves
    them 3e-3 on average and up to 1e-2 (68 validation photos). A type slower than float32 on
    the device is refused."""
    device = torch.device(device)
    if name not in PRECISIONS:
        raise ValueError(f"--precision {name}: choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        name = "float16" if device.type == "cuda" else "float32"
    if name == "float32":
        return torch.float32
    if device.type == "cpu" and name == "float16":
        raise ValueError("--precision float16: CPUs have no fast float16; use bfloat16 or float32")
    if device.type == "cpu" and name == "bfloat16" and not cpu_runs_bfloat16():
        raise ValueError("--precision bfloat16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); use float32")
    if device.type == "cuda" and name == "bfloat16" and torch.cuda.get_device_capability(device)[0] < 8:
        raise ValueError("--precision bfloat16: GPUs before Ampere have no native bfloat16; use float16 or float32")
    if device.type == "mps":
        raise ValueError(f"--precision {name}: on MPS colorize runs float32 only")
    return getattr(torch, name)


def default_batch_size(device: torch.device | str) -> int:
    """Images (or tiles) per network call when none is given: 1 on CPU, 4 on a GPU."""
    return CPU_BATCH_SIZE if torch.device(device).type == "cpu" else ACCELERATOR_BATCH_SIZE


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's intra-op thread count set to `count` for the block, then put back."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resize_plane(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of NxCxHxW, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def fitted_size(shape: tuple[int, int], render_size: int) -> tuple[int, int]:
    """The plane resize mode gives the network: about render_size x render_size pixels at the image's own aspect,
    or the image's own size (sides rounded to multiples of 16) where it has fewer pixels.

    Squeezing every image into a square (the design's fit) distorts shapes that the network was trained
    on undistorted; the same pixel count keeps its speed and memory. Enlarging a small image shows the
    network blurred, oversized objects it never saw in training, and costs colour (models/README.md)."""
    h, w = shape
    side = min(render_size, math.sqrt(h * w))
    scale = side / math.sqrt(h * w)
    short = max(NETWORK_STRIDE, round(min(h, w) * scale / NETWORK_STRIDE) * NETWORK_STRIDE)
    long = max(NETWORK_STRIDE, round(side * side / short / NETWORK_STRIDE) * NETWORK_STRIDE)
    return (short, long) if h <= w else (long, short)


def _bilinear_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear upsampling from n_in to n_out, as F.interpolate computes them
    with align_corners=False: out[i] = (1 - w) * in[i0] + w * in[i1]."""
    scale = np.float32(n_in) / np.float32(n_out)  # in float32, as torch does on CPU
    src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    i0 = np.minimum(src.astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


class UpsampledAB:
    """a, b at the network's size, read at full size band by band: a full-size HxWx2 array never exists.

    Rows are upsampled when asked for (`ab[y0:y1]`), exactly as resize_plane upsamples the whole plane;
    anything else, or np.asarray(ab), gives the whole array."""

    def __init__(self, small: torch.Tensor, shape: tuple[int, int]):
        h, w = shape
        # along x once for every network row (small: network rows x W x 2), along y per band
        self.rows = F.interpolate(small[None], size=(small.shape[-2], w), mode="bilinear",
                                  align_corners=False)[0].permute(1, 2, 0).contiguous().numpy()
        self.i0, self.i1, self.w = _bilinear_taps(h, small.shape[-2])
        self.shape = (h, w, 2)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            band = range(*key.indices(self.shape[0]))
            i0, i1, w = self.i0[band.start : band.stop], self.i1[band.start : band.stop], self.w[band.start : band.stop]
            top, bottom = self.rows[i0], self.rows[i1]
            return top + (bottom - top) * w[:, None, None]
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        whole = self[0 : self.shape[0]]
        return whole if dtype is None else whole.astype(dtype)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering `length`, neighbours sharing `overlap` pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def blend_ramp(tile: int, overlap: int) -> torch.Tensor:
    """1-D tile weight: 1 inside, a linear ramp over the `overlap` band at each end, never 0."""
    d = torch.arange(tile, dtype=torch.float32)
    return torch.clamp((torch.minimum(d, tile - 1 - d) + 1) / (overlap + 1), max=1.0)


def blend_window(tile: int, overlap: int) -> torch.Tensor:
    """2-D tile weight, the outer product of two ramps."""
    ramp = blend_ramp(tile, overlap)
    return ramp[:, None] * ramp[None, :]


def summed_ramps(length: int, tile: int, overlap: int) -> torch.Tensor:
    """Sum of the 1-D ramps of all tiles along one side: the blend weights are separable, so the total
    weight at (y, x) is the product of two of these and needs no full-size array."""
    total = torch.zeros(length)
    ramp = blend_ramp(tile, overlap)
    for start in tile_starts(length, tile, overlap):
        total[start : start + tile] += ramp
    return total


def check_render_settings(render_size: int, strength: float) -> None:
    """Refuse a render size or colour strength outside what the options allow, in one line."""
    if render_size not in RENDER_SIZES:
        raise ValueError(f"--render-size {render_size}: a multiple of 16 from {RENDER_SIZES.start} to "
                         f"{RENDER_SIZES.stop - 1}")
    if not 0 <= strength <= MAX_STRENGTH:
        raise ValueError(f"--strength {strength:g}: from 0 (grey) to {MAX_STRENGTH:g}")


@dataclass
class ColorizedImage:
    """One image through the path: the input's own L, the predicted a, b and the RGB they make."""

    l: np.ndarray  # HxW, 0..100, at the input's resolution
    ab: np.ndarray  # HxWx2 (or an UpsampledAB, read band by band)
    pixels: np.ndarray  # HxWx3, uint8 or uint16 as the input


class Colorizer:
    """Owns a network, its device, the side the network sees (render size) and the strength of its colour."""

    def __init__(self, net: nn.Module, device: torch.device | str = "cpu", mode: str = "resize",
                 batch_size: int | None = None, overlap: int = 64, precision: str = "auto",
                 render_size: int = NETWORK_SIDE, strength: float = 1.0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        check_render_settings(render_size, strength)
        self.render_size = render_size
        self.strength = strength
        self.device = torch.device(device)
        self.dtype = pick_precision(precision, self.device)
        self.precision = str(self.dtype).removeprefix("torch.")  # auto resolved: float32, float16 or bfloat16
        # oneDNN's convolutions run faster on channels-last tensors on CPU (benchmarks/README.md)
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = net.to(self.device, memory_format=self.memory_format).eval()
        self.mode = mode
        self.batch_size = default_batch_size(self.device) if batch_size is None else max(1, batch_size)
        self.overlap = min(overlap, render_size // 4)  # small tiles keep most of each tile their own

    def network_lanes(self, workers: int) -> tuple[int, int]:
        """(network calls at once, torch threads for each) in a run with `workers` threads.

        On CPU in resize mode, one call per worker, up to torch's thread count, which they share: two
        one-thread calls beat one two-thread call and leave no thread spinning while decoding and
        encoding take a core (benchmarks/README.md). On a GPU, and in tile mode (whose memory bound
        is per image), one call at a time with all the threads."""
        threads = torch.get_num_threads()
        if self.device.type != "cpu" or self.mode != "resize":
            return 1, threads
        lanes = max(1, min(workers, threads))
        return lanes, max(1, threads // lanes)

    def colorize(self, images: Sequence[np.ndarray], ls: Sequence[np.ndarray] | None = None) -> list[ColorizedImage]:
        """Integer pixels (grey HxW or RGB HxWx3, uint8 or uint16) -> colourised RGB of the same size and depth.

        ls: each image's preprocess(pixels), where the caller already has it (eval keeps it per photo)."""
        ls = [self.preprocess(pixels) for pixels in images] if ls is None else ls
        return [ColorizedImage(l, ab, self.postprocess(l, ab, bits_of(pixels)))
                for pixels, l, ab in zip(images, ls, self.predict_ab(ls))]

    @staticmethod
    def preprocess(pixels: np.ndarray) -> np.ndarray:
        """Integer pixels -> the full-resolution L the network sees (its colour, if any, is dropped)."""
        return l_of_pixels(pixels)

    @staticmethod
    def postprocess(l: np.ndarray, ab, bits: int) -> np.ndarray:
        """The input's L and the predicted a, b -> integer RGB of `bits` bits, clipped to sRGB."""
        return pixels_of_lab(l, ab, bits)

    @torch.inference_mode()
    def run_network(self, l_fitted: torch.Tensor) -> torch.Tensor:
        """Nx1xHxW L (0..100) -> Nx2xHxW a, b, in chunks of batch_size."""
        out = []
        cuda = self.device.type == "cuda"
        for chunk in l_fitted.split(self.batch_size):
            chunk = chunk.pin_memory().to(self.device, non_blocking=True) if cuda else \
                chunk.to(self.device, memory_format=self.memory_format)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                ab = self.net(scale_l(chunk))
            out.append((unscale_ab(ab.float()) * self.strength).cpu())
        return torch.cat(out)

    def predict_ab(self, ls: Sequence[np.ndarray], banded: bool = False) -> list[np.ndarray]:
        """Full-resolution L planes (HxW, 0..100) -> a, b at the same sizes (HxWx2, float32).

        banded: in resize mode, images at least the render size a side get an UpsampledAB, which
        pixels_of_lab reads band by band (8 bytes a pixel less at the peak)."""
        if self.mode == "resize":
            return self._predict_resized(ls, banded)
        return [self._predict_tiled(l) for l in ls]

    def _predict_resized(self, ls, banded: bool):
        sizes = [fitted_size(l.shape, self.render_size) for l in ls]
        ab_small = [None] * len(ls)
        for size in dict.fromkeys(sizes):  # images fitted to the same size share network calls
            group = [i for i, s in enumerate(sizes) if s == size]
            fitted = torch.cat([resize_plane(torch.from_numpy(np.ascontiguousarray(ls[i]))[None, None], size)
                                for i in group])
            for i, ab in zip(group, self.run_network(fitted)):
                ab_small[i] = ab
        return [UpsampledAB(ab, l.shape) if banded and l.shape[0] >= size[0] and l.shape[1] >= size[1] else
                resize_plane(ab[None], l.shape)[0].permute(1, 2, 0).numpy()
                for ab, l, size in zip(ab_small, ls, sizes)]

    def _predict_tiled(self, l: np.ndarray) -> np.ndarray:
        """Blend overlapping tiles of the render size; the only full-size buffer is the HxWx2 result itself."""
        h, w = l.shape
        side = self.render_size
        plane = torch.from_numpy(np.ascontiguousarray(l))[None, None]
        pad_h, pad_w = max(0, side - h), max(0, side - w)
        if pad_h or pad_w:  # small sides: replicate up to one full tile
            plane = F.pad(plane, (0, pad_w, 0, pad_h), mode="replicate")
        ph, pw = plane.shape[-2:]
        window = blend_window(side, self.overlap)
        ab = torch.zeros(ph, pw, 2)
        boxes = [(y, x) for y in tile_starts(ph, side, self.overlap) for x in tile_starts(pw, side, self.overlap)]
        for i in range(0, len(boxes), self.batch_size):
            group = boxes[i : i + self.batch_size]
            tiles = torch.cat([plane[..., y : y + side, x : x + side] for y, x in group])
            for (y, x), tile_ab in zip(group, self.run_network(tiles)):
                ab[y : y + side, x : x + side] += (tile_ab * window).permute(1, 2, 0)
        ab /= summed_ramps(ph, side, self.overlap)[:, None, None]
        ab /= summed_ramps(pw, side, self.overlap)[None, :, None]
        return ab[:h, :w].numpy()
