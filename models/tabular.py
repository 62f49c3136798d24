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
    if not _long_lines(text, limits):
        return
    for index in range(cells.shape[1]):
        longest = cells.iloc[:, index].str.len().max()
        if longest > limits.max_cell_chars:
            raise InvalidInput(
                "cell_too_long",
                f"column {index + 1} holds a cell of {int(longest)} characters;"
                f" at most {limits.max_cell_chars} are allowed",
            )


def _read_cells(text: str, max_records: int | None = None, columns: list[int] | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.StringIO(text),
            header=None,
            usecols=columns,  # by position; None: all
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


def _typed_read(text: str, has_header: bool, width: int, max_rows: int | None) -> pd.DataFrame | None:
    """The body with pandas' own type inference (4-5x faster than strings then ``to_numeric``), or None
    when its shape is not exactly the body's, which the string parse then reports."""
    try:
        typed = pd.read_csv(
            io.StringIO(text),
            header=0 if has_header else None,
            na_filter=False,  # missing tokens stay text here, so such a column takes the string path
            skipinitialspace=True,
            skip_blank_lines=True,
            low_memory=False,  # one dtype per column, not per chunk
            # As many records as the text parse reads (the cap, the header and one more): a malformed
            # record just past the cap is then an invalid_csv in both, not a too_many_rows in one.
            nrows=None if max_rows is None else max_rows + (1 if has_header else 2),
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    # A header shorter than the rows makes pandas use the first column as the index: not this file.
    if typed.shape[1] != width or not isinstance(typed.index, pd.RangeIndex) or typed.empty:
        return None
    return typed


def _check_rows(rows: int, max_rows: int | None) -> None:
    if max_rows is not None and rows > max_rows:
        raise InvalidInput("too_many_rows", f"the file has more than {max_rows} data rows")


def _first_record(text: str) -> pd.DataFrame:
    """The first record as text, parsed from the file's first lines, not a copy of the whole file."""
    cut = text.find("\n", 1 << 16)
    if cut >= 0:
        try:
            return _read_cells(text[: cut + 1], 1)
        except InvalidInput:
            pass  # a first record longer than the cut (a quoted field over many lines): read it all
    return _read_cells(text, 1)


def _clean_numeric(column: pd.Series) -> bool:
    """Whether pandas read a column as numbers, all finite: the cells ``_typed_column`` would too."""
    if not (pd.api.types.is_integer_dtype(column) or pd.api.types.is_float_dtype(column)):
        return False  # booleans too: "TRUE" must keep its spelling as a category
    return bool(np.isfinite(column.to_numpy("float64")).all())


def _long_lines(text: str, limits: TableLimits | None) -> bool:
    """Whether some line is longer than a cell may be (+ its newline): only then are cells measured."""
    return limits is not None and max(map(len, io.StringIO(text)), default=0) > limits.max_cell_chars + 1


def parse_csv(raw: bytes, *, header: HeaderMode = "auto", limits: TableLimits | None = None) -> Table:
    """Parse and profile CSV bytes, raising ``InvalidInput`` with a precise code on bad input."""
    text = _decode(raw)
    if limits is not None:
        _check_width(text, limits)
    first = _first_record(text)
    if first.shape[1] < 2 or _long_lines(text, limits):
        return _parse_cells(text, header, limits)  # which names the problem
    has_header = _decide_header([str(c) for c in first.iloc[0]], header)
    max_rows = None if limits is None else limits.max_rows
    typed = _typed_read(text, has_header, first.shape[1], max_rows)
    if typed is None:
        return _parse_cells(text, header, limits)
    names = _column_names(first, has_header)
    _check_rows(len(typed), max_rows)
    columns: dict[int, tuple[pd.Series, dict[str, Any]]] = {}
    for index in range(len(names)):
        numbers = typed.iloc[:, index]
        if _clean_numeric(numbers):
            columns[index] = numbers.astype("float64"), {"missing": 0, **_numeric_profile(numbers)}
    # The other columns, and only they, are read again as text and typed cell by cell as before.
    rest = [index for index in range(len(names)) if index not in columns]
    if rest:
        cells = _read_cells(text, None if max_rows is None else max_rows + 2, rest)
        body = cells.iloc[1:] if has_header else cells
        for position, index in enumerate(rest):
            columns[index] = _typed_column(body.iloc[:, position].reset_index(drop=True))
    return _table(names, [columns[index] for index in range(len(names))], has_header)


def _table(names: list[str], typed: list[tuple[pd.Series, dict[str, Any]]], has_header: bool) -> Table:
    # Built at once: inserting columns one by one fragments the frame (quadratic for wide files).
    frame = pd.DataFrame(
        {name: column.reset_index(drop=True) for name, (column, _) in zip(names, typed, strict=True)},
        index=range(len(typed[0][0])),
    )
    profiles = [{"name": name, **profile} for name, (_, profile) in zip(names, typed, strict=True)]
    return Table(frame=frame, has_header=has_header, columns=profiles)


def _parse_cells(text: str, header: HeaderMode, limits: TableLimits | None) -> Table:
    """Every cell read as text, then typed column by column: the reference parse and every error."""
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
    _check_rows(len(body), None if limits is None else limits.max_rows)
    columns = [_typed_column(body.iloc[:, index].reset_index(drop=True)) for index in range(len(names))]
    return _table(names, columns, has_header)
