"""The predictor: resize and tile modes give a, b at the input's size; tiles blend without seams."""

import numpy as np
import pytest
import torch
from skimage import data

from colorize_cli import predictor
from colorize_cli.color import l_of_pixels, scale_l, unscale_ab
from colorize_cli.predictor import (Colorizer, blend_window, cpu_runs_bfloat16, default_batch_size, pick_device,
                                   pick_precision, tile_starts, torch_threads)
from colorize_cli.registry import load_network
from tests.conftest import SeenShapes


@pytest.fixture
def colorizer_factory(weights_dir):
    def make(mode, overlap=64, arch=3):
        net, _ = load_network(arch, weights_dir / f"arch{arch}.pt")
        return Colorizer(net, "cpu", mode, batch_size=4, overlap=overlap)
    return make


def smooth_l(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return (50 + 30 * np.sin(x / 90) * np.cos(y / 70)).astype(np.float32)


@pytest.mark.parametrize("shape", [(642, 962), (962, 642), (400, 400), (3000, 4000), (400, 2000), (10, 50000)])
def test_resize_mode_keeps_the_aspect_at_the_render_size_in_pixels(shape):
    from colorize_cli.predictor import fitted_size

    h, w = fitted_size(shape, 400)
    assert h % 16 == 0 and w % 16 == 0
    assert abs(h * w - 400 * 400) <= 16 * max(h, w)  # within one stride of the pixel count
    if min(shape) >= 16:
        assert abs(h / w - shape[0] / shape[1]) < 16 / min(h, w) * (h / w)  # the aspect, within one stride


@pytest.mark.parametrize("shape, fitted", [((321, 481), (320, 480)), ((256, 256), (256, 256)), ((100, 150), (96, 160)),
                                           ((64, 64), (64, 64)), ((3, 500), (16, 96))])
def test_resize_mode_never_enlarges_an_image_smaller_than_the_render_size(shape, fitted):
    from colorize_cli.predictor import fitted_size

    assert fitted_size(shape, 400) == fitted  # about its own size, sides multiples of the network's stride of 16


def test_images_of_different_shapes_in_one_call_get_their_own_fits(colorizer_factory):
    colorizer = colorizer_factory("resize")
    colorizer.net = SeenShapes(colorizer.net)
    ls = [smooth_l(321, 481), smooth_l(480, 320), smooth_l(322, 480)]
    together = colorizer.predict_ab(ls)
    assert sorted(colorizer.net.shapes) == [(1, 1, 480, 320), (2, 1, 320, 480)]  # the two landscapes share a call
    for l, ab in zip(ls, together):
        np.testing.assert_allclose(ab, colorizer.predict_ab([l])[0], atol=1e-4)


def test_colorize_takes_the_callers_l_instead_of_computing_it_again(colorizer_factory):
    colorizer = colorizer_factory("resize")
    pixels = data.astronaut()[::4, ::4]
    (own,) = colorizer.colorize([pixels])
    (given,) = colorizer.colorize([pixels], [own.l])
    np.testing.assert_array_equal(given.pixels, own.pixels)
    (darker,) = colorizer.colorize([pixels], [own.l * 0.5])  # the caller's L is the one used
    assert darker.pixels.mean() < own.pixels.mean() - 20


@pytest.mark.parametrize("mode", ["resize", "tile"])
def test_ab_comes_back_at_each_input_size(colorizer_factory, mode):
    ls = [smooth_l(37, 53), smooth_l(450, 420), smooth_l(1, 1)]
    abs_ = colorizer_factory(mode).predict_ab(ls)
    assert [ab.shape for ab in abs_] == [(37, 53, 2), (450, 420, 2), (1, 1, 2)]
    assert all(ab.dtype == np.float32 and np.isfinite(ab).all() for ab in abs_)


def test_tiles_cover_the_length_with_the_overlap():
    assert tile_starts(400, 400, 64) == [0]
    starts = tile_starts(1000, 400, 64)
    assert starts[0] == 0 and starts[-1] == 600
    assert all(b - a <= 400 - 64 for a, b in zip(starts, starts[1:]))


def test_blend_window_is_positive_and_flat_inside():
    w = blend_window(400, 64)
    assert w.min() > 0 and w[200, 200] == 1.0 and w[0, 200] < w[32, 200] < w[200, 200]


def edge_jump(ab, edges):
    """Mean absolute step between neighbouring columns, at the given columns and everywhere."""
    steps = np.abs(np.diff(ab, axis=1)).mean(axis=(0, 2))
    return max(steps[e - 1] for e in edges), float(np.median(steps))


def test_tile_mode_on_1000x700_shows_no_seam(colorizer_factory):
    l = smooth_l(700, 1000)
    edges = sorted({s for s in tile_starts(1000, 400, 64) if s} | {s + 400 for s in tile_starts(1000, 400, 64)} - {1000})
    blended = colorizer_factory("tile", overlap=64).predict_ab([l])[0]
    hard = colorizer_factory("tile", overlap=0).predict_ab([l])[0]
    blended_edge, blended_typical = edge_jump(blended, edges)
    hard_edge, _ = edge_jump(hard, edges)
    assert blended_edge < 3 * blended_typical + 0.05
    assert hard_edge > blended_edge  # the check can see a seam when there is one


def test_tile_and_resize_agree_on_colour_overall(colorizer_factory):
    l = smooth_l(700, 1000)
    tiled = colorizer_factory("tile").predict_ab([l])[0]
    resized = colorizer_factory("resize").predict_ab([l])[0]
    assert abs(tiled.mean() - resized.mean()) < 5.0


def test_pick_device_auto_and_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            pick_device("cuda")


def test_one_image_per_call_on_cpu_by_default_and_the_same_colours_at_any_batch_size(weights_dir):
    net, _ = load_network(6, weights_dir / "arch6.pt")
    assert Colorizer(net, "cpu").batch_size == 1
    assert Colorizer(net, "cpu", batch_size=3).batch_size == 3
    assert default_batch_size("cuda") == 4
    ls = [smooth_l(400, 400), smooth_l(300, 500)[::-1].copy(), smooth_l(640, 480)]
    one = Colorizer(net, "cpu", batch_size=1).predict_ab(ls)
    four = Colorizer(net, "cpu", batch_size=4).predict_ab(ls)
    for a, b in zip(one, four):
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_precision_on_cuda_stays_within_1e_2_of_float32(weights_dir):
    net, _ = load_network(6, weights_dir / "arch6.pt")
    l = torch.from_numpy(smooth_l(400, 400))[None, None].repeat(4, 1, 1, 1)
    full = Colorizer(net, "cuda", precision="float32").run_network(l)
    half = Colorizer(net, "cuda").run_network(l)  # auto: float16
    assert ((full - half).abs() / 110).max() < 1e-2


@pytest.mark.skipif(not cpu_runs_bfloat16(), reason="needs a CPU with native bfloat16 (AVX512-BF16 or AMX)")
def test_bfloat16_on_cpu_stays_close_to_float32():
    net, _ = load_network(6)  # the shipped weights, on photos: an untrained network's outputs are near 0
    ls = [l_of_pixels(photo) for photo in (data.astronaut(), data.coffee(), data.chelsea())]
    full = Colorizer(net, "cpu", precision="float32").predict_ab(ls)
    reduced = Colorizer(net, "cpu", precision="bfloat16").predict_ab(ls)
    for a, b in zip(full, reduced):
        difference = np.abs(a - b) / 110
        assert 0 < difference.mean() < 5e-3 and difference.max() < 2e-2  # not 0: bfloat16 did run


def test_the_shipped_network_keeps_a_b_within_1e_2_of_float32_in_float16():
    """What float16 on CUDA relies on, checked here on CPU, where float16 is slow but runs."""
    net, _ = load_network(6)
    l = torch.from_numpy(l_of_pixels(data.coffee()[:400, :400]))[None, None]
    full = Colorizer(net, "cpu", precision="float32").run_network(l)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):
        half = unscale_ab(net(scale_l(l)).float())
    assert 0 < ((full - half).abs() / 110).max() < 1e-2


