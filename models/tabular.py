"""Reading and profiling tabular CSV files; the one place both API and worker parse a dataset."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.errors import InvalidInput

MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"})
CATEGORICAL_MAX_DISTINCT = 100
HeaderMode = Literal["auto", "true", "false"]


@dataclass(frozen=True)
class TableLimits:
    """What one upload may hold; checked before the whole file is parsed where that is possible."""

    max_rows: int
    max_columns: int
    max_cell_chars: int


@dataclass(frozen=True)
class Table:
    """A parsed CSV: typed columns, the header decision and the per-column profile."""

    frame: pd.DataFrame
    has_header: bool
    columns: list[dict[str, Any]]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _decode(raw: bytes) -> str:
    if not raw.strip():
        raise InvalidInput("empty_file", "the uploaded file is empty")
    if b"\x00" in raw:
        raise InvalidInput("not_csv", "the uploaded file is binary, not a CSV text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "invalid_encoding",
            f"the file is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})",
        ) from exc


def _check_width(text: str, limits: TableLimits) -> None:
    """Refuse too many columns from the first record, before pandas builds a column per field."""
    try:
        first = next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        return  # pandas reports the malformed file with its own message
    if len(first) > limits.max_columns:
        raise InvalidInput(
            "too_many_columns", f"the file has {len(first)} columns; at most {limits.max_columns} are allowed"
        )


def _check_cells(text: str, cells: pd.DataFrame, limits: TableLimits) -> None:
    """Refuse over-long cells; per cell only when some line is longer than the cap."""
    if max(map(len, io.StringIO(text)), default=0) <= limits.max_cell_chars + 1:  # + its newline
        return
    for index in range(cells.shape[1]):
        longest = cells.iloc[:, index].str.len().max()
        if longest > limits.max_cell_chars:
            raise InvalidInput(
                "cell_too_long",
                f"column {index + 1} holds a cell of {int(longest)} characters;"
                f" at most {limits.max_cell_chars} are allowed",
            )


def _read_cells(text: str, max_records: int | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.StringIO(text),
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            skipinitialspace=True,
            nrows=max_records,  # a row cap stops the parse instead of reading every row first
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput("invalid_csv", f"the file is not a valid CSV: {reason}") from exc


def _decide_header(first_row: list[str], mode: HeaderMode) -> bool:
    if mode != "auto":
        return mode == "true"
    return all(cell.strip() and not _is_number(cell) for cell in first_row)


def _column_names(cells: pd.DataFrame, has_header: bool) -> list[str]:
    if not has_header:
        return [f"col_{i}" for i in range(cells.shape[1])]
    names = [str(cell).strip() for cell in cells.iloc[0]]
    if any(not name for name in names):
        raise InvalidInput("invalid_csv", "the header row has an empty column name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInput("duplicate_columns", "duplicate column names: " + ", ".join(duplicates))
    return names


def _numeric_profile(numeric: pd.Series) -> dict[str, Any]:
    return {
        "dtype": "numeric",
        # Count values, not spellings: "1" and "1.0" are one class.
        "distinct": int(numeric.nunique()),
        "integer": bool((numeric == numeric.round()).all()),
        "min": float(numeric.min()),
        "max": float(numeric.max()),
        "mean": float(numeric.mean()),
        "std": float(numeric.std(ddof=0)),
    }


def _typed_column(values: pd.Series) -> tuple[pd.Series, dict[str, Any]]:
    # Fast path (pandas' C parser): every cell a finite number, nothing missing, nothing to strip.
    direct = pd.to_numeric(values, errors="coerce")
    if len(direct) and direct.notna().all() and bool(np.isfinite(direct.to_numpy("float64")).all()):
        return direct.astype("float64"), {"missing": 0, **_numeric_profile(direct)}
    stripped = values.str.strip()
    missing_mask = stripped.isin(MISSING_TOKENS)
    present = stripped[~missing_mask]
    numeric = pd.to_numeric(present, errors="coerce")
    profile: dict[str, Any] = {"missing": int(missing_mask.sum()), "distinct": int(present.nunique())}
    if len(present) and numeric.notna().all() and bool(np.isfinite(numeric.to_numpy("float64")).all()):
        column = pd.to_numeric(stripped.where(~missing_mask), errors="coerce").astype("float64")
        return column, profile | _numeric_profile(numeric)
    limit = min(CATEGORICAL_MAX_DISTINCT, max(20, len(present) // 2))
    profile["dtype"] = "categorical" if profile["distinct"] <= limit else "text"
    return stripped.where(~missing_mask, None), profile


def parse_csv(raw: bytes, *, header: HeaderMode = "auto", limits: TableLimits | None = None) -> Table:
    """Parse and profile CSV bytes, raising ``InvalidInput`` with a precise code on bad input."""
    text = _decode(raw)
    if limits is not None:
        _check_width(text, limits)
    # One record more than the cap (the header may be one of them) is enough to know it is exceeded.
    cells = _read_cells(text, None if limits is None else limits.max_rows + 2)
    if limits is not None:
        _check_cells(text, cells, limits)
    if cells.shape[1] < 2:
        raise InvalidInput(
            "too_few_columns",
            f"the file has {cells.shape[1]} column; a dataset needs at least 2 (features and a target)",
        )
    has_header = _decide_header([str(c) for c in cells.iloc[0]], header)
    names = _column_names(cells, has_header)
    body = cells.iloc[1:] if has_header else cells
    if body.empty:
        raise InvalidInput("no_rows", "the file has a header but no data rows")
    if limits is not None and len(body) > limits.max_rows:
        raise InvalidInput("too_many_rows", f"the file has more than {limits.max_rows} data rows")
    typed: dict[str, pd.Series] = {}
    profiles: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        column, profile = _typed_column(body.iloc[:, index].reset_index(drop=True))
        typed[name] = column
        profiles.append({"name": name, **profile})
    # Built at once: inserting columns one by one fragments the frame (quadratic for wide files).
    frame = pd.DataFrame(typed, index=range(len(body)))
    return Table(frame=frame, has_header=has_header, columns=profiles)
