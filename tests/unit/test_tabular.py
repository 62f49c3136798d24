"""Unit tests for models.tabular.parse_csv: bad uploads refused precisely, good ones profiled."""

from __future__ import annotations

import math

import pytest

from models.errors import InvalidInput
from models.tabular import parse_csv


def csv(*lines: str) -> bytes:
    """Join lines into UTF-8 CSV bytes with a trailing newline."""
    return ("\n".join(lines) + "\n").encode()


def profile(table, name: str) -> dict:
    """The profile of one column, by name."""
    return next(column for column in table.columns if column["name"] == name)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "word"),
    [
        pytest.param(b"", "empty_file", "empty", id="empty"),
        pytest.param(b"  \n\t\r\n  ", "empty_file", "empty", id="whitespace-only"),
        pytest.param(b"a,b\n1,\x002\n", "not_csv", "binary", id="nul-byte"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not_csv", "binary", id="png"),
        pytest.param(b"a,b\n\xff\xfe,1\n", "invalid_encoding", "UTF-8", id="invalid-utf8"),
        pytest.param(b"caf\xe9,b\n1,2\n", "invalid_encoding", "UTF-8", id="latin-1"),
        pytest.param(csv("a", "1", "2"), "too_few_columns", "column", id="one-column"),
        pytest.param(csv("a,b"), "no_rows", "no data rows", id="header-only"),
        pytest.param(csv("a,b", "1,2", "3,4,5"), "invalid_csv", "CSV", id="ragged-long-row"),
        pytest.param(b'a,b\n"1,2\n', "invalid_csv", "CSV", id="unterminated-quote"),
        pytest.param(csv("a,b,a", "1,2,3"), "duplicate_columns", "duplicate", id="duplicate"),
    ],
)
def test_bad_input_raises_invalid_input_with_precise_code(raw: bytes, code: str, word: str) -> None:
    """Each kind of bad upload is refused with its own stable code and a detail naming it."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(raw)
    assert caught.value.code == code
    assert word.lower() in caught.value.detail.lower()


def test_duplicate_columns_detail_names_the_duplicated_column() -> None:
    """The user is told which header name is repeated."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(csv("age,income,age", "1,2,3"))
    assert caught.value.code == "duplicate_columns"
    assert "age" in caught.value.detail
    assert "income" not in caught.value.detail


def test_duplicate_columns_are_found_after_trimming_spaces() -> None:
    """'a' and ' a' are the same column name once the header is trimmed."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(csv("a, a", "1,2"))
    assert caught.value.code == "duplicate_columns"


def test_invalid_encoding_detail_gives_the_byte_offset() -> None:
    """The detail points at where the undecodable byte is."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(b"a,b\n\xff\xfe,1\n")
    assert "byte 4" in caught.value.detail


