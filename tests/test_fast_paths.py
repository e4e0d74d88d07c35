"""The fast full-resolution paths give what the plain scikit-image float path gives, within one step."""

import threading
import time
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage import color

from colorize_cli import heap
from colorize_cli.batch import colorize_folder
from colorize_cli.color import l_of_pixels, pixels_of_lab
from colorize_cli.predictor import Colorizer, torch_threads
from colorize_cli.registry import load_network
from colorize_cli.metrics import mse, pixels_mse
from tests.conftest import small_photo


def reference_output(pixels: np.ndarray, ab: np.ndarray, bits: int) -> np.ndarray:
    """The unoptimised path: float64 scikit-image LAB both ways, then rounding."""
    top = (1 << bits) - 1
    rgb = pixels.astype(np.float64) / ((1 << (8 * pixels.itemsize)) - 1)
    l = color.rgb2lab(rgb if rgb.ndim == 3 else np.dstack([rgb] * 3))[..., 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # out-of-gamut predictions are clipped, as intended
        out = color.lab2rgb(np.dstack([l, ab]))
    return np.round(np.clip(out, 0, 1) * top).astype(np.uint8 if bits == 8 else np.uint16)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("grey", [False, True])
def test_l_and_output_match_the_float64_path(bits, grey):
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = rng.integers(0, top + 1, (40, 60) if grey else (40, 60, 3)).astype(dtype)
    ab = rng.normal(0, 30, (40, 60, 2)).astype(np.float32)
    rgb = pixels.astype(np.float64) / top
    expected_l = color.rgb2lab(rgb if not grey else np.dstack([rgb] * 3))[..., 0]
    np.testing.assert_allclose(l_of_pixels(pixels), expected_l, atol=2e-3)
    expected = reference_output(pixels, ab, bits)
    got = pixels_of_lab(l_of_pixels(pixels), ab, bits)
    step = 1 if bits == 8 else 257  # one 8-bit step, on either scale
    assert np.abs(got.astype(np.int64) - expected).max() <= step


def test_integer_mse_equals_the_float_mse():
    a = small_photo("astronaut", (30, 40))
    b = small_photo("coffee", (30, 40))
    assert pixels_mse(a, b, rows=7) == pytest.approx(mse(a / 255.0, b / 255.0), rel=1e-6)
    assert pixels_mse(a.astype(np.uint16) * 257, b) == pytest.approx(mse(a / 255.0, b / 255.0), rel=1e-6)


def test_batch_output_matches_the_unoptimised_path(tmp_path, weights_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    photo = small_photo("chelsea", (90, 120))
    iio.imwrite(folder / "cat.png", photo)
    net, _ = load_network(6, weights_dir / "arch6.pt")
    colorizer = Colorizer(net, "cpu", "resize")
    colorize_folder(folder, tmp_path / "out", colorizer)
    got = iio.imread(tmp_path / "out" / "cat.png")
    ab = colorizer.predict_ab([l_of_pixels(photo)])[0]
    expected = reference_output(photo, ab, 8)
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_more_threads_give_the_same_outputs_and_rows(tmp_path, weights_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "astronaut", "coffee", "chelsea"]):
        iio.imwrite(folder / f"{i}.png", small_photo(name, (30 + i, 40)))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    net, _ = load_network(3, weights_dir / "arch3.pt")
    reports = [colorize_folder(folder, tmp_path / f"out{w}", Colorizer(net, "cpu", "resize", batch_size=3), threads=w)
               for w in (1, 3)]
    for name in [f"{i}.png" for i in range(7)]:
        assert np.array_equal(iio.imread(tmp_path / "out1" / name), iio.imread(tmp_path / "out3" / name))
    rows = [sorted((r.input, r.status, r.mse) for r in report.rows) for report in reports]
    assert rows[0] == rows[1]
    assert sum(r[1] == "failed" for r in rows[0]) == 1 and len(rows[0]) == 8


class SlowNetwork(torch.nn.Module):
    """Records how many calls run at once and the torch threads each one sees."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        self.lock = threading.Lock()
        self.running = self.most_at_once = 0
        self.threads_seen = set()

    def forward(self, x):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads_seen.add(torch.get_num_threads())
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return self.conv(x)


def test_on_cpu_the_network_runs_in_lanes_that_share_the_threads(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        iio.imwrite(folder / f"{i}.png", small_photo("coffee", (20 + i, 30)))
    net = SlowNetwork()
    with torch_threads(2):
        report = colorize_folder(folder, tmp_path / "out", Colorizer(net, "cpu", "resize"), threads=2)
        assert torch.get_num_threads() == 2  # put back after the run
    assert [r.status for r in report.rows] == ["ok"] * 6
    assert net.most_at_once == 2 and net.threads_seen == {1}


def test_free_heap_pages_are_released_every_32nd_image_across_batches(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(20):
        iio.imwrite(folder / f"{i}.png", small_photo("coffee", (8, 8 + i)))
    released = []
    monkeypatch.setattr(heap, "_malloc_trim", released.append)
    monkeypatch.setattr(heap, "_images_done", 0)
    colorizer = Colorizer(torch.nn.Conv2d(1, 2, 1), "cpu", "resize")
    colorize_folder(folder, tmp_path / "a", colorizer, threads=2)
    assert released == []
    colorize_folder(folder, tmp_path / "b", colorizer, threads=2)  # short batches, as a dask worker runs
    assert released == [0]  # malloc_trim(0), after the 32nd image of the two
