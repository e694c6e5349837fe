"""Bulk import of observation CSV files (`manage.py import_observations`) through `observation_ingest`.

The file is the one `POST /api/v1/observations` takes as text/csv (header `station,observed_at,value`
in any order, UTF-8, BOM allowed, the same number rules), but of any size: it is streamed line by
line and sent in batches, each batch one transaction. Unlike the HTTP upload a bad row never stops
the import: it goes to the rejected-rows file with its line number and the reason.

One record per line: quoted fields may not span lines (no field of this format needs a newline),
so one broken quote costs one row, and a byte offset always marks a row boundary.

After every committed batch a checkpoint (`<file>.progress`, JSON, replaced atomically) records
how far the file is stored, so `--resume` continues where an interrupted import stopped. Rows
sent twice anyway (a crash between commit and checkpoint) are duplicates, never second rows.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from tqdm import tqdm

from tenancy.models import Municipality

from ..models import Observation
from ..parsers import CSV_COLUMNS, number_from_text
from ..services import observation_ingest

CHECKPOINT_VERSION = 1
# A row of this format is well under 200 bytes; a file without line breaks must not be read whole.
MAX_LINE_BYTES = 64 * 1024
REJECTED_HEADER = ("line", "error", "row")
MAX_LINE_SHOWN = 100


class CsvImportError(Exception):
    """The import cannot go on; the message says what, where, and what is already stored."""


def rejected_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".rejected.csv")


def checkpoint_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".progress")


@dataclass
class Checkpoint:
    """How far a file is stored. Tied to the file's size and mtime: offsets mean nothing in another file."""

    file: str
    size: int
    mtime_ns: int
    municipality: str | None
    rejected_file: str
    offset: int = 0  # bytes of the data file stored (or rejected) so far, header included
    line: int = 1  # last line covered by `offset`
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_file_size: int = 0  # the rejected-rows file is cut back to this on resume
    complete: bool = False
    updated_at: str = ""
    version: int = CHECKPOINT_VERSION

    def save(self, path: Path) -> None:
        """Write to a temporary file and rename it over the old one: a crash leaves the old or the new."""
        self.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        descriptor, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump(asdict(self), stream, indent=2)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {CHECKPOINT_VERSION}")
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise CsvImportError(
                f"{path}: unreadable checkpoint ({exc}); delete it and import again without --resume "
                "(rows already stored are counted as duplicates)"
            ) from None


@dataclass
class ImportResult:
    accepted: int
    duplicates: int
    rejected: int
    rows: int
    rejected_file: Path
    checkpoint_file: Path
    resumed_from_line: int | None = None
    already_complete: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class _Row:
    line: int
    text: str
    item: dict[str, Any]