def test_ragged_row_detail_says_which_line() -> None:
    """A row with too many fields is reported with its line number."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(csv("a,b", "1,2", "3,4,5"))
    assert "line 3" in caught.value.detail


def test_header_with_empty_name_is_rejected_when_header_forced() -> None:
    """A forced header with a blank column name is not a usable header."""
    with pytest.raises(InvalidInput) as caught:
        parse_csv(csv("a,", "1,2"), header="true")
    assert caught.value.code == "invalid_csv"
    assert "empty column name" in caught.value.detail


# --- header decision -------------------------------------------------------------------------


def test_header_is_auto_detected_and_its_names_used() -> None:
    """A non-numeric first row is taken as the header and not counted as data."""
    table = parse_csv(csv("age,income,city", "30,1000,Paris", "40,2000,Lyon"))
    assert table.has_header is True
    assert list(table.frame.columns) == ["age", "income", "city"]
    assert [column["name"] for column in table.columns] == ["age", "income", "city"]
    assert len(table.frame) == 2


def test_headerless_file_gets_positional_names() -> None:
    """A file whose first row holds numbers gets col_0 .. col_{n-1} and keeps every row."""
    table = parse_csv(csv("1,2.5,3", "4,5.5,6", "7,8.5,9"))
    assert table.has_header is False
    assert list(table.frame.columns) == ["col_0", "col_1", "col_2"]
    assert len(table.frame) == 3
    assert table.frame["col_0"].tolist() == [1.0, 4.0, 7.0]


def test_header_false_keeps_a_text_first_row_as_data() -> None:
    """header='false' forces positional names even when the first row looks like a header."""
    table = parse_csv(csv("x,y", "a,b", "c,d"), header="false")
    assert table.has_header is False
    assert list(table.frame.columns) == ["col_0", "col_1"]
    assert table.frame["col_0"].tolist() == ["x", "a", "c"]


def test_header_true_uses_a_numeric_first_row_as_names() -> None:
    """header='true' forces the first row to be names even if it is numeric."""
    table = parse_csv(csv("2019,2020", "1,2", "3,4"), header="true")
    assert table.has_header is True
    assert list(table.frame.columns) == ["2019", "2020"]
    assert len(table.frame) == 2


def test_header_names_are_trimmed() -> None:
    """Spaces around header names do not end up in the column names."""
    table = parse_csv(csv(" a ,  b", "1,2"))
    assert list(table.frame.columns) == ["a", "b"]


def test_utf8_bom_is_accepted_and_not_part_of_the_first_name() -> None:
    """A UTF-8 BOM (as Excel writes) is accepted and is not part of the first column's name."""
    table = parse_csv(b"\xef\xbb\xbf" + csv("a,b", "1,2"))
    assert list(table.frame.columns) == ["a", "b"]
    assert table.has_header is True


def test_non_ascii_utf8_names_and_values_are_kept() -> None:
    """Accented names and values in valid UTF-8 survive parsing."""
    table = parse_csv(csv("ville,prix", "Orléans,1", "Besançon,2"))
    assert table.frame["ville"].tolist() == ["Orléans", "Besançon"]


def test_blank_lines_are_skipped() -> None:
    """Empty lines between rows are not rows."""
    table = parse_csv(csv("a,b", "1,2", "", "3,4"))
    assert len(table.frame) == 2


# --- types and profile -----------------------------------------------------------------------


def test_dtypes_numeric_categorical_and_text() -> None:
    """Numbers are numeric, a few repeated labels categorical, many distinct strings text."""
    rows = [f"{i},{['red', 'green', 'blue'][i % 3]},note number {i}" for i in range(30)]
    table = parse_csv(csv("n,colour,comment", *rows))
    assert profile(table, "n")["dtype"] == "numeric"
    assert profile(table, "colour")["dtype"] == "categorical"
    assert profile(table, "comment")["dtype"] == "text"
    assert table.frame["n"].dtype == "float64"
    assert table.frame["colour"].tolist()[:3] == ["red", "green", "blue"]


def test_one_non_number_makes_the_column_categorical() -> None:
    """A column is numeric only if every present value is a finite number."""
    table = parse_csv(csv("a,b", "1,x", "2,y", "abc,z"))
    assert profile(table, "a")["dtype"] == "categorical"


def test_infinity_is_not_numeric() -> None:
    """'inf' is not accepted as a numeric value."""
    table = parse_csv(csv("a,b", "1,x", "inf,y"))
    assert profile(table, "a")["dtype"] != "numeric"


def test_missing_counts_blanks_and_tokens() -> None:
    """Blank cells, 'NA' and '?' count as missing and become NaN without spoiling the dtype."""
    table = parse_csv(csv("a,b,c", "1,NA,x", ",2,?", "3,?,y", "4,5,NA"))
    assert profile(table, "a")["missing"] == 1
    assert profile(table, "b")["missing"] == 2
    assert profile(table, "c")["missing"] == 2
    assert profile(table, "a")["dtype"] == "numeric"
    assert profile(table, "b")["dtype"] == "numeric"
    assert table.frame["b"].isna().tolist() == [True, False, True, False]
    assert table.frame["c"].isna().tolist() == [False, True, False, True]


