"""Training photos: 8-bit RGB in memory, source-balanced draws, crops in LAB, bad files skipped."""

import gc
import resource

import imageio.v3 as iio
import numpy as np
import pytest
from skimage import color
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.color import lab_of_pixels
from colorize_cli.predictor import fitted_size
from colorize_cli.training_data import (NoTrainingPhotos, at_render_size, draw, fitted_photos, load_photos, random_crops,
                                        shrink_to_render_size)
from tests.conftest import small_photo


@pytest.fixture
def uneven_tree(tmp_path):
    """Three source folders of 12, 3 and 1 photos (one nested a level deeper), and one at the top."""
    root = tmp_path / "data"
    photo = small_photo("astronaut", (40, 40))
    for folder, count in (("big", 12), ("small", 3), ("one/deeper", 1)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            iio.imwrite(root / folder / f"{i}.png", np.roll(photo, i, axis=1))
    iio.imwrite(root / "top.png", photo)
    return root


def test_photos_are_kept_as_8_bit_rgb_with_their_source_folder(uneven_tree):
    photo_set = load_photos(uneven_tree, log=lambda m: None)
    assert len(photo_set) == 17
    assert photo_set.sources == [".", "big", "one", "small"]
    assert all(p.dtype == np.uint8 and p.shape == (40, 40, 3) for p in photo_set.photos)
    assert photo_set.nbytes == 17 * 40 * 40 * 3
    assert np.bincount(photo_set.source_of).tolist() == [1, 12, 1, 3]


def test_a_render_size_shrinks_larger_photos_once_in_place(uneven_tree):
    photo_set = load_photos(uneven_tree, log=lambda m: None)
    shrink_to_render_size(photo_set, 400)
    assert all(p.shape == (40, 40, 3) for p in photo_set.photos)  # within the render size: as stored
    shrink_to_render_size(photo_set, 32)
    assert all(p.shape == (32, 32, 3) for p in photo_set.photos) and len(photo_set) == 17


def test_balanced_draws_take_each_folder_about_equally(uneven_tree):
    photo_set = load_photos(uneven_tree, log=lambda m: None)
    rng = np.random.default_rng(0)
    drawn = photo_set.source_of[draw(photo_set, 8000, True, rng)]
    shares = np.bincount(drawn, minlength=4) / 8000
    assert np.allclose(shares, 0.25, atol=0.03)
    uniform = photo_set.source_of[draw(photo_set, 8000, False, rng)]
    assert np.bincount(uniform, minlength=4)[1] / 8000 == pytest.approx(12 / 17, abs=0.03)


def test_crops_are_lab_of_the_pixels_and_mirrored_at_random():
    photo = small_photo("coffee", (50, 70))
    rng = np.random.default_rng(1)
    crops = random_crops([photo] * 20, 32, rng)
    assert crops.shape == (20, 3, 32, 32) and crops.dtype == np.float32
    truth = color.rgb2lab(photo)
    windows = np.lib.stride_tricks.sliding_window_view(truth, (32, 32, 3))[..., 0, :, :, :]
    mirrored = 0
    for crop in crops.transpose(0, 2, 3, 1):
        for candidate, flip in ((crop, False), (crop[:, ::-1], True)):
            err = np.abs(windows - candidate).max(axis=(-3, -2, -1))
            if err.min() < 0.05:
                mirrored += flip
                break
        else:
            pytest.fail("a crop is not a window of the photo's LAB")
    assert 3 <= mirrored <= 17


def test_render_size_crops_come_from_the_photo_at_the_scale_batch_shows_it():
    ramp = np.repeat(np.linspace(0, 255, 192).astype(np.uint8)[None, :, None], 144, axis=0).repeat(3, axis=2)
    assert at_render_size(ramp, 48).shape[:2] == fitted_size((144, 192), 48) == (48, 48)
    assert at_render_size(ramp, 400).shape[:2] == (144, 192)  # never enlarged, as batch does not enlarge it
    rng = np.random.default_rng(4)
    as_stored = random_crops([ramp] * 8, 32, rng)[:, 0]
    shrunk = random_crops([at_render_size(ramp, 48)] * 8, 32, rng)[:, 0]
    # a 32 px crop spans a sixth of the stored ramp, but two thirds of it once shrunk as batch would
    assert np.ptp(as_stored, axis=(1, 2)).max() < 25 and np.ptp(shrunk, axis=(1, 2)).min() > 40


def test_lab_of_pixels_matches_scikit_image():
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.abs(lab_of_pixels(pixels) - color.rgb2lab(pixels)).max() < 1e-3


def test_small_photos_are_padded_and_fitted_photos_have_the_asked_size():
    photo = small_photo("rocket", (20, 30))
    rng = np.random.default_rng(3)
    assert random_crops([photo], 32, rng).shape == (1, 3, 32, 32)
    assert fitted_photos([photo, small_photo("coffee", (50, 40))], 48, rng).shape == (2, 3, 48, 48)


def test_bad_files_are_skipped_with_a_warning(uneven_tree):
    (uneven_tree / "big" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (uneven_tree / "small" / "gone.png").symlink_to(uneven_tree / "nowhere.png")
    said = []
    photo_set = load_photos(uneven_tree, log=said.append)
    assert len(photo_set) == 17
    assert any("broken.jpg" in m and "skipped" in m for m in said)
    assert any("gone.png" in m and "skipped" in m for m in said)


def test_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jpg").write_bytes(b"garbage")
    (tmp_path / "data" / "b.png").write_bytes(b"")
    with pytest.raises(NoTrainingPhotos, match="none of its 2 image files could be read"):
        load_photos(tmp_path / "data", log=lambda m: None)
    result = CliRunner().invoke(app, ["train", "--arch", "1", "--data", str(tmp_path / "data"), "--epochs", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "none of its 2 image files could be read" in result.output and "Traceback" not in result.output


def test_a_dangling_symlink_does_not_stop_training(tmp_path, uneven_tree):
    (uneven_tree / "big" / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    result = CliRunner().invoke(app, ["train", "--arch", "1", "--data", str(uneven_tree), "--epochs", "1",
                                      "--crop", "32", "--batch-size", "4", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "gone.jpg: skipped" in result.output


def test_a_failed_export_keeps_the_checkpoints_and_says_how_to_export_again(tmp_path, uneven_tree):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where the export's folder should be")
    result = CliRunner().invoke(app, ["train", "--arch", "1", "--data", str(uneven_tree), "--epochs", "1",
                                      "--crop", "32", "--batch-size", "4", "--out", str(tmp_path / "run"),
                                      "--export", str(not_a_folder / "arch1.pt")])
    assert result.exit_code == 2
    assert "cannot export" in result.output and "--resume" in result.output and "Traceback" not in result.output
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "last.pt").is_file()


def test_memory_of_the_batches_does_not_grow_with_epochs(tmp_path):
    """Drawing and cropping many epochs' batches leaves the resident set where it was after the first."""
    photos = [small_photo("chelsea", (120, 160))] * 8
    rng = np.random.default_rng(4)

    def epoch():
        for _ in range(30):
            random_crops(photos, 96, rng)
        gc.collect()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    epoch()
    after_one = epoch()
    for _ in range(5):
        last = epoch()
    assert last - after_one < 8 * 1024  # KiB: batches are made afresh and freed, nothing is kept
