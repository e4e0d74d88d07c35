"""The gallery: OUTPUT/index.html beside the outputs, thumbnails, escaping, and a real browser loading it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from colorize_cli.gallery import THUMB_SIDE, thumbnail_paths
from tests.test_batch_runs import batch, json_lines, photo

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
HOSTILE = "<script>alert(1)</script>.png"


@pytest.fixture
def gallery_run(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png", 240, 400)
    photo(tmp_path / "in" / "sub" / "b.jpg", 64, 48, seed=1)
    photo(tmp_path / "in" / HOSTILE, seed=2)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    result = batch(weights_dir, "--json", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    return tmp_path / "out", result


def test_the_page_shows_every_row_with_its_thumbnails_and_failures(gallery_run):
    out, result = gallery_run
    page = (out / "index.html").read_text()
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert page.count("<tr class=") == len(rows) == 4
    assert "failed: not an image file" in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.png" in page
    for row in rows:
        if row["status"] == "ok":
            for thumb in thumbnail_paths(out, Path(row["output"])):
                with Image.open(thumb) as image:
                    assert image.format == "JPEG" and max(image.size) <= THUMB_SIDE
                assert os.path.relpath(thumb, out) in page
    with Image.open(thumbnail_paths(out, out / "a.png")[1]) as image:
        assert image.size == (THUMB_SIDE, 192)  # long side 320, aspect kept
    assert "PSNR" in page and "href=\"a.png\"" in page


def test_a_rerun_rewrites_the_page_with_skipped_rows_and_their_thumbnails(weights_dir, gallery_run):
    out, _ = gallery_run
    result = batch(weights_dir, "--json", out.parent / "in", out)
    assert {r["status"] for r in json_lines(result).values()} == {"skipped", "failed"}
    page = (out / "index.html").read_text()
    assert page.count("<tr class=\"skipped\">") == 3 and page.count("-out.jpg") == 3


def test_no_gallery_writes_no_page_and_no_thumbnails(weights_dir, tmp_path):
    photo(tmp_path / "in" / "a.png")
    assert batch(weights_dir, "--no-gallery", tmp_path / "in", tmp_path / "out").exit_code == 0
    assert not (tmp_path / "out" / "index.html").exists() and not (tmp_path / "out" / ".thumbs").exists()


HARNESS = """<!DOCTYPE html><html><body><iframe id="g" src="PAGE" width="1200" height="900"></iframe>
<pre id="result">pending</pre><script>
document.getElementById("g").addEventListener("load", async () => {
  const doc = document.getElementById("g").contentDocument;
  const images = Array.from(doc.images);
  for (const img of images) img.loading = "eager";  // the page loads thumbnails lazily, as they scroll in
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done); })));
  const decoded = images.filter(img => img.naturalWidth > 0).length;
  const failed = images.filter(img => img.naturalWidth === 0).map(img => img.src);
  document.getElementById("result").textContent = JSON.stringify(
    {images: images.length, decoded, failed, rows: doc.querySelectorAll("tr[class]").length,
     scripts: doc.scripts.length, title: doc.title});
});
</script></body></html>"""


@pytest.mark.skipif(BROWSER is None, reason="no chromium (.ci/run installs Debian's)")
def test_a_headless_browser_loads_the_page_and_decodes_every_image(gallery_run, tmp_path):
    out, _ = gallery_run
    harness = out / "harness-for-test.html"
    harness.write_text(HARNESS.replace("PAGE", "index.html"))
    done = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=15000", "--dump-dom", harness.as_uri()],
        capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout.split('<pre id="result">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert result["rows"] == 4 and result["scripts"] == 0
    assert result["images"] == 6 and result["decoded"] == 6 and result["failed"] == []  # 3 ok rows, in and out
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    assert console == []
