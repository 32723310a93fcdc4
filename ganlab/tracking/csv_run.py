"""``logger=csv``: metrics.csv and eval.csv beside the JSON lines, for spreadsheets."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ganlab.tracking.files import Logger


class CsvLogger(Logger):
    """<run dir>/metrics.csv and eval.csv, one row per logged step (``logger=csv``), for a spreadsheet or pandas.

    A metric that first appears late (a penalty, a new eval metric) widens the header: the file is rewritten.
    """

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None, resume_step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._headers: dict[Path, list[str]] = {}
        for rows in ("metrics.csv", "eval.csv"):
            _drop_csv_rows_after(self.run_dir / rows, resume_step)
            self._headers[self.run_dir / rows] = _read_csv(self.run_dir / rows)[0]

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._append(self.run_dir / "metrics.csv", {"step": step, **metrics})

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        self._append(self.run_dir / "eval.csv", {"step": step, **metrics})

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        header = self._headers[path]
        if not header or any(k not in header for k in row):  # first row, or a new column: rewrite
            header, rows = _read_csv(path)
            header = header + [k for k in row if k not in header]
            _write_csv(path, header, [*rows, row])
            self._headers[path] = header
            return
        with open(path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, header, restval="").writerow(row)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file() or path.stat().st_size == 0:
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _drop_csv_rows_after(path: Path, step: int) -> None:
    header, rows = _read_csv(path)
    kept = [r for r in rows if _is_step_at_most(r.get("step"), step)]
    if len(kept) < len(rows):
        _write_csv(path, header, kept)


def _is_step_at_most(value: str | None, step: int) -> bool:
    try:
        return int(float(value or "")) <= step
    except ValueError:  # a row cut short by a hard kill
        return False
