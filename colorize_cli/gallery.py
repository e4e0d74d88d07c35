"""The before/after gallery: thumbnails beside the outputs and one static OUTPUT/index.html over the report."""

import hashlib
import html
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from colorize_cli.encode import to_bits
from colorize_cli.files import atomic_path, write_text_atomic
from colorize_cli.report import ReportRow

THUMBS = ".thumbs"
THUMB_SIDE = 320  # long side, px
PAGE = "index.html"


def thumbnail_paths(output: Path, dest: Path) -> tuple[Path, Path]:
    """Where the input's and the output's thumbnails of `dest` go: short names, whatever the output's is."""
    key = hashlib.sha1(os.fsencode(os.path.relpath(dest, output))).hexdigest()[:20]
    return Path(output) / THUMBS / f"{key}-in.jpg", Path(output) / THUMBS / f"{key}-out.jpg"


def write_thumbnail(path: Path, pixels: np.ndarray) -> None:
    """uint8 / uint16 grey or RGB pixels as a JPEG of long side THUMB_SIDE at most, written atomically."""
    step = max(1, max(pixels.shape[:2]) // (2 * THUMB_SIDE))  # every step-th pixel first: large photos stay cheap
    image = Image.fromarray(to_bits(np.ascontiguousarray(pixels[::step, ::step]), 8))
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.BILINEAR, reducing_gap=2.0)
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG", quality=85)


def _link(output: Path, path: Path | str) -> str:
    """A relative URL; file names that are not UTF-8 keep their bytes, percent-encoded."""
    return quote(os.fsencode(os.path.relpath(path, output).replace(os.sep, "/")))


def _text(name: str) -> str:
    """A file name as page text: bytes that are not UTF-8 shown as U+FFFD, then escaped."""
    return html.escape(os.fsencode(name).decode("utf-8", "replace"))


def _cell_image(output: Path, thumb: Path, alt: str, href: str | None = None) -> str:
    if not thumb.is_file():
        return '<td class="none">no thumbnail</td>'
    img = f'<img src="{_link(output, thumb)}" alt="{_text(alt)}" loading="lazy">'
    return f'<td><a href="{href}">{img}</a></td>' if href else f"<td>{img}</td>"


def _measure(row: ReportRow) -> str:
    if row.status == "failed":
        return f'<span class="failed">failed: {_text(row.error or "")}</span>'
    if row.mse is None:
        return "no ground truth (grey input)" if row.status == "ok" else _text(row.notes or row.status)
    return f"MSE {row.mse:.5f}, PSNR {row.psnr:.2f} dB"


def gallery_html(output: Path, rows: list[ReportRow], title: str) -> str:
    """The page: one row per report row, input beside output, failures with their reason; no scripts."""
    output = Path(output)
    lines = []
    for row in rows:
        name = _text(row.input)
        if row.output:
            thumb_in, thumb_out = thumbnail_paths(output, Path(row.output))
            href = _link(output, row.output) if row.status != "failed" and Path(row.output).is_file() else None
            images = _cell_image(output, thumb_in, f"input {row.input}") + \
                _cell_image(output, thumb_out, f"output {row.input}", href)
        else:
            images = '<td class="none"></td><td class="none"></td>'
        status = html.escape(row.status)
        lines.append(f'<tr class="{status}">{images}<td><div class="path">{name}</div>'
                     f'<div>{status}: {_measure(row)}</div></td></tr>')
    failed = sum(r.status == "failed" for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_text(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; background: #fafafa; }}
table {{ border-collapse: collapse; }}
td {{ padding: 4px 8px; vertical-align: middle; border-bottom: 1px solid #ddd; }}
img {{ max-width: {THUMB_SIDE}px; max-height: {THUMB_SIDE}px; display: block; }}
.path {{ font-family: monospace; word-break: break-all; max-width: 40em; }}
.failed {{ color: #b00; }}
.none {{ color: #888; }}
</style></head><body>
<h1>{_text(title)}</h1>
<p>{len(rows)} files: {sum(r.status == "ok" for r in rows)} colourised, {sum(r.status == "skipped" for r in rows)}
skipped, {failed} failed. Each input on the left, its output on the right; click an output for the full-size
file.</p>
<table>
<tr><th>input</th><th>output</th><th>file</th></tr>
{chr(10).join(lines)}
</table></body></html>
"""


def write_gallery(output: Path, rows: list[ReportRow], title: str = "colorize") -> Path:
    """OUTPUT/index.html over every row of the report, rewritten atomically."""
    path = Path(output) / PAGE
    write_text_atomic(path, gallery_html(output, rows, title))
    return path