def test_short_row_cells_count_as_missing() -> None:
    """A row with fewer fields than the header leaves its last cells missing."""
    table = parse_csv(csv("a,b,c", "1,2,3", "4,5"))
    assert profile(table, "c")["missing"] == 1
    assert profile(table, "c")["dtype"] == "numeric"
    assert math.isnan(table.frame["c"].iloc[1])


def test_distinct_counts_ignore_missing_values() -> None:
    """distinct counts the different present values, not the missing markers."""
    table = parse_csv(csv("a,b", "1,x", "1,y", "2,x", "NA,", "3,z"))
    assert profile(table, "a")["distinct"] == 3
    assert profile(table, "b")["distinct"] == 3


def test_numeric_distinct_counts_values_not_spellings() -> None:
    """'1' and '1.0' are one numeric value, so the column has 2 distinct values, not 3."""
    table = parse_csv(csv("a,b", "1,x", "1.0,y", "0,z"))
    assert table.frame["a"].nunique() == 2
    assert profile(table, "a")["distinct"] == 2


@pytest.mark.parametrize(
    ("values", "integer"),
    [(["1", "2", "3"], True), (["1.0", "2.0", "-4"], True), (["1", "2.5", "3"], False)],
)
def test_integer_flag(values: list[str], integer: bool) -> None:
    """integer is true exactly when every present value is a whole number."""
    table = parse_csv(csv("a,b", *(f"{value},x" for value in values)))
    assert profile(table, "a")["integer"] is integer


def test_numeric_profile_statistics() -> None:
    """min, max, mean and the population std of a numeric column, ignoring missing cells."""
    table = parse_csv(csv("a,b", "2,x", "4,y", "NA,z", "6,w"))
    column = profile(table, "a")
    assert (column["min"], column["max"], column["mean"]) == (2.0, 6.0, 4.0)
    assert column["std"] == pytest.approx(math.sqrt(8 / 3))


def test_breast_cancer_from_scikit_learn_parses_whole() -> None:
    """scikit-learn's breast cancer data, written by pandas, is 569 rows x 31 numeric columns."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    table = parse_csv(frame.to_csv(index=False).encode())
    assert table.has_header is True
    assert table.frame.shape == (569, 31)
    assert list(table.frame.columns) == list(frame.columns)
    assert all(column["dtype"] == "numeric" for column in table.columns)
    assert all(column["missing"] == 0 for column in table.columns)
    target = profile(table, "target")
    assert target["distinct"] == 2
    assert target["integer"] is True
    assert table.frame["mean radius"].to_numpy() == pytest.approx(frame["mean radius"].to_numpy())


# --- the typed read agrees with the cell-by-cell parse ---------------------------------------


def _cell_by_cell(raw: bytes, header: str = "auto"):
    from models.tabular import _decode, _parse_cells

    return _parse_cells(_decode(raw), header, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(csv("a,b,y", "1,2.5,0", "-3,1e-7,1", "+4,  6,0"), id="signs-exponents-spaces"),
        pytest.param(csv("a,b,y", "1 ,2,0", "3,4 ,1"), id="trailing-spaces"),
        pytest.param(csv("a,b,y", "1,NA,0", "2,,1", "3,?,0", "4,nan,1", "5,null,0"), id="missing-tokens"),
        pytest.param(csv("a,b,y", "1,inf,0", "2,-inf,1"), id="infinity"),
        pytest.param(csv("a,b,y", "1,TRUE,0", "2,False,1", "3,true,0"), id="booleans-keep-spelling"),
        pytest.param(csv("a,b,y", "1,x,0", "2,3,1", "2,3.0,1"), id="mixed"),
        pytest.param(csv("a,b,y", f"1,{2**70},0", "2,5,1"), id="huge-integer"),
        pytest.param(csv("a,b,y", "1,0x10,0", "2,1_000,1"), id="not-decimal"),
        pytest.param(csv('a,"b, quoted",y', '1,"2",0', '3,"line\nbreak",1'), id="quoted"),
        pytest.param(csv("1,2,3", "4,5,6", "", "7,8,9"), id="headerless-blank-line"),
        pytest.param(csv("a,b,y", "1,2", "3,4,1"), id="short-row"),
        pytest.param(csv("a,b,y", "1,2,red", "3,4,blue"), id="string-target"),
    ],
)
def test_typed_read_gives_the_same_table_as_the_cell_by_cell_parse(raw: bytes) -> None:
    """The fast path (pandas types each column) must not change one value, dtype or profile."""
    import pandas as pd

    fast, reference = parse_csv(raw), _cell_by_cell(raw)
    assert fast.has_header == reference.has_header
    assert fast.columns == reference.columns
    pd.testing.assert_frame_equal(fast.frame, reference.frame)


def test_typed_read_keeps_every_bit_of_long_floats() -> None:
    """pandas' float parser and to_numeric agree to the last bit on 17-digit values."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    values = rng.normal(size=(2_000, 3)) * 10.0 ** rng.integers(-12, 12, size=(2_000, 3))
    raw = pd.DataFrame(values, columns=["a", "b", "c"]).to_csv(index=False, float_format="%.17g").encode()
    fast = parse_csv(raw).frame.to_numpy()
    assert (fast == values).all()
    assert (fast == _cell_by_cell(raw).frame.to_numpy()).all()


