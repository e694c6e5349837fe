"""Shelters in the national standard open dataset layout (自治体標準オープンデータセット「指定緊急避難場所一覧」):
reading its CSV into checked rows, and writing shelters back in it. No writes to the database.

The layout has Japanese column names. Read: 全国地方公共団体コード (the owner town), ID (unique within the
town), 名称, 名称_英字, 所在地_連結表記 (or the older 住所), 緯度, 経度, 想定収容人数 and one column per
災害種別 (`災害種別_洪水`, or the older bare `洪水`, ...) marked `1` / `○` when the place is designated for
that hazard and left blank when not. Every other column (電話番号, 備考, ...) is reported as not
mapped. A row that cannot become a shelter is reported with its line and reason and left out; a value
that cannot be understood in an optional column is reported and left unknown.
"""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from dataclasses import dataclass, field

from .models import SHELTER_HAZARDS

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000
MAX_CELL = 1_000
NAME_MAX_LENGTH = 100
ADDRESS_MAX_LENGTH = 200
ID_MAX_LENGTH = 32

HAZARD_COLUMNS = {
    "flood": "洪水",
    "landslide": "崖崩れ、土石流及び地滑り",
    "storm_surge": "高潮",
    "earthquake": "地震",
    "tsunami": "津波",
    "large_fire": "大規模な火事",
    "inland_flood": "内水氾濫",
    "volcano": "火山現象",
}
assert tuple(HAZARD_COLUMNS) == SHELTER_HAZARDS
HAZARD_PREFIX = "災害種別_"

# What is written on export, in the standard's order (columns we keep nothing for are left empty).
EXPORT_COLUMNS = (
    "全国地方公共団体コード", "ID", "地方公共団体名", "名称", "名称_カナ", "名称_英字", "所在地_連結表記",
    "緯度", "経度", *(HAZARD_PREFIX + column for column in HAZARD_COLUMNS.values()), "想定収容人数", "備考",
)
# Each field we read, with the column names it may come under (the current standard's first).
READ_COLUMNS = {
    "town_code": ("全国地方公共団体コード", "都道府県コード又は市区町村コード"),
    "local_id": ("ID", "NO"),
    "name": ("名称",),
    "name_en": ("名称_英字",),
    "address": ("所在地_連結表記", "住所"),
    "lat": ("緯度",),
    "lon": ("経度",),
    "capacity": ("想定収容人数",),
    **{f"for_{hazard}": (HAZARD_PREFIX + column, column) for hazard, column in HAZARD_COLUMNS.items()},
}
YES = {"1", "○", "◯", "〇", "●", "◎", "有", "可", "true", "yes", "y"}
NO = {"", "0", "×", "✕", "-", "－", "ー", "無", "不可", "false", "no", "n"}


class DatasetError(ValueError):
    """The file as a whole cannot be read (encoding, size, header); nothing is stored."""


@dataclass
class RowReport:
    line: int  # in the file, the header being line 1
    error: str = ""  # the row was left out, and why
    notes: list[str] = field(default_factory=list)  # values of this row that did not map

    def as_dict(self) -> dict:
        return {"line": self.line, "error": self.error, "notes": self.notes}


@dataclass
class DatasetRow:
    line: int
    town_code: str | None
    local_id: str
    name_ja: str
    lon: float
    lat: float
    values: dict  # further Shelter fields the file has columns for (name_en, address, capacity, for_*)


@dataclass
class ParsedDataset:
    rows: list[DatasetRow]
    reports: list[RowReport]  # only rows with an error or notes
    unmapped_columns: list[str]


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The file's text and its encoding: as given, else UTF-8 (with or without BOM), else CP932 (Excel in Japan)."""
    if len(data) > MAX_BYTES:
        raise DatasetError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    candidates = [encoding] if encoding else ["utf-8-sig", "cp932"]
    for candidate in candidates:
        try:
            return data.decode(candidate), "UTF-8" if candidate == "utf-8-sig" else candidate.upper()
        except LookupError:
            raise DatasetError(f"{candidate[:40]!r} is not a known text encoding") from None
        except UnicodeDecodeError as exc:
            last = exc
    raise DatasetError(
        f"the file is not {' or '.join(c.upper().replace('-SIG', '') for c in candidates)} "
        f"(byte {last.start}); name its encoding"
    )


def _clean(raw: str | None) -> str:
    return unicodedata.normalize("NFKC", (raw or "").strip())


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse(text: str) -> ParsedDataset:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError("the file is empty") from None
    except csv.Error as exc:
        raise DatasetError(f"line 1: {exc}") from None
    header = [_clean(name) for name in header]
    position: dict[str, int] = {}
    for key, names in READ_COLUMNS.items():
        found = next((name for name in names if name in header), None)
        if found is not None:
            position[key] = header.index(found)
    missing = [READ_COLUMNS[key][0] for key in ("name", "lat", "lon") if key not in position]
    if missing:
        raise DatasetError(
            f"no column {', '.join(missing)}: is this the 指定緊急避難場所一覧 layout? The header has: "
            f"{', '.join(name[:30] for name in header[:40]) or '(nothing)'}"
        )
    used = set(position.values())
    unmapped = [name for index, name in enumerate(header) if index not in used and name]

    rows: list[DatasetRow] = []
    reports: list[RowReport] = []
    line = 1
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) + len(reports) >= MAX_ROWS:
                raise DatasetError(f"more than {MAX_ROWS} rows; split the file")
            report = RowReport(line)
            row = _row(line, cells, position, report)
            if row is not None:
                rows.append(row)
            if report.error or report.notes:
                reports.append(report)
    except csv.Error as exc:
        raise DatasetError(f"line {reader.line_num}: {exc}") from None
    return ParsedDataset(rows=rows, reports=reports, unmapped_columns=unmapped)


