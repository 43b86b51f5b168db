"""One writer for scalar training metrics: JSON Lines and CSV side by side.

``MetricWriter.write_scalars(step, {"loss": 0.31, "accuracy": 0.9})`` appends one
JSON object per call to ``metrics.jsonl`` (``{"step": 20, "loss": 0.31, ...}``)
and one ``step,name,value`` row per scalar to ``metrics.csv``: the long format
keeps a fixed header however many metrics a run logs, and loads directly into a
dataframe or a spreadsheet.

A resumed run opens the writer with ``resume_step``: records written after that
step (by the run that was killed after its last checkpoint) are dropped, so the
files end up as if the run had never stopped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

JSONL_NAME = "metrics.jsonl"
CSV_NAME = "metrics.csv"
CSV_HEADER = ("step", "name", "value")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order.

    A last line cut short by a killed process is ignored; any other line that is
    not a JSON object raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                logger.warning("%s: dropping a truncated last line", path)
                break
            raise ValueError(f"{path} line {i + 1} is not valid JSON: {err}") from err
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path} line {i + 1} is not a metrics record: {line!r}")
        records.append(record)
    return records


def _csv_rows(record: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
    step = record["step"]
    return [(step, name, value) for name, value in record.items() if name != "step"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class MetricWriter:
    """Writes ``(step, name, value)`` scalars to ``DIR/metrics.jsonl`` and ``.csv``.

    Args:
      directory: folder for the two files (created if missing).
      resume_step: ``None`` starts both files afresh; an integer keeps the
        records of an earlier run up to and including that step and appends
        after them.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, directory: str | os.PathLike, *, resume_step: int | None = None
    ) -> None:
        if resume_step is not None and (
            not isinstance(resume_step, int) or resume_step < 0
        ):
            raise ValueError(
                f"resume_step={resume_step!r}; expected None or an integer >= 0."
            )
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.directory / JSONL_NAME
        self.csv_path = self.directory / CSV_NAME

        kept: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl_path.is_file():
            kept = [r for r in read_jsonl(self.jsonl_path) if r["step"] <= resume_step]
        self._rewrite(kept)
        self._jsonl = open(self.jsonl_path, "a")
        self._csv_file = open(self.csv_path, "a", newline="")
        self._csv = csv.writer(self._csv_file)

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        _atomic_write(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in records))
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_HEADER)
        for record in records:
            writer.writerows(_csv_rows(record))
        _atomic_write(self.csv_path, buf.getvalue())

    def write_scalars(self, step: int, scalars: Mapping[str, float | int]) -> None:
        """Appends one record: ``step`` and a mapping of metric names to numbers."""
        if "step" in scalars:
            raise ValueError("scalars must not hold a metric named 'step'.")
        record: dict[str, Any] = {"step": int(step)}
        for name, value in scalars.items():
            value = value if isinstance(value, int) else float(value)
            record[name] = value if math.isfinite(value) else str(value)
        self._jsonl.write(json.dumps(record) + "\n")
        self._csv.writerows(_csv_rows(record))
        self.flush()

    def flush(self) -> None:
        self._jsonl.flush()
        self._csv_file.flush()

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