def test_a_header_longer_than_the_first_lines_read_is_still_read_whole() -> None:
    """The first record is read from the first 64 KiB of lines; a quoted name spanning more is not cut."""
    long_name = "x" * 70_000 + "\nend"  # its newline lies past 64 KiB, inside the quotes
    raw = f'"{long_name}",y\n1,0\n2,1\n'.encode()
    table = parse_csv(raw, header="true")
    assert table.frame.columns.tolist() == [long_name, "y"]
    assert table.frame["y"].tolist() == [0.0, 1.0]
    many = ("a,y\n" + "1,0\n" * 30_000).encode()  # past the cut: the header still comes from line one
    assert parse_csv(many).frame.shape == (30_000, 2)


@pytest.mark.parametrize("header", ["true", "false"])
def test_typed_read_agrees_when_the_header_is_forced(header: str) -> None:
    import pandas as pd

    from models.tabular import _decode, _parse_cells

    raw = csv("1,2,y", "3,4.5,0", "5, 6,1", "7,NA,0")
    fast, reference = parse_csv(raw, header=header), _parse_cells(_decode(raw), header, None)
    assert fast.columns == reference.columns
    pd.testing.assert_frame_equal(fast.frame, reference.frame)


@pytest.mark.parametrize(
    ("raw", "header", "code"),
    [
        pytest.param(csv("a,y", "1,0", "2,1", "3,0"), "auto", None, id="at-the-cap"),
        pytest.param(csv("a,y", "1,0", "2,1", "3,0", "4,1"), "auto", "too_many_rows", id="one-over"),
        pytest.param(csv("1,0", "2,1", "3,0", "4,1", "5,0,9"), "false", "invalid_csv", id="bad-past-cap"),
        pytest.param(csv("a,y", "1,0", "2,1", "3,0", "4,1,9"), "true", "invalid_csv", id="bad-past-cap-hdr"),
    ],
)
def test_the_row_cap_reads_as_the_cell_by_cell_parse_did(raw: bytes, header: str, code: str | None) -> None:
    """With a cap of 3 rows: the same answer, or the same error code, from both parses."""
    from models.tabular import TableLimits, _decode, _parse_cells

    limits = TableLimits(max_rows=3, max_columns=10, max_cell_chars=100)
    outcomes = []
    for parse in (
        lambda: parse_csv(raw, header=header, limits=limits),  # type: ignore[arg-type]
        lambda: _parse_cells(_decode(raw), header, limits),  # type: ignore[arg-type]
    ):
        try:
            outcomes.append(parse().frame.shape)
        except InvalidInput as exc:
            outcomes.append(exc.code)
    assert outcomes[0] == outcomes[1] == (code or (3, 2))
