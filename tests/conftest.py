"""Shared test fixtures: small photos written by the tests and small untrained weights."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from colorize_cli.registry import build_network, write_weights


def small_photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """One of scikit-image's bundled colour photos, resized, as uint8 RGB."""
    photo = getattr(data, name)()
    return (resize(photo, size, anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """Untrained but deterministic weights for every network, in the shipped file layout."""
    folder = tmp_path_factory.mktemp("weights")
    for arch in range(1, 7):
        torch.manual_seed(arch)
        write_weights(build_network(arch), arch, folder / f"arch{arch}.pt", {"note": "test weights"})
    return folder


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    """A folder tree with three small colour photos and one grey one."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    iio.imwrite(root / "astronaut.png", small_photo("astronaut", (48, 64)))
    iio.imwrite(root / "sub" / "coffee.jpg", small_photo("coffee", (40, 56)), quality=95)
    iio.imwrite(root / "sub" / "chelsea.png", small_photo("chelsea", (33, 47)))
    grey = (resize(data.camera(), (36, 52)) * 255).astype(np.uint8)
    iio.imwrite(root / "camera.png", grey)
    return root


class SeenShapes(torch.nn.Module):
    """Wraps a network and records the shape of every input it gets."""

    def __init__(self, net):
        super().__init__()
        self.net, self.shapes = net, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.net(x)
