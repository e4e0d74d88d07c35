"""The batch report: one row per input, written as report.csv and report.json, and a summary."""

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from colorize_cli.files import write_csv_atomic, write_text_atomic
from colorize_cli.metrics import psnr_of_mse


@dataclass
class ReportRow:
    input: str
    output: str | None = None
    status: str = "ok"  # ok, skipped or failed
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    render_size: int | None = None  # the side the network saw
    strength: float | None = None  # the factor on the predicted a, b
    seconds: float | None = None
    ground_truth: bool = False  # False: the input was grey, so there is nothing to compare with
    mse: float | None = None
    psnr: float | None = None
    error: str | None = None
    notes: str | None = None


def json_record(row: ReportRow) -> dict:
    """The fields of a row that `colorize batch --json` prints, one JSON line per file."""
    return {"status": row.status, "input": row.input, "output": row.output, "mse": row.mse,
            "render_size": row.render_size, "strength": row.strength, "error": row.error}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula (OWASP CSV injection)


def spreadsheet_safe(value):
    """A CSV cell that a spreadsheet shows as text: a leading ' before what it would run as a formula."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def settings_of_outputs(folder: Path) -> dict[str, tuple]:
    """Output (relative to `folder`) -> (render size, strength), from the report a previous run left there."""
    try:
        text = (Path(folder) / "report.json").read_text(encoding="utf-8", errors="surrogateescape")
        return {name: tuple(settings) for name, settings in json.loads(text)["made_with"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # no report, or not one of ours: nothing to carry over


class ColorReport:
    """Collects rows; writes report.csv and report.json atomically; summarises the run."""

    def __init__(self, folder: Path | None = None):
        self.rows: list[ReportRow] = []
        self.folder = folder
        self.made_with: dict[str, tuple] = {}  # output, relative to `folder` -> (render size, strength)

    def carry_over_settings(self) -> None:
        """Take the settings of the outputs a previous run wrote (under the folder's lock): kept rows keep them."""
        self.made_with = settings_of_outputs(self.folder)

    def relative(self, output: str) -> str:
        return os.path.relpath(output, self.folder)

    def add(self, row: ReportRow) -> None:
        if row.status == "skipped" and row.output and self.folder is not None:  # say how the kept output was made
            row.render_size, row.strength = self.made_with.get(self.relative(row.output), (None, None))
        self.rows.append(row)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def summary(self, seconds: float) -> dict:
        mses = [r.mse for r in self.rows if r.mse is not None]
        return {
            "images": len(self.rows),
            "ok": self.count("ok"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "with_ground_truth": len(mses),
            "mean_mse": float(np.mean(mses)) if mses else None,
            "mean_psnr": float(np.mean([psnr_of_mse(m) for m in mses])) if mses else None,
            "seconds": round(seconds, 3),
        }

    def write(self, folder: Path, seconds: float) -> None:
        folder = Path(folder)
        rows = [asdict(r) for r in self.rows]
        cells = [{k: spreadsheet_safe(v) for k, v in row.items()} for row in rows]
        write_csv_atomic(folder / "report.csv", cells, [f.name for f in fields(ReportRow)])
        made_with = {self.relative(r.output): (r.render_size, r.strength) for r in self.rows
                     if r.output and r.render_size is not None and self.folder is not None}
        body = {"summary": self.summary(seconds), "rows": rows, "made_with": made_with}
        write_text_atomic(folder / "report.json", json.dumps(body, indent=1, allow_nan=False, default=str) + "\n")