class ObservationCsvImport:
    """One import run over one file; `run()` returns the totals (including earlier, resumed runs)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        municipality: Municipality | None = None,
        rejected_path: str | os.PathLike | None = None,
        batch_size: int = 10_000,
        resume: bool = False,
        progress_file: IO[str] | None = None,
    ):
        self.path = Path(path)
        self.municipality = municipality
        self.requested_rejected_path = Path(rejected_path) if rejected_path else None
        if not 1 <= batch_size <= settings.INGEST_MAX_BATCH:
            raise CsvImportError(f"batch size must be between 1 and {settings.INGEST_MAX_BATCH}, got {batch_size}")
        self.batch_size = batch_size
        self.resume = resume
        self.progress_file = progress_file

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path_for(self.path)

    def run(self) -> ImportResult:
        stat = self._stat()
        with self.path.open("rb") as data:
            positions = self._read_header(data)
            checkpoint, resumed_from, notes = self._starting_point(stat, header_length=data.tell())
            result_kwargs = {"resumed_from_line": resumed_from, "notes": notes}
            if checkpoint.complete:
                return self._result(checkpoint, already_complete=True, **result_kwargs)
            data.seek(checkpoint.offset)
            with self._open_rejected(checkpoint) as rejected, self._progress(stat.st_size, checkpoint.offset) as bar:
                self._import_rows(data, positions, checkpoint, rejected, bar)
        return self._result(checkpoint, **result_kwargs)

    # --- setup ---

    def _stat(self) -> os.stat_result:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise CsvImportError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise CsvImportError(f"{self.path}: cannot read ({exc.strerror})") from None
        if not self.path.is_file():
            raise CsvImportError(f"{self.path}: not a regular file")
        return stat

    def _read_header(self, data: IO[bytes]) -> list[int]:
        """Column positions of station, observed_at and value; the header is checked before anything is stored."""
        raw = data.readline(MAX_LINE_BYTES + 1)
        if not raw.strip():
            raise CsvImportError(f"{self.path}: empty file or empty first line; expected the header station,observed_at,value")
        if _cut_short(raw):
            raise CsvImportError(f"{self.path} line 1 is longer than {MAX_LINE_BYTES} bytes: not a header; nothing is stored")
        try:
            text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._not_utf8(1, exc, "nothing is stored") from None
        try:
            header = next(csv.reader([_without_newline(text)], strict=True))
        except csv.Error as exc:
            raise CsvImportError(f"{self.path} line 1: malformed CSV header ({exc})") from None
        columns = [name.strip().lower() for name in header]
        if sorted(columns) != sorted(CSV_COLUMNS):
            raise CsvImportError(
                f"{self.path} line 1: header must be station,observed_at,value (in any order), "
                f"got {_shown(_without_newline(text))}; nothing is stored"
            )
        return [columns.index(name) for name in CSV_COLUMNS]

    def _starting_point(self, stat: os.stat_result, *, header_length: int) -> tuple[Checkpoint, int | None, list[str]]:
        notes: list[str] = []
        slug = self.municipality.slug if self.municipality else None
        if self.resume and self.checkpoint_path.exists():
            checkpoint = Checkpoint.load(self.checkpoint_path)
            self._check_resumable(checkpoint, stat, slug)
            return checkpoint, checkpoint.line, notes
        if self.resume:
            notes.append(f"no checkpoint {self.checkpoint_path}; starting from the beginning")
        elif self.checkpoint_path.exists():
            notes.append("replaced the checkpoint of an earlier import (use --resume to continue one)")
        rejected_path = self.requested_rejected_path or rejected_path_for(self.path)
        checkpoint = Checkpoint(
            file=str(self.path.resolve()),
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            municipality=slug,
            rejected_file=str(rejected_path),
        )
        # Past the header; written now so that a failure in the very first batch is resumable, and
        # so that an unwritable directory fails before anything is stored.
        checkpoint.offset = header_length
        try:
            checkpoint.save(self.checkpoint_path)
        except OSError as exc:
            raise CsvImportError(f"cannot write the checkpoint {self.checkpoint_path}: {exc.strerror}") from None
        return checkpoint, None, notes

    def _check_resumable(self, checkpoint: Checkpoint, stat: os.stat_result, slug: str | None) -> None:
        if (checkpoint.size, checkpoint.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            raise CsvImportError(
                f"{self.path} changed since the checkpoint {self.checkpoint_path} was written, so its offsets "
                "no longer apply; import again without --resume (rows already stored count as duplicates)"
            )
        if checkpoint.municipality != slug:
            raise CsvImportError(
                f"the checkpoint was written for --municipality {checkpoint.municipality or '(none)'}; "
                "resume with the same option"
            )
        if self.requested_rejected_path and self.requested_rejected_path != Path(checkpoint.rejected_file):
            raise CsvImportError(
                f"the checkpoint writes rejected rows to {checkpoint.rejected_file}; resume without --rejected-file "
                "or with that path"
            )

    def _open_rejected(self, checkpoint: Checkpoint) -> IO[str]:
        path = Path(checkpoint.rejected_file)
        try:
            if checkpoint.rejected_file_size and path.exists():
                # Rows rejected after the last checkpoint are written again by this run.
                os.truncate(path, checkpoint.rejected_file_size)
                return path.open("a", encoding="utf-8", newline="")
            # utf-8-sig: a BOM so that spreadsheet programs read the Japanese reasons right.
            stream = path.open("w", encoding="utf-8-sig", newline="")
            csv.writer(stream).writerow(REJECTED_HEADER)
            return stream
        except OSError as exc:
            raise CsvImportError(f"cannot write the rejected-rows file {path}: {exc.strerror}") from None

    def _progress(self, total: int, initial: int) -> tqdm:
        return tqdm(
            total=total,
            initial=initial,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=self.path.name,
            file=self.progress_file,
            disable=self.progress_file is None,
            mininterval=0.5,
        )

    # --- the rows ---

    def _import_rows(
        self, data: IO[bytes], positions: list[int], checkpoint: Checkpoint, rejected: IO[str], bar: tqdm
    ) -> None:
        rows: list[_Row] = []
        refused: list[tuple[int, str, str]] = []  # rejected before reaching the service
        line = checkpoint.line
        offset = checkpoint.offset
        for raw in iter(lambda: data.readline(MAX_LINE_BYTES + 1), b""):
            line += 1
            offset += len(raw)
            if _cut_short(raw):
                offset += _skip_rest_of_line(data)
                excerpt = raw[:MAX_LINE_SHOWN].decode("utf-8", errors="replace") + "…"
                refused.append((line, f"line is longer than {MAX_LINE_BYTES} bytes", excerpt))
                continue
            try:
                text = _without_newline(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise self._not_utf8(line, exc, f"lines up to {checkpoint.line} are stored") from None
            if not text.strip():
                continue
            row_or_reason = _row_from(text, line, positions)
            if isinstance(row_or_reason, str):
                refused.append((line, row_or_reason, text))
            else:
                rows.append(row_or_reason)
            if len(rows) >= self.batch_size:
                self._commit(rows, refused, checkpoint, rejected, bar, offset=offset, line=line)
                rows, refused = [], []
        self._commit(rows, refused, checkpoint, rejected, bar, offset=offset, line=line, complete=True)

    def _commit(
        self,
        rows: list[_Row],
        refused: list[tuple[int, str, str]],
        checkpoint: Checkpoint,
        rejected: IO[str],
        bar: tqdm,
        *,
        offset: int,
        line: int,
        complete: bool = False,
    ) -> None:
        """Store one batch, then record its rejected rows, then move the checkpoint past it (in that order)."""
        failures = list(refused)
        if rows:
            try:
                report = observation_ingest(
                    municipality=self.municipality, items=[row.item for row in rows], source=Observation.Source.IMPORT
                )
            except Exception as exc:
                raise CsvImportError(
                    f"storing lines {rows[0].line}-{rows[-1].line} failed ({type(exc).__name__}: {exc}); "
                    f"lines up to {checkpoint.line} are stored; run again with --resume to continue"
                ) from exc
            checkpoint.accepted += report.accepted
            checkpoint.duplicates += report.duplicates
            failures.extend((rows[r["index"]].line, r["error"], rows[r["index"]].text) for r in report.rejected)
        stored_before = checkpoint.line
        checkpoint.rows += len(rows) + len(refused)
        checkpoint.rejected += len(failures)
        try:
            writer = csv.writer(rejected)
            for failure in sorted(failures):
                writer.writerow(failure)
            rejected.flush()
            os.fsync(rejected.fileno())
            checkpoint.rejected_file_size = os.fstat(rejected.fileno()).st_size
            checkpoint.offset, checkpoint.line, checkpoint.complete = offset, line, complete
            checkpoint.save(self.checkpoint_path)
        except OSError as exc:
            raise CsvImportError(
                f"lines up to {line} are stored, but recording that failed ({exc}); --resume continues after "
                f"line {stored_before} and counts the rows after it as duplicates"
            ) from exc
        bar.update(offset - bar.n)

    def _not_utf8(self, line: int, exc: UnicodeDecodeError, stored: str) -> CsvImportError:
        return CsvImportError(
            f"{self.path} line {line} is not UTF-8 (byte {exc.start + 1} of the line); {stored}. "
            "Convert the file to UTF-8 first, e.g. from Shift_JIS: iconv -f CP932 -t UTF-8 FILE > FILE.utf8.csv"
        )

    def _result(self, checkpoint: Checkpoint, **extra) -> ImportResult:
        return ImportResult(
            accepted=checkpoint.accepted,
            duplicates=checkpoint.duplicates,
            rejected=checkpoint.rejected,
            rows=checkpoint.rows,
            rejected_file=Path(checkpoint.rejected_file),
            checkpoint_file=self.checkpoint_path,
            **extra,
        )


def _row_from(text: str, line: int, positions: list[int]) -> _Row | str:
    """The item for one data line, or why the line cannot be one."""
    if "\x00" in text:
        return "line contains a NUL byte"
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return f"malformed CSV ({exc})"
    if len(fields) != len(CSV_COLUMNS):
        return f"expected {len(CSV_COLUMNS)} fields, got {len(fields)}"
    station, observed_at, value = (fields[position].strip() for position in positions)
    return _Row(line, text, {"station": station, "observed_at": observed_at, "value": number_from_text(value)})


def _cut_short(raw: bytes) -> bool:
    """Whether readline() stopped at the length limit rather than at the end of the line."""
    return len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n")


def _skip_rest_of_line(data: IO[bytes]) -> int:
    skipped = 0
    while True:
        chunk = data.readline(MAX_LINE_BYTES)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _without_newline(text: str) -> str:
    return text.rstrip("\r\n")


def _shown(text: str) -> str:
    return repr(text[:MAX_LINE_SHOWN] + ("…" if len(text) > MAX_LINE_SHOWN else ""))