@pytest.mark.parametrize("name, device, expected", [
    ("auto", "cpu", torch.float32),
    ("auto", "cuda", torch.float16),
    ("float32", "cuda", torch.float32),
    ("float16", "cuda", torch.float16),
])
def test_precision_auto_is_float16_on_cuda_only(name, device, expected):
    assert pick_precision(name, device) == expected


def test_precisions_slower_than_float32_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="float16: CPUs have no fast float16"):
        pick_precision("float16", "cpu")
    monkeypatch.setattr(predictor, "cpu_runs_bfloat16", lambda: False)
    with pytest.raises(ValueError, match="this CPU has no native bfloat16"):
        Colorizer(torch.nn.Conv2d(1, 2, 1), "cpu", precision="bfloat16")
    with pytest.raises(ValueError, match="choose one of auto, float32, float16, bfloat16"):
        pick_precision("int8", "cpu")


@pytest.mark.parametrize("threads, workers, mode, expected", [
    (2, 2, "resize", (2, 1)),  # two one-thread calls at once
    (4, 2, "resize", (2, 2)),
    (2, 8, "resize", (2, 1)),  # never more calls than threads
    (2, 1, "resize", (1, 2)),
    (1, 2, "resize", (1, 1)),
    (2, 2, "tile", (1, 2)),    # one image's tiles at a time: its memory bound holds
])
def test_network_lanes_share_torch_threads_on_cpu(threads, workers, mode, expected):
    colorizer = Colorizer(torch.nn.Conv2d(1, 2, 1), "cpu", mode)
    with torch_threads(threads):
        assert colorizer.network_lanes(workers) == expected
        assert torch.get_num_threads() == threads


def test_torch_threads_are_put_back_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("shape", [(400, 400), (401, 999), (1234, 567), (900, 1600)])
def test_banded_a_b_are_the_whole_upsampled_plane_read_in_bands(shape):
    from colorize_cli.predictor import UpsampledAB, resize_plane

    small = torch.randn(2, 400, 400, generator=torch.Generator().manual_seed(0)) * 30
    whole = resize_plane(small[None], shape)[0].permute(1, 2, 0).numpy()
    banded = UpsampledAB(small, shape)
    assert banded.shape == whole.shape
    # float32 rounding of a different order of operations: far below the 0.4 of one 8-bit step
    assert np.abs(np.asarray(banded) - whole).max() < 1e-2
    rows = [banded[y : y + 64] for y in range(0, shape[0], 64)]
    assert np.abs(np.concatenate(rows) - whole).max() < 1e-2


def test_batch_gets_banded_a_b_only_where_it_upsamples(colorizer_factory):
    from colorize_cli.predictor import UpsampledAB

    big, small = smooth_l(500, 700), smooth_l(200, 700)  # small: fewer pixels than the network's 400x400
    banded = colorizer_factory("resize").predict_ab([big, small], banded=True)
    assert isinstance(banded[0], UpsampledAB) and isinstance(banded[1], np.ndarray)
    plain = colorizer_factory("resize").predict_ab([big])[0]
    assert isinstance(plain, np.ndarray) and np.abs(np.asarray(banded[0]) - plain).max() < 1e-3