def _row(line: int, cells: list[str], position: dict[str, int], report: RowReport) -> DatasetRow | None:
    def cell(key: str) -> str | None:
        index = position.get(key)
        if index is None:
            return None
        return _clean(cells[index]) if index < len(cells) else ""

    for value in cells:
        if len(value) > MAX_CELL:
            report.error = f"a cell is longer than {MAX_CELL} characters"
            return None
        if any(unicodedata.category(char) == "Cc" and char not in "\t\r\n" for char in value):
            report.error = "a cell holds a control character (NUL ...)"
            return None
    name = cell("name")
    if not name:
        report.error = "名称 is empty"
        return None
    if len(name) > NAME_MAX_LENGTH:
        report.error = f"名称 is longer than {NAME_MAX_LENGTH} characters"
        return None
    lat, lon = _number(cell("lat") or ""), _number(cell("lon") or "")
    if lat is None or lon is None:
        report.error = f"緯度 {cell('lat')[:20]!r} / 経度 {cell('lon')[:20]!r} are not numbers"
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        swapped = " (緯度 and 経度 swapped?)" if -90 <= lon <= 90 and -180 <= lat <= 180 else ""
        report.error = f"緯度 {lat:g} / 経度 {lon:g} are outside latitude/longitude range{swapped}"
        return None
    local_id = cell("local_id") or ""
    if not local_id:
        report.error = "ID is empty: each place needs an ID, unique within its town"
        return None
    if len(local_id) > ID_MAX_LENGTH or not all(char.isalnum() or char in "-_." for char in local_id):
        report.error = f"ID {local_id[:40]!r} must be at most {ID_MAX_LENGTH} letters, digits, '-', '_' or '.'"
        return None
    town_code = cell("town_code")
    if town_code is not None and not (town_code.isascii() and town_code.isdigit() and len(town_code) in (5, 6)):
        report.error = f"全国地方公共団体コード {town_code[:20]!r} is not a 5- or 6-digit code"
        return None

    values: dict = {}
    name_en = cell("name_en")
    if name_en is not None:
        values["name_en"] = name_en[:NAME_MAX_LENGTH] or name
        if len(name_en) > NAME_MAX_LENGTH:
            report.notes.append(f"名称_英字 cut to {NAME_MAX_LENGTH} characters")
    address = cell("address")
    if address is not None:
        values["address"] = address[:ADDRESS_MAX_LENGTH]
        if len(address) > ADDRESS_MAX_LENGTH:
            report.notes.append(f"所在地 cut to {ADDRESS_MAX_LENGTH} characters")
    capacity_text = cell("capacity")
    if capacity_text is not None:
        capacity = _number(capacity_text) if capacity_text else None
        if capacity_text and (capacity is None or capacity < 0 or not capacity.is_integer() or capacity > 2**31 - 1):
            report.notes.append(f"想定収容人数 {capacity_text[:20]!r} is not a whole number of people: left unknown")
            capacity = None
        values["capacity"] = int(capacity) if capacity is not None else None
    for hazard, column in HAZARD_COLUMNS.items():
        flag = cell(f"for_{hazard}")
        if flag is None:
            continue  # no such column: what is stored stays (unknown for a new shelter)
        if flag.lower() in YES:
            values[f"for_{hazard}"] = True
        elif flag.lower() in NO:
            values[f"for_{hazard}"] = False
        else:
            values[f"for_{hazard}"] = None
            report.notes.append(f"{HAZARD_PREFIX}{column} {flag[:20]!r} is neither 1/○ nor blank: left unknown")
    return DatasetRow(line=line, town_code=town_code, local_id=local_id, name_ja=name, lon=lon, lat=lat, values=values)


def shelter_code(town_code: str, local_id: str) -> str:
    """Standard IDs are unique within a town only; our shelter codes are unique on the platform."""
    return f"{town_code}-{local_id}"


def local_id_of(shelter) -> str:
    prefix = shelter.municipality.code + "-"
    return shelter.code[len(prefix):] if shelter.code.startswith(prefix) else shelter.code


def _degrees(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".")


def render(shelters, *, text_cell) -> str:
    """The shelters as 指定緊急避難場所一覧 CSV (UTF-8 with BOM, as Excel in Japan wants it; CRLF).
    `text_cell` guards free text against spreadsheet formulas (sensors.api.csv_cell)."""
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(EXPORT_COLUMNS)
    for shelter in shelters:
        flags = ["1" if shelter.suitable_for(hazard) else "" for hazard in HAZARD_COLUMNS]
        writer.writerow([
            shelter.municipality.code, text_cell(local_id_of(shelter)), text_cell(shelter.municipality.name_ja),
            text_cell(shelter.name_ja), "", text_cell(shelter.name_en), text_cell(shelter.address),
            _degrees(shelter.lat), _degrees(shelter.lon), *flags,
            "" if shelter.capacity is None else shelter.capacity, "",
        ])
    return "\ufeff" + output.getvalue()
