"""The worker keeps the last dataset it parsed: reused while the file is the same, never when it changed."""

from __future__ import annotations

import os
from pathlib import Path

from worker.training import data


def test_the_same_file_is_parsed_once_and_a_changed_file_again(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    frame, columns = data.load_frame(path, has_header=True)
    again, columns_again = data.load_frame(path, has_header=True)
    assert again is frame  # the parse of a 500,000-row file is most of a small network's job
    columns_again[0]["dtype"] = "changed by a caller"
    assert data.load_frame(path, has_header=True)[1] == columns  # callers get their own profiles
    mtime = path.stat().st_mtime_ns
    path.write_text("a,y\n7,0\n8,1\n9,0\n")
    os.utime(path, ns=(mtime, mtime))  # even with the old mtime, the size tells the file changed
    assert data.load_frame(path, has_header=True)[0]["a"].tolist() == [7.0, 8.0, 9.0]
    # Headerless is another reading of the same bytes.
    assert data.load_frame(path, has_header=False)[0].shape == (4, 2)


def test_a_frame_too_large_to_keep_is_parsed_every_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(data, "KEEP_PARSED_BYTES", 10)
    path = tmp_path / "rows.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    assert data.load_frame(path, has_header=True)[0] is not data.load_frame(path, has_header=True)[0]
