"""manage.py import_observations: streamed, batched, resumable CSV import through observation_ingest."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from sensors.adapters import csv_import
from sensors.models import Observation, StationState

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)
JST = timezone(timedelta(hours=9))
CODES = ["A-PRIVATE", "A-REGION", "A-PUBLIC", "B-PRIVATE", "B-REGION", "B-PUBLIC"]
# What one 10,000-row batch may cost: a dozen look-ups, locks and dedupe checks (chunked by 2,000
# keys) plus the INSERTs, 10 on PostgreSQL (1,000 rows each) and about 60 on SQLite, whose 999
# parameters per statement allow 166 rows of 6 columns. Not one query per row.
QUERIES_PER_BATCH = 90


def when(step: int) -> str:
    return (T0 + timedelta(minutes=10 * step)).astimezone(JST).isoformat()


def write_rows(path: Path, count: int, *, header: str = "station,observed_at,value") -> Path:
    """`count` valid rows spread over the six fixture stations, each (station, time) once."""
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write(header + "\n")
        for index in range(count):
            stream.write(f"{CODES[index % len(CODES)]},{when(index // len(CODES))},{(index % 500) / 100}\n")
    return path


def run(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_observations", str(path), "--no-progress", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def rejected_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def spy_batches(monkeypatch):
    """(rows, queries) for every batch handed to the ingestion service."""
    batches: list[tuple[int, int]] = []
    real = csv_import.observation_ingest

    def recording(**kwargs):
        with CaptureQueriesContext(connection) as queries:
            report = real(**kwargs)
        batches.append((len(kwargs["items"]), len(queries)))
        return report

    monkeypatch.setattr(csv_import, "observation_ingest", recording)
    return batches


def test_large_file_imports_in_batches_with_a_bounded_number_of_queries(tmp_path, stations, spy_batches):
    data = write_rows(tmp_path / "readings.csv", 25_000)

    with CaptureQueriesContext(connection) as queries:
        output = run(data, "--batch-size", "10000")

    assert [rows for rows, _ in spy_batches] == [10_000, 10_000, 5_000]
    for rows, count in spy_batches:
        assert count <= QUERIES_PER_BATCH, f"{count} queries for a batch of {rows} rows"
    # The import itself adds no queries of its own per batch or per row.
    assert len(queries) == sum(count for _, count in spy_batches)
    assert "accepted 25000, duplicates 0, rejected 0 (of 25000 rows)" in output
    assert Observation.objects.count() == 25_000
    assert set(Observation.objects.values_list("source", flat=True)) == {Observation.Source.IMPORT}
    last_step = max(i for i in range(25_000) if CODES[i % len(CODES)] == "B-PUBLIC") // len(CODES)
    latest = StationState.objects.get(station__code="B-PUBLIC")
    assert latest.observed_at == T0 + timedelta(minutes=10 * last_step)
    checkpoint = json.loads((tmp_path / "readings.csv.progress").read_text())
    assert checkpoint["complete"] is True and checkpoint["offset"] == data.stat().st_size
    assert rejected_rows(tmp_path / "readings.csv.rejected.csv") == []


def test_rejected_rows_land_in_the_rejected_file_with_line_numbers_and_reasons(tmp_path, stations):
    lines = [
        "station,observed_at,value",  # 1
        f"A-PUBLIC,{when(0)},1.5",  # 2 valid
        f"NOPE,{when(0)},1.0",  # 3 unknown station
        f"A-PUBLIC,{when(1)},high",  # 4 not a number
        f"A-PUBLIC,{when(2)},NaN",  # 5 not finite
        f"A-PUBLIC,{when(3)}",  # 6 missing field
        f"A-PUBLIC,{when(3)},1,extra",  # 7 extra field
        "A-PUBLIC,2025-06-01T12:00:00,1",  # 8 no UTC offset
        f'"A-PUBLIC"x,{when(4)},1',  # 9 broken quoting
        f"A-PUBLIC,{when(5)},1\x00",  # 10 NUL
        "",  # 11 blank: skipped, not rejected
        f"A-PUBLIC,{when(0)},9.9",  # 12 duplicate of line 2: not a second row
        f"A-PUBLIC,{when(6)},999",  # 13 impossible river stage: stored, flagged "range"
        f"B-PUBLIC,{when(7)},2.0",  # 14 another town's station under --municipality town-a
        f" A-REGION , {when(8)} , 2.25 ",  # 15 valid, padded
        f"A-PUBLIC,{when(9)},1e400",  # 16 overflows to inf
    ]
    data = tmp_path / "mixed.csv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = tmp_path / "out" / "rejected.csv"
    report.parent.mkdir()

    output = run(data, "--municipality", "town-a", "--rejected-file", str(report))

    assert "accepted 3, duplicates 1, rejected 10 (of 14 rows)" in output
    assert sorted(Observation.objects.values_list("station__code", "value", "quality")) == [
        ("A-PUBLIC", 1.5, "ok"), ("A-PUBLIC", 999.0, "range"), ("A-REGION", 2.25, "ok"),
    ]
    rows = rejected_rows(report)
    assert [int(row["line"]) for row in rows] == [3, 4, 5, 6, 7, 8, 9, 10, 14, 16]
    by_line = {int(row["line"]): row for row in rows}
    expected = {
        3: "unknown station 'NOPE' for municipality 'town-a'",
        4: "'value' 'high' is not a number",
        5: "finite",
        6: "expected 3 fields, got 2",
        7: "expected 3 fields, got 4",
        8: "no UTC offset",
        9: "malformed CSV",
        10: "NUL",
        14: "unknown station 'B-PUBLIC' for municipality 'town-a'",
        16: "finite",
    }
    for line, reason in expected.items():
        assert reason in by_line[line]["error"], (line, by_line[line])
        assert by_line[line]["row"] == lines[line - 1], line  # the original row, as it was


def test_interrupted_import_resumes_and_stores_every_row_exactly_once(tmp_path, stations, monkeypatch):
    data = write_rows(tmp_path / "big.csv", 25_000)
    with data.open("a", encoding="utf-8") as stream:
        stream.write(f"NOPE,{when(1)},1\n")  # one rejected row in the last batch
    real = csv_import.observation_ingest
    calls = []

    def fails_on_second_batch(**kwargs):
        calls.append(len(kwargs["items"]))
        if len(calls) == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(csv_import, "observation_ingest", fails_on_second_batch)
    with pytest.raises(CommandError) as excinfo:
        run(data)
    message = str(excinfo.value)
    assert "lines 10002-20001" in message and "--resume" in message and "lines up to 10001 are stored" in message
    assert Observation.objects.count() == 10_000

    monkeypatch.setattr(csv_import, "observation_ingest", real)
    output = run(data, "--resume")

    assert "resumed after line 10001" in output
    assert "accepted 25000, duplicates 0, rejected 1 (of 25001 rows)" in output
    assert Observation.objects.count() == 25_000
    assert Observation.objects.values("station_id", "observed_at").distinct().count() == 25_000
    assert [row["line"] for row in rejected_rows(tmp_path / "big.csv.rejected.csv")] == ["25002"]

    again = run(data, "--resume")
    assert "already imported completely" in again
    assert Observation.objects.count() == 25_000


def test_crash_between_commit_and_checkpoint_only_causes_duplicates(tmp_path, stations, monkeypatch):
    data = write_rows(tmp_path / "crash.csv", 2_500)
    with data.open("a", encoding="utf-8") as stream:
        stream.write(f"A-PUBLIC,{when(1)},oops\n")  # rejected in the batch whose checkpoint is lost
    real_save = csv_import.Checkpoint.save
    saves = []

    def crash_on_third_save(self, path):
        saves.append(self.offset)
        if len(saves) == 3:  # the initial one, after batch 1, after batch 2 (committed, not recorded)
            raise OSError("disk full")
        return real_save(self, path)

    monkeypatch.setattr(csv_import.Checkpoint, "save", crash_on_third_save)
    with pytest.raises(CommandError, match="lines up to 2001 are stored, but recording that failed.*after line 1001"):
        run(data, "--batch-size", "1000")
    assert Observation.objects.count() == 2_000

    monkeypatch.setattr(csv_import.Checkpoint, "save", real_save)
    output = run(data, "--batch-size", "1000", "--resume")

    # Batch 2 was accepted by the run whose checkpoint was lost; this run sees its rows as duplicates.
    assert "accepted 1500, duplicates 1000, rejected 1 (of 2501 rows)" in output
    assert Observation.objects.count() == 2_500
    # The rejected-rows file was cut back to the checkpoint: the row is listed once, not twice.
    assert [row["line"] for row in rejected_rows(tmp_path / "crash.csv.rejected.csv")] == ["2502"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("stations,observed_at,value\nA-PUBLIC,2025-06-01T00:00:00+09:00,1\n", "header must be station,observed_at,value"),
        ("station,observed_at\nA-PUBLIC,2025-06-01T00:00:00+09:00\n", "header must be station,observed_at,value"),
        ("A-PUBLIC,2025-06-01T00:00:00+09:00,1\n", "header must be station,observed_at,value"),
        ("station,observed_at,value,value\n", "header must be"),
        ("", "empty file"),
        ("\n\nstation,observed_at,value\n", "empty file or empty first line"),
    ],
)
def test_bad_header_is_a_clear_error_and_stores_nothing(tmp_path, stations, content, error):
    data = tmp_path / "bad.csv"
    data.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=error):
        run(data)
    assert not Observation.objects.exists()
    assert not (tmp_path / "bad.csv.progress").exists()


def test_non_utf8_file_is_a_clear_error(tmp_path, stations):
    data = tmp_path / "sjis.csv"
    data.write_bytes("station,observed_at,value\nA-PUBLIC,2025-06-01T09:00:00+09:00,欠測\n".encode("cp932"))
    with pytest.raises(CommandError) as excinfo:
        run(data)
    assert "line 2 is not UTF-8" in str(excinfo.value) and "iconv" in str(excinfo.value)
    assert not Observation.objects.exists()


def test_non_utf8_after_committed_batches_says_what_is_stored(tmp_path, stations):
    data = write_rows(tmp_path / "late.csv", 30)
    with data.open("ab") as stream:
        stream.write(b"A-PUBLIC,2025-06-01T09:00:00+09:00,\x8c\x87\n")
    with pytest.raises(CommandError, match="line 32 is not UTF-8.*lines up to 21 are stored"):
        run(data, "--batch-size", "20")
    assert Observation.objects.count() == 20


def test_an_endless_line_is_rejected_without_reading_it_whole(tmp_path, stations):
    data = tmp_path / "endless.csv"
    with data.open("wb") as stream:
        stream.write(f"station,observed_at,value\nA-PUBLIC,{when(0)},1\n".encode())
        stream.write(b"A-PUBLIC," + b"9" * (csv_import.MAX_LINE_BYTES * 3) + b"\n")
        stream.write(f"A-PUBLIC,{when(1)},2\n".encode())
    output = run(data)
    assert "accepted 2, duplicates 0, rejected 1 (of 3 rows)" in output
    (row,) = rejected_rows(tmp_path / "endless.csv.rejected.csv")
    assert row["line"] == "3" and "longer than 65536 bytes" in row["error"] and len(row["row"]) < 200


def test_bom_crlf_and_any_column_order_are_accepted(tmp_path, stations):
    data = tmp_path / "excel.csv"
    data.write_bytes(f"\ufeffValue,Station,Observed_At\r\n1.25,A-PUBLIC,{when(0)}\r\n2.5,A-PUBLIC,{when(1)}\r\n".encode())
    output = run(data)
    assert "accepted 2, duplicates 0, rejected 0" in output
    assert list(Observation.objects.order_by("observed_at").values_list("value", flat=True)) == [1.25, 2.5]


def test_resume_refuses_a_file_that_changed_since_the_checkpoint(tmp_path, stations, monkeypatch):
    data = write_rows(tmp_path / "grow.csv", 30)
    monkeypatch.setattr(csv_import, "observation_ingest", lambda **kwargs: (_ for _ in ()).throw(OperationalError("down")))
    with pytest.raises(CommandError):
        run(data, "--batch-size", "10")
    with data.open("a", encoding="utf-8") as stream:
        stream.write(f"A-PUBLIC,{when(999)},1\n")
    with pytest.raises(CommandError, match="changed since the checkpoint"):
        run(data, "--resume")


def test_resume_without_a_checkpoint_starts_from_the_beginning(tmp_path, stations):
    data = write_rows(tmp_path / "fresh.csv", 12)
    out, err = StringIO(), StringIO()
    call_command("import_observations", str(data), "--resume", "--no-progress", stdout=out, stderr=err)
    assert "accepted 12" in out.getvalue() and "starting from the beginning" in err.getvalue()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["missing.csv"], "no such file"),
        (["."], "not a regular file"),
        (["ok.csv", "--municipality", "atlantis"], "no such municipality"),
        (["ok.csv", "--batch-size", "10001"], "between 1 and 10000"),
        (["ok.csv", "--batch-size", "0"], "between 1 and 10000"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, stations, monkeypatch, args, error):
    write_rows(tmp_path / "ok.csv", 3)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CommandError, match=error):
        call_command("import_observations", *args, "--no-progress", stdout=StringIO(), stderr=StringIO())
    assert not Observation.objects.exists()


def test_progress_bar_goes_to_stderr_by_bytes(tmp_path, stations, capsys):
    data = write_rows(tmp_path / "bar.csv", 50)
    call_command("import_observations", str(data), "--batch-size", "20", stdout=StringIO())
    captured = capsys.readouterr()
    assert "bar.csv" in captured.err and "100%" in captured.err
