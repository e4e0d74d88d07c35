"""`colorize batch` on every kind of input it meets in archives: a corpus made here, run through the CLI."""

import io
import json
import os
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.decode import DecodeError, decode
from colorize_cli.files import TEMP_SUFFIX

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, opening badexif.jpg here

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GREY_PROFILE = SRGB[:16] + b"GRAY" + SRGB[20:]  # only the header's colour space matters here
MAKE, ORIENTATION = 0x010F, 0x0112


def colour(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A colourful uint8 RGB image: dark left half, bright right half, gradients and a little noise."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 1 - x / max(w - 1, 1)], axis=2) * 160
    rgb[:, w // 2 :] += 80
    rgb += np.random.default_rng(seed).normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def exif_bytes(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "TestMake"
    if orientation != 1:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_chunks(data: bytes, *chunks: bytes) -> bytes:
    """PNG bytes with extra chunks right after IHDR."""
    return data[:33] + b"".join(chunks) + data[33:]


def png16(array: np.ndarray, greyscale: bool = False) -> bytes:
    h, w = array.shape[:2]
    buffer = io.BytesIO()
    png.Writer(w, h, greyscale=greyscale, bitdepth=16).write(buffer, array.reshape(h, -1))
    return buffer.getvalue()


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def deep_rgb(h: int, w: int) -> np.ndarray:
    return colour(h, w).astype(np.uint16) * 257 + np.random.default_rng(1).integers(0, 257, (h, w, 3), dtype=np.uint16)


def alpha_ramp(h: int, w: int) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


def make_corpus(root: Path) -> None:
    """Every input case as a file under `root`."""
    files = {
        "orient.jpg": saved(Image.fromarray(colour(24, 40)), "JPEG", quality=95, exif=exif_bytes(6), icc_profile=SRGB),
        "deep16.png": with_chunks(png16(deep_rgb(20, 30)), png_chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(SRGB)),
                                  png_chunk(b"eXIf", exif_bytes(8)[6:])),
        "grey16.png": png16((np.linspace(0, 65535, 18 * 26).reshape(18, 26)).astype(np.uint16), greyscale=True),
        "greyalpha.png": saved(Image.fromarray(np.dstack([colour(20, 30)[..., 0], alpha_ramp(20, 30)])), "PNG"),
        "rgba.png": saved(Image.fromarray(np.dstack([colour(20, 30), alpha_ramp(20, 30)])), "PNG"),
        "palette.png": saved(Image.fromarray(colour(20, 30)).quantize(16), "PNG", transparency=0),
        "cmyk.jpg": saved(Image.fromarray(colour(20, 30)).convert("CMYK"), "JPEG"),
        "anim.gif": saved(Image.fromarray(colour(20, 30, 1)), "GIF", save_all=True, duration=50,
                          append_images=[Image.fromarray(colour(20, 30, seed)[::-1]) for seed in (2, 3)]),
        "one.png": saved(Image.fromarray(colour(1, 1)), "PNG"),
        "tall.png": saved(Image.fromarray(colour(5000, 3)), "PNG"),
        "wide.jpg": saved(Image.fromarray(colour(3, 5000)), "JPEG"),
        "greyrgb.png": saved(Image.fromarray(colour(20, 30)[..., :1].repeat(3, axis=2)), "PNG"),
        "badexif.jpg": saved(Image.fromarray(colour(20, 30)), "JPEG", exif=b"Exif\0\0II*\0\xff\xff\xff\x0f"),
        "greyicc.png": saved(Image.fromarray(colour(20, 30)[..., 0]), "PNG", icc_profile=GREY_PROFILE),
        "empty.jpg": b"",
        "truncated.jpg": saved(Image.fromarray(colour(64, 64)), "JPEG")[:700],
        "text.jpg": b"This is a text file with an image's name.\n",
        "bomb.png": b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b""),
    }
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    tifffile.imwrite(root / "deep16.tif", deep_rgb(20, 30), photometric="rgb",
                     extratags=[(34675, "B", len(SRGB), SRGB, False)])
    os.mkfifo(root / "fifo.jpg")
    (root / "folder.jpg").mkdir()
    (root / "broken.jpg").symlink_to(root / "missing.jpg")


OK = {  # input -> output name
    "orient.jpg": "orient.jpg", "deep16.png": "deep16.png", "grey16.png": "grey16.png", "deep16.tif": "deep16.tif",
    "greyalpha.png": "greyalpha.png", "rgba.png": "rgba.png", "palette.png": "palette.png", "cmyk.jpg": "cmyk.jpg",
    "anim.gif": "anim.png", "one.png": "one.png", "tall.png": "tall.png", "wide.jpg": "wide.jpg",
    "greyrgb.png": "greyrgb.png", "greyicc.png": "greyicc.png",
    "badexif.jpg": "badexif.jpg",
}
REJECTED = {  # input -> what its error says
    "empty.jpg": "empty file (0 bytes)",
    "truncated.jpg": "truncated",
    "text.jpg": "not an image file",
    "bomb.png": "40000x40000 = 1600000000 pixels, over the limit of 200000000",
    "fifo.jpg": "not a regular file (a FIFO)",
    "broken.jpg": "broken symlink",
}


def snapshot(root: Path) -> dict:
    """Bytes and mtime of every input, to prove the run never touched one."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        regular = path.is_file() and not path.is_symlink() and not path.is_fifo()
        state[path.name] = (info.st_mtime_ns, info.st_mode, path.read_bytes() if regular else None)
    return state


@pytest.fixture(scope="module")
def run(weights_dir, tmp_path_factory):
    """The corpus, one CLI run over it with --json, and what the run left behind."""
    base = tmp_path_factory.mktemp("inputs")
    corpus, out = base / "corpus", base / "out"
    make_corpus(corpus)
    before = snapshot(corpus)
    result = CliRunner().invoke(app, ["batch", "--weights", str(weights_dir / "arch1.pt"), "--json",
                                      str(corpus), str(out)])
    rows = {Path(r["input"]).name: r for r in json.loads((out / "report.json").read_text())["rows"]}
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {"corpus": corpus, "out": out, "result": result, "before": before, "rows": rows, "lines": lines}


def grey_of(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").convert("L"), dtype=np.float32)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_run_goes_on_past_bad_files_and_exits_1(run):
    result = run["result"]
    assert result.exit_code == 1, result.output
    assert set(run["rows"]) == set(OK) | set(REJECTED)
    assert list(run["out"].rglob(f"*{TEMP_SUFFIX}")) == []


def test_inputs_untouched(run):
    assert snapshot(run["corpus"]) == run["before"]


def test_stdout_holds_only_one_json_line_per_file(run):
    lines = {Path(line["input"]).name: line for line in run["lines"]}
    assert len(run["lines"]) == len(run["rows"]) == len(lines)
    for name, line in lines.items():
        assert set(line) == {"status", "input", "output", "mse", "render_size", "strength", "error"}
        row = run["rows"][name]
        assert (line["status"], line["output"], line["mse"], line["error"]) == \
               (row["status"], row["output"], row["mse"], row["error"])


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_with_one_line_and_a_row(run, name):
    row = run["rows"][name]
    assert row["status"] == "failed"
    assert REJECTED[name] in row["error"]
    assert "\n" not in row["error"]
    assert f"colorize: {run['corpus'] / name}: {row['error']}\n" in run["result"].stderr
    assert not Path(row["output"]).exists()


@pytest.mark.parametrize("name", sorted(OK))
def test_colourised(run, name):
    row = run["rows"][name]
    assert row["status"] == "ok", row
    assert row["output"] == str(run["out"] / OK[name])
    with Image.open(run["corpus"] / name) as source, Image.open(row["output"]) as output:
        output.load()
        assert output.size == ImageOps.exif_transpose(source).size == (row["width"], row["height"])


def test_exif_orientation_turns_output_upright_and_keeps_metadata(run):
    output = Image.open(run["out"] / "orient.jpg")
    upright = grey_of(ImageOps.exif_transpose(Image.open(run["corpus"] / "orient.jpg")))
    assert output.size == (24, 40)
    assert correlation(grey_of(output), upright) > 0.9 > correlation(grey_of(output), upright[::-1, ::-1])
    assert output.getexif().get(ORIENTATION, 1) == 1
    assert output.getexif()[MAKE] == "TestMake"
    assert output.info["icc_profile"] == SRGB


def test_16_bit_png_stays_16_bit_upright_with_metadata(run):
    data = (run["out"] / "deep16.png").read_bytes()
    assert data[24] == 16
    _, _, rows, info = png.Reader(bytes=data).asDirect()
    assert info["bitdepth"] == 16 and info["planes"] == 3 and (info["size"]) == (20, 30)
    output = Image.open(run["out"] / "deep16.png")
    upright = grey_of(ImageOps.exif_transpose(Image.open(run["corpus"] / "deep16.png")))
    assert correlation(grey_of(output), upright) > 0.9 > correlation(grey_of(output), upright[::-1, ::-1])
    assert output.info["icc_profile"] == SRGB
    assert output.getexif()[MAKE] == "TestMake" and output.getexif().get(ORIENTATION, 1) == 1


def test_16_bit_grey_png_gives_16_bit_colour(run):
    assert (run["out"] / "grey16.png").read_bytes()[24:26] == bytes([16, 2])
    assert run["rows"]["grey16.png"]["ground_truth"] is False


def test_16_bit_tiff_stays_16_bit_with_its_profile(run):
    with tifffile.TiffFile(run["out"] / "deep16.tif") as tif:
        page = tif.pages[0]
        assert page.asarray().dtype == np.uint16 and page.shape == (20, 30, 3)
        assert bytes(page.tags[34675].value) == SRGB


@pytest.mark.parametrize("name", ["greyalpha.png", "rgba.png", "palette.png"])
def test_alpha_kept(run, name):
    alpha_in = np.asarray(Image.open(run["corpus"] / name).convert("RGBA"))[..., 3]
    output = Image.open(run["out"] / name)
    assert output.mode == "RGBA"
    assert np.array_equal(np.asarray(output)[..., 3], alpha_in)


def test_cmyk_jpeg_becomes_rgb(run):
    assert Image.open(run["out"] / "cmyk.jpg").mode == "RGB"
    assert run["rows"]["cmyk.jpg"]["ground_truth"] is True


def test_animated_gif_uses_first_frame_with_a_warning(run):
    row = run["rows"]["anim.gif"]
    assert "3 frames" in row["notes"] and "first" in row["notes"]
    assert f"warning: {run['corpus'] / 'anim.gif'}: {row['notes']}" in run["result"].stderr
    first = grey_of(Image.open(run["corpus"] / "anim.gif"))
    assert correlation(grey_of(Image.open(run["out"] / "anim.png")), first) > 0.9


def test_grey_stored_as_rgb_has_no_ground_truth(run):
    row, line = run["rows"]["greyrgb.png"], {Path(x["input"]).name: x for x in run["lines"]}["greyrgb.png"]
    assert row["ground_truth"] is False and row["mse"] is None and line["mse"] is None
    assert run["rows"]["rgba.png"]["mse"] is not None


def test_damaged_exif_is_a_warning_with_the_path(run):
    row = run["rows"]["badexif.jpg"]
    assert "Corrupt EXIF data" in row["notes"]
    assert f"warning: {run['corpus'] / 'badexif.jpg'}: {row['notes']}" in run["result"].stderr


def test_grey_profile_not_given_to_a_colour_output(run):
    assert Image.open(run["corpus"] / "greyicc.png").info["icc_profile"] == GREY_PROFILE
    assert "icc_profile" not in Image.open(run["out"] / "greyicc.png").info


def test_folder_named_like_an_image_is_walked_not_decoded(run):
    assert "folder.jpg" not in run["rows"]


def photo_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colour(20, 20)).save(path)
    return path


def cli(weights_dir, *args):
    return CliRunner().invoke(app, ["batch", "--weights", str(weights_dir / "arch1.pt"), *map(str, args)])


def test_max_pixels(weights_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(colour(100, 100)).save(folder / "big.png")
    Image.fromarray(colour(50, 50)).save(folder / "small.png")
    result = cli(weights_dir, "--max-pixels", 5000, "--json", folder, tmp_path / "out")
    lines = {Path(x["input"]).name: x for x in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 1
    assert lines["small.png"]["status"] == "ok"
    assert lines["big.png"]["status"] == "failed"
    assert lines["big.png"]["error"] == "100x100 = 10000 pixels, over the limit of 5000 (decompression bomb? see --max-pixels)"
    assert f"colorize: {folder / 'big.png'}: {lines['big.png']['error']}" in result.stderr


def test_file_vanishing_during_the_run(weights_dir, tmp_path, monkeypatch):
    import colorize_cli.batch

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(colour(20, 20)).save(folder / name)
    real_decode = colorize_cli.batch.decode

    def decode_after_b_vanished(path, max_pixels):
        (folder / "b.png").unlink(missing_ok=True)
        return real_decode(path, max_pixels)

    monkeypatch.setattr(colorize_cli.batch, "decode", decode_after_b_vanished)
    result = cli(weights_dir, "--json", "--batch-size", 1, folder, tmp_path / "out")
    lines = {Path(x["input"]).name: x for x in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 1
    assert [lines[n]["status"] for n in ("a.png", "b.png", "c.png")] == ["ok", "failed", "ok"]
    assert lines["b.png"]["error"] == "file not found (vanished)"
    assert f"colorize: {folder / 'b.png'}: file not found (vanished)" in result.stderr


def can_read(path: Path) -> bool:
    try:
        path.open("rb").close()
        return True
    except PermissionError:
        return False


def test_unreadable_file(weights_dir, tmp_path):
    folder = tmp_path / "in"
    locked, readable = photo_file(folder / "locked.png"), photo_file(folder / "readable.png")
    locked.chmod(0)
    try:
        if can_read(locked):
            pytest.skip("this user (root) reads files whatever their permissions")
        result = cli(weights_dir, "--json", locked, readable, tmp_path / "out")
    finally:
        locked.chmod(0o644)
    lines = {Path(x["input"]).name: x for x in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 1
    assert lines["readable.png"]["status"] == "ok"
    assert lines["locked.png"]["error"] == "permission denied"
    assert f"colorize: {locked}: permission denied" in result.stderr


def test_decode_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    outcome = []

    def try_decode():
        try:
            decode(tmp_path / "pipe.png")
        except DecodeError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=try_decode, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "decode blocked on a FIFO"
    assert outcome == ["not a regular file (a FIFO)"]


def test_decode_refuses_a_directory(tmp_path):
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(DecodeError, match=r"^not a regular file \(a directory\)$"):
        decode(tmp_path / "x.jpg")


def test_a_float_planar_tiff_that_pillow_cannot_open_is_read_with_tifffile(tmp_path):
    import tifffile

    from colorize_cli.decode import decode

    rgb = np.random.default_rng(0).random((3, 12, 10))
    tifffile.imwrite(tmp_path / "float.tif", np.stack([rgb, rgb]), photometric="rgb", planarconfig="separate")
    image = decode(tmp_path / "float.tif")
    assert image.pixels.shape == (12, 10, 3) and image.bit_depth == 16
    np.testing.assert_allclose(image.rgb, rgb.transpose(1, 2, 0), atol=1 / 65535)
    assert "2 frames" in image.notes[0]


def test_warnings_stay_with_their_file_when_threads_decode_at_once(tmp_path):
    bad = saved(Image.fromarray(colour(20, 30)), "JPEG", exif=b"Exif\0\0II*\0\xff\xff\xff\x0f")
    good = saved(Image.fromarray(colour(20, 30)), "PNG")
    (tmp_path / "bad.jpg").write_bytes(bad)
    (tmp_path / "good.png").write_bytes(good)

    def notes(name):
        return [decode(tmp_path / name).notes for _ in range(150)]

    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(notes, name) for name in ("bad.jpg", "good.png", "bad.jpg", "good.png")]
        bad_a, good_a, bad_b, good_b = (r.result() for r in results)
    assert all(any("Corrupt EXIF data" in n for n in note) for note in bad_a + bad_b)
    assert all(note == [] for note in good_a + good_b)
