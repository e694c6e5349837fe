"""Writes to sensor data. Every ingestion path (HTTP, CSV, MQTT, NGSI, simulator, imports) ends here."""

from __future__ import annotations

import json
import secrets
import logging
import math
import re
import unicodedata
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import repeat
from typing import Any, Iterable, Iterator, Mapping, Sequence

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bulkwrite import FROM_MICROS_SQL, TO_MICROS_SQL, pg_array
from events import emit
from tenancy.models import AuditEvent, Municipality
from tenancy.services import audit_record

from .models import (
    Observation,
    SharingGrant,
    Station,
    StationGroup,
    StationKind,
    StationState,
    Threshold,
    ThresholdRevision,
    Visibility,
)
from .catalog import StationRow, accumulation_windows, stations_by_code
from .levels import Measure, level_for
from .plausibility import in_range, is_jump, limits_from_history
from .selectors import MQTT_STATUS_KEY, mqtt_status, readings_in_ranges, station_audiences

logger = logging.getLogger(__name__)

MAX_CODE_LENGTH = 40
MAX_TIME_LENGTH = 64
OLDEST_ACCEPTED = datetime(1900, 1, 1, tzinfo=dt_timezone.utc)
# SQLite refuses statements with more than 32,766 parameters; stay well below.
IN_CHUNK = 2000
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


class ItemError(ValueError):
    """One reading is invalid; the rest of the batch goes on."""


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)
    changed_states: list["_State"] = field(default_factory=list)
    # Stations that got at least one new reading, whether or not it moved their latest state.
    stored_station_ids: set[int] = field(default_factory=set)

    def reject(self, index: int, error: str) -> None:
        self.rejected.append({"index": index, "error": error})

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


# Ingestion keeps times as integer microseconds since the epoch (UTC): exact, cheap to compare, hash
# and send to PostgreSQL as one bigint array, where timestamps cost a Python object per reading.
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
MICROSECOND = timedelta(microseconds=1)


def to_micros(at: datetime) -> int:
    return (at - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def from_micros_many(micros: Iterable[int]) -> Iterator[datetime]:
    """`from_micros` of each, without a Python call per time (a map's 12,000 readings)."""
    zero = repeat(0)
    return map(EPOCH.__add__, map(timedelta, zero, zero, micros))  # timedelta(days, seconds, microseconds)


class _Reading:
    __slots__ = ("index", "station", "at", "value", "quality")

    def __init__(self, index: int, station: StationRow, at: int, value: float):
        self.index, self.station, self.at, self.value = index, station, at, value
        self.quality = OK


class _State:
    """A station's latest-state row as ingestion reads and writes it (times in microseconds)."""

    __slots__ = (
        "station_id", "value", "observed_at", "quality", "previous_value", "previous_at", "reference_value",
        "reference_at", "level", "repeats", "accumulations", "accumulations_changed",
    )  # fmt: skip

    def __init__(self, station_id, value, observed_at, quality, previous_value, previous_at, reference_value,
                 reference_at, level, repeats, accumulations):  # fmt: skip
        self.station_id, self.value, self.observed_at, self.quality = station_id, value, observed_at, quality
        self.previous_value, self.previous_at = previous_value, previous_at
        self.reference_value, self.reference_at = reference_value, reference_at
        self.level = level
        self.repeats = repeats  # identical readings in a row ending at the latest (flatline check)
        self.accumulations = accumulations  # dict, or the stored JSON text until someone needs it
        self.accumulations_changed = False


OK = str(Observation.Quality.OK)
SUSPECT = str(Observation.Quality.SUSPECT)
RANGE = str(Observation.Quality.RANGE)
FLATLINE = str(Observation.Quality.FLATLINE)


def _flag_readings(readings: list[_Reading], state: _State) -> None:
    """Flag one station's readings (time order) by its plausibility limits (sensors.plausibility).

    `range`: outside the station's plausible range, whenever it was taken. Readings newer than the
    latest state are also judged against the ones before them: `suspect` when it jumps implausibly
    from both the last good reading and the reading before it (a reading close to the one before it
    confirms it, so a real step change is flagged once, not forever), `flatline` when it is the Nth
    identical reading in a row. Flagged readings are stored and shown, but set no level.
    """
    limits = readings[0].station.plausibility
    latest = state.observed_at
    reference_value, reference_at = state.reference_value, state.reference_at
    previous_value, previous_at = (state.value, latest) if latest is not None else (None, None)
    repeats = state.repeats or 0
    for reading in readings:
        at, value = reading.at, reading.value
        if not in_range(limits, value):
            reading.quality = RANGE
            continue
        if latest is not None and at <= latest:
            continue  # a late reading: nothing newer to judge it against cheaply
        repeats = repeats + 1 if value == previous_value else 1
        near_reference = (
            reference_at is None
            or reference_value is None
            or not is_jump(limits, reference_value, value, (at - reference_at) / 1e6)
        )
        near_previous = previous_at is not None and (
            previous_value is None or not is_jump(limits, previous_value, value, (at - previous_at) / 1e6)
        )
        if not (near_reference or near_previous):
            reading.quality = SUSPECT
        elif limits.flatline_readings and repeats >= limits.flatline_readings:
            reading.quality = FLATLINE
        else:
            reference_value, reference_at = value, at
        previous_value, previous_at = value, at
    state.repeats = repeats


def _shown(raw: Any, limit: int = 40) -> str:
    """A bounded, quoted echo of client input for error messages."""
    text = raw if isinstance(raw, str) else repr(raw)
    bounded = text[:limit] + ("…" if len(text) > limit else "")
    return repr(bounded) if isinstance(raw, str) else bounded


def normalized_text(raw: str) -> str:
    """Text from a gateway or a form as the platform reads it: NFKC, surrounding whitespace stripped.

    On purpose: Japanese gateways and forms send full-width digits and letters (`１.５`, `ＫＡＷ－０１`),
    which NFKC maps to ASCII. Digits of other scripts stay what they are and are refused where a
    number or a time is expected (see `_foreign_digits`). Every ingestion parser goes through here.
    """
    if raw.isascii():
        return raw.strip()  # NFKC leaves ASCII as it is
    return unicodedata.normalize("NFKC", raw).strip()


def _foreign_digits(text: str) -> bool:
    """Whether text has decimal digits other than 0-9 (Arabic-Indic, Devanagari...), which float()
    would read but the documented formats do not allow."""
    if text.isascii():
        return False
    return any(not ("0" <= char <= "9") and unicodedata.category(char) == "Nd" for char in text)


def _has_control_character(text: str) -> bool:
    # NUL and friends: PostgreSQL refuses NUL in text, and no station code or time contains them.
    if text.isascii():
        return not text.isprintable()  # in ASCII exactly the Cc characters are not printable
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in text)


def parse_observed_at(raw: Any, *, now: datetime) -> datetime:
    if isinstance(raw, datetime):
        parsed = raw
    elif isinstance(raw, str):
        if len(raw) > MAX_TIME_LENGTH:
            raise ItemError("'observed_at' is too long to be an ISO 8601 time")
        text = normalized_text(raw)
        if _foreign_digits(text):
            raise ItemError(f"'observed_at' {_shown(raw)} has digits other than 0-9")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ItemError(f"'observed_at' {_shown(raw)} is not an ISO 8601 time") from None
    else:
        raise ItemError("'observed_at' must be an ISO 8601 string with a UTC offset")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ItemError(f"'observed_at' {_shown(str(raw))} has no UTC offset (add e.g. +09:00 or Z)")
    try:
        # 0001-01-01T00:00+14:00 and 9999-12-31T23:59-14:00 have no UTC equivalent in datetime's range.
        parsed = parsed.astimezone(dt_timezone.utc)
    except (OverflowError, ValueError):
        raise ItemError(f"'observed_at' {_shown(str(raw))} is outside the representable range of times") from None
    if parsed > now + timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS):
        raise ItemError(f"'observed_at' {_shown(str(raw))} is in the future")
    if parsed < OLDEST_ACCEPTED:
        raise ItemError(f"'observed_at' {_shown(str(raw))} is before 1900")
    return parsed


def parse_value(raw: Any) -> float:
    if isinstance(raw, str) and _foreign_digits(raw):
        raise ItemError(f"'value' {_shown(raw)} has digits other than 0-9 (ASCII or full-width digits only)")
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ItemError(f"'value' {_shown(raw)} is not a number")
    try:
        value = float(raw)
    except OverflowError:
        raise ItemError("'value' is not a finite number") from None
    if not math.isfinite(value):
        raise ItemError(f"'value' must be a finite number, got {value!r}")
    return value


def parse_station_code(raw: Any) -> str:
    """A station code as sent (NFKC, stripped), or ItemError saying what is wrong with it."""
    if not isinstance(raw, str):
        raise ItemError("'station' must be a non-empty string")
    code = normalized_text(raw)
    if not code:
        raise ItemError("'station' must be a non-empty string")
    if _has_control_character(code):
        raise ItemError(f"'station' {_shown(code)} contains a control character")
    if len(code) > MAX_CODE_LENGTH:
        raise ItemError(f"'station' {_shown(code)} is longer than {MAX_CODE_LENGTH} characters")
    return code


class _BatchParser:
    """Reads the items of one batch. A batch repeats its station codes and times (a gateway tick is
    one time for every station), so each distinct raw code and time is parsed once, errors included."""

    def __init__(self, now: datetime):
        self.now = now
        self.codes: dict = {}
        self.times: dict = {}

    def _memo(self, memo: dict, parse, raw):
        try:
            found = memo.get(raw)
        except TypeError:  # unhashable (a list or an object where text belongs): parse it to say why
            return parse(raw)
        if found is None:
            try:
                found = parse(raw)
            except ItemError as exc:
                found = exc
            memo[raw] = found
        if isinstance(found, ItemError):
            raise found
        return found

    def _micros(self, raw: Any) -> int:
        return to_micros(parse_observed_at(raw, now=self.now))

    def item(self, item: Any) -> tuple[str, int, float]:
        if isinstance(item, ItemError):
            raise item
        # JSON gives plain dicts; typing.Mapping's isinstance check is ~15× slower than this test.
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ItemError("item must be an object with 'station', 'observed_at' and 'value'")
        try:
            station, observed_at, value = item["station"], item["observed_at"], item["value"]
        except KeyError:
            missing = [key for key in ("station", "observed_at", "value") if key not in item]
            raise ItemError("missing " + ", ".join(f"'{key}'" for key in missing)) from None
        return (
            self._memo(self.codes, parse_station_code, station),
            self._memo(self.times, self._micros, observed_at),
            parse_value(value),
        )


def _chunks(values: Sequence, size: int = IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def observation_ingest(
    *,
    municipality: Municipality | None,
    items: Sequence[Any],
    source: str,
    now: datetime | None = None,
) -> IngestReport:
    """Validate, dedupe and store a batch of readings, and move each station's latest state forward.

    `municipality` limits the batch to that town's stations (a gateway token's town); None is for
    platform-level callers (imports, the demo seed) that may write any station. Invalid items are
    reported by index and the valid ones stored; nothing is stored twice for the same station and
    time. The changed stations go into the change log in the same transaction (`station_changes_emit`);
    nothing else runs in the caller's request.
    """
    now = now or timezone.now()
    report = IngestReport()
    parser = _BatchParser(now)
    catalog = stations_by_code()
    town = municipality.pk if municipality is not None else None
    scope = f"municipality '{municipality.slug}'" if municipality else "this platform"
    readings: list[_Reading] = []
    codes, times = parser.codes, parser.times
    for index, item in enumerate(items):
        # The usual item — a dict whose code and time text were read earlier in the batch and a finite
        # float (x - x is 0.0 for every finite x, NaN for inf and NaN) — is taken from the memos
        # without a call; any other goes through the parser, which says what is wrong with it.
        code = at = None
        if type(item) is dict:
            raw_code, raw_at, value = item.get("station"), item.get("observed_at"), item.get("value")
            if type(raw_code) is str and type(raw_at) is str and type(value) is float and value - value == 0.0:
                code, at = codes.get(raw_code), times.get(raw_at)
        if type(code) is not str or type(at) is not int:
            try:
                code, at, value = parser.item(item)
            except ItemError as exc:
                report.reject(index, str(exc))
                continue
        station = catalog.get(code)
        if station is None or (town is not None and station.municipality_id != town):
            # Same words for "no such station" and "another town's station": existence is private.
            report.reject(index, f"unknown station {_shown(code)} for {scope}")
            continue
        if not station.is_active:
            report.reject(index, f"station {_shown(code)} is inactive")
            continue
        readings.append(_Reading(index, station, at, value))

    if readings:
        try:
            _store_and_emit(readings, report, now=now, source=source, expect_new=True)
        except IntegrityError as exc:
            if not _is_reading_conflict(exc):
                raise
            # A reading newer than its station's latest state was stored already (written by a path
            # that does not move the state): store the batch again, skipping what is there.
            for reading in readings:
                reading.quality = OK
            report.accepted = report.duplicates = 0
            report.changed_states, report.stored_station_ids = [], set()
            _store_and_emit(readings, report, now=now, source=source, expect_new=False)
    report.rejected.sort(key=lambda rejection: rejection["index"])
    return report


def _store_and_emit(readings: list[_Reading], report: IngestReport, *, now: datetime, source: str, expect_new: bool) -> None:
    with transaction.atomic():
        _store(readings, report, now=now, source=source, expect_new=expect_new)
        if report.changed_states:
            station_changes_emit(report.changed_states)


def _is_reading_conflict(exc: IntegrityError) -> bool:
    """Whether `exc` is a reading stored twice (the unique station and time of an observation, on
    any partition), not another integrity error."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return (
        getattr(cause, "sqlstate", None) == UNIQUE_VIOLATION
        and diag is not None
        and (diag.table_name or "").startswith(_OBSERVATIONS)
    )


def _store(readings: list[_Reading], report: IngestReport, *, now: datetime, source: str, expect_new: bool) -> None:
    """`expect_new`: the readings the duplicate check found new are inserted without `ON CONFLICT`
    (PostgreSQL's speculative insertion cost 40 % of the insert); should one be stored after all,
    the insert fails and `observation_ingest` stores the batch again with `expect_new=False`."""
    station_ids = sorted({reading.station.pk for reading in readings})
    # Lock the latest-state rows of every station in the batch, in a fixed order, so concurrent
    # batches for the same stations queue up; the duplicate check below is then exact.
    states = _states_lock(station_ids, now=now)

    existing = _existing_keys(readings, states)
    fresh: list[_Reading] = []
    seen: set[tuple[int, int]] = set()
    for reading in readings:
        key = (reading.station.pk, reading.at)
        if key in existing or key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        fresh.append(reading)
    if not fresh:
        return

    by_station: dict[int, list[_Reading]] = defaultdict(list)
    for reading in fresh:
        by_station[reading.station.pk].append(reading)
    for pk, station_readings in by_station.items():
        if len(station_readings) > 1:
            station_readings.sort(key=_reading_time)
        _flag_readings(station_readings, states[pk])

    report.stored_station_ids = set(by_station)
    history_marks_change(
        [pk for pk, station_readings in by_station.items()
         if states[pk].observed_at is not None and station_readings[0].at <= states[pk].observed_at]
    )

    changed: list[tuple[_State, StationRow]] = []
    rain: list[tuple[_State, StationRow]] = []
    for pk, station_readings in by_station.items():
        state, newest = states[pk], station_readings[-1]
        station = newest.station
        latest = state.observed_at
        if latest is None or newest.at > latest:
            before = station_readings[-2] if len(station_readings) > 1 else None
            if before is not None and (latest is None or before.at > latest):
                state.previous_value, state.previous_at = before.value, before.at
            else:
                state.previous_value, state.previous_at = state.value, latest
            state.value = newest.value
            state.observed_at = newest.at
            state.quality = newest.quality
            ok = [reading for reading in station_readings if reading.quality == OK]
            if ok and (state.reference_at is None or ok[-1].at > state.reference_at):
                state.reference_value, state.reference_at = ok[-1].value, ok[-1].at
        elif not (station.windows and station_readings[0].at > latest - to_micros_span(station.windows[-1])):
            continue  # older readings arrived late; stored, but the latest state stays where it is
        # else: a late reading inside an accumulation window ending at the latest reading
        changed.append((state, station))
        if station.kind == StationKind.RAIN and station.windows:
            rain.append((state, station))

    report.changed_states = [state for state, _ in changed]
    if rain:
        # Rain totals are summed over the stored readings, the new ones included: store them first.
        stored = _observations_insert(fresh, received_at=now, source=source, expect_new=expect_new)
        _refresh_accumulations(rain)
        _set_levels(changed)
        _states_save(report.changed_states, now=now)
    else:
        _set_levels(changed)
        stored = _observations_insert_and_states_save(
            fresh, report.changed_states, now=now, source=source, expect_new=expect_new
        )
    report.accepted = stored
    report.duplicates += len(fresh) - stored


def _set_levels(changed: list[tuple[_State, StationRow]]) -> None:
    for state, station in changed:
        if state.quality == OK:
            state.level = level_for(state, station.thresholds)
        elif state.reference_value is not None:
            # A flagged reading is shown as it came but sets no level; the last good one does (as in
            # station_state_recompute).
            state.level = level_for(Measure(state.reference_value, state.accumulations), station.thresholds)


def _reading_time(reading: _Reading) -> int:
    return reading.at


def to_micros_span(span: timedelta) -> int:
    return span // MICROSECOND


_OBSERVATIONS = Observation._meta.db_table
_STATES = StationState._meta.db_table
# Microseconds since the epoch and back to a timestamp, exactly (a float epoch would round).
_FROM_MICROS, _TO_MICROS = FROM_MICROS_SQL, TO_MICROS_SQL
STATE_FIELDS = [
    "value", "observed_at", "quality", "previous_value", "previous_at", "reference_value", "reference_at",
    "level", "repeats", "accumulations", "updated_at",
]  # fmt: skip
_STATE_TIMES = ("observed_at", "previous_at", "reference_at")


def _states_lock(station_ids: list[int], *, now: datetime) -> dict[int, _State]:
    """Lock the latest-state rows of the stations, in station order, and read them as tuples; a
    station without one (its first reading) gets one first."""
    if connection.vendor == "postgresql":
        # Steady state is one statement: every station has its row after its first reading, so the
        # rows are locked first and only the missing ones are created (then locked) afterwards.
        states = _states_select_for_update(station_ids)
        missing = [pk for pk in station_ids if pk not in states]
        if missing:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {_STATES} (station_id, quality, repeats, accumulations, updated_at) "
                    "SELECT unnest(%s::bigint[]), %s, 0, '{}'::jsonb, %s ON CONFLICT (station_id) DO NOTHING",
                    [pg_array(missing), OK, now],
                )
            states.update(_states_select_for_update(missing))
        return states
    StationState.objects.bulk_create([StationState(station_id=pk) for pk in station_ids], ignore_conflicts=True)
    rows = []
    for chunk in _chunks(station_ids):
        for row in (
            StationState.objects.select_for_update()
            .filter(station_id__in=chunk)
            .order_by("station_id")
            .values_list("station_id", *STATE_FIELDS[:-1])
        ):
            row = list(row)
            for position in (2, 5, 7):  # observed_at, previous_at, reference_at
                row[position] = to_micros(row[position]) if row[position] is not None else None
            rows.append(row)
    return {row[0]: _State(*row) for row in rows}


_STATE_COLUMNS = ", ".join(_TO_MICROS.format(name) if name in _STATE_TIMES else name for name in STATE_FIELDS[:-2])


def _states_select_for_update(station_ids: list[int]) -> dict[int, _State]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT station_id, {_STATE_COLUMNS}, accumulations::text FROM {_STATES} "
            "WHERE station_id = ANY(%s::bigint[]) ORDER BY station_id FOR UPDATE",
            [pg_array(station_ids)],
        )
        return {row[0]: _State(*row) for row in cursor.fetchall()}


def _existing_keys(readings: list[_Reading], states: dict[int, _State]) -> set[tuple[int, int]]:
    """The (station, time) pairs of the batch already stored.

    The latest state is the newest stored reading, so only readings at or before it (late ones, or
    any for a station without a state yet) can be stored already; a batch of new readings costs no
    lookup. The insert still skips conflicts, and counts what it skipped, should that ever not hold.
    """
    if connection.vendor == "postgresql":
        pairs = sorted(
            {
                (reading.station.pk, reading.at)
                for reading in readings
                if (latest := states[reading.station.pk].observed_at) is None or reading.at <= latest
            }
        )
        if not pairs:
            return set()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT k.station_id, k.at FROM unnest(%s::bigint[], %s::bigint[]) AS k(station_id, at) "
                f"JOIN {_OBSERVATIONS} o ON o.station_id = k.station_id AND o.observed_at = {_FROM_MICROS.format('k.at')}",
                [pg_array([pair[0] for pair in pairs]), pg_array([pair[1] for pair in pairs])],
            )
            return set(cursor.fetchall())
    station_ids = sorted({reading.station.pk for reading in readings})
    times = sorted({from_micros(reading.at) for reading in readings})
    keys: set[tuple[int, int]] = set()
    for ids in _chunks(station_ids):
        for chunk in _chunks(times):
            keys.update(
                (station_id, to_micros(at))
                for station_id, at in Observation.objects.filter(station_id__in=ids, observed_at__in=chunk).values_list(
                    "station_id", "observed_at"
                )
            )
    return keys


def _observations_insert(readings: list[_Reading], *, received_at: datetime, source: str, expect_new: bool = False) -> int:
    """Store the readings; how many were stored. One INSERT from arrays on PostgreSQL: Django's
    bulk_create spends more time building model instances and SQL per row than the database spends
    storing them. `expect_new`: see `_store`."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(*_observations_insert_sql(readings, received_at=received_at, source=source, expect_new=expect_new))
            return cursor.rowcount
    Observation.objects.bulk_create(
        [
            Observation(
                station_id=r.station.pk, observed_at=from_micros(r.at), value=r.value, quality=r.quality,
                received_at=received_at, source=source,
            )
            for r in readings
        ],
        batch_size=1000,
    )
    return len(readings)


def _observations_insert_sql(
    readings: list[_Reading], *, received_at: datetime, source: str, expect_new: bool = False
) -> tuple[str, list]:
    return (
        f"INSERT INTO {_OBSERVATIONS} (station_id, observed_at, value, quality, received_at, source) "
        f"SELECT station_id, {_FROM_MICROS.format('at')}, value, quality, %s, %s "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::text[]) AS r(station_id, at, value, quality)"
        + ("" if expect_new else " ON CONFLICT DO NOTHING"),
        [
            received_at, source,
            pg_array([r.station.pk for r in readings]), pg_array([r.at for r in readings]),
            pg_array([r.value for r in readings]), pg_array([r.quality for r in readings]),
        ],
    )


def _states_save(states: list[_State], *, now: datetime) -> None:
    """Write the moved latest states (rows already locked by this transaction): one UPDATE from
    arrays on PostgreSQL; elsewhere an upsert (Django's bulk_update builds a CASE per row and field,
    which costs more than the rest of a gateway tick)."""
    if not states:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(*_states_update_sql(states, now=now))
        return
    rows = []
    for state in states:
        row = StationState(station_id=state.station_id, updated_at=now)
        for name in STATE_FIELDS[:-1]:
            value = getattr(state, name)
            setattr(row, name, from_micros(value) if name in _STATE_TIMES and value is not None else value)
        rows.append(row)
    StationState.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["station"], update_fields=STATE_FIELDS, batch_size=500
    )


def _states_update_sql(states: list[_State], *, now: datetime) -> tuple[str, list]:
    def column(name):
        return pg_array([getattr(state, name) for state in states])

    return (
        f"UPDATE {_STATES} AS t SET value = s.value, observed_at = {_FROM_MICROS.format('s.observed_at')}, "
        f"quality = s.quality, previous_value = s.previous_value, "
        f"previous_at = {_FROM_MICROS.format('s.previous_at')}, reference_value = s.reference_value, "
        f"reference_at = {_FROM_MICROS.format('s.reference_at')}, level = s.level, repeats = s.repeats, "
        "accumulations = COALESCE(s.accumulations::jsonb, t.accumulations), updated_at = %s "
        "FROM unnest(%s::bigint[], %s::float8[], %s::bigint[], %s::text[], %s::float8[], %s::bigint[], "
        "%s::float8[], %s::bigint[], %s::int[], %s::int[], %s::text[]) AS s(station_id, value, observed_at, "
        "quality, previous_value, previous_at, reference_value, reference_at, level, repeats, accumulations) "
        "WHERE t.station_id = s.station_id",
        [
            now, column("station_id"), column("value"), column("observed_at"), column("quality"),
            column("previous_value"), column("previous_at"), column("reference_value"), column("reference_at"),
            column("level"), column("repeats"),
            pg_array([json.dumps(s.accumulations) if s.accumulations_changed else None for s in states]),
        ],
    )


def _observations_insert_and_states_save(
    readings: list[_Reading], states: list[_State], *, now: datetime, source: str, expect_new: bool = False
) -> int:
    """`_observations_insert` and `_states_save` in one statement on PostgreSQL (one round trip
    instead of two: on a loaded machine every round trip waits for the scheduler twice); how many
    readings were stored."""
    if connection.vendor != "postgresql" or not states:
        stored = _observations_insert(readings, received_at=now, source=source, expect_new=expect_new)
        _states_save(states, now=now)
        return stored
    insert, insert_params = _observations_insert_sql(readings, received_at=now, source=source, expect_new=expect_new)
    update, update_params = _states_update_sql(states, now=now)
    with connection.cursor() as cursor:
        # Both run to completion whatever the outer query reads (PostgreSQL's rule for data-modifying
        # WITH); they touch different tables, so neither needs to see the other's rows.
        cursor.execute(
            f"WITH stored AS ({insert} RETURNING 1), moved AS ({update}) SELECT count(*) FROM stored",
            [*insert_params, *update_params],
        )
        return cursor.fetchone()[0]


def _accumulation_totals(wanted: list[tuple[int, int, Sequence[timedelta]]]) -> dict[int, dict[str, float]]:
    """Rain totals per threshold window ending at each station's latest reading, in one query.
    `wanted`: (station id, latest reading in microseconds, its windows ascending)."""
    if not wanted:
        return {}
    series = readings_in_ranges(
        {pk: (from_micros(latest - to_micros_span(windows[-1])), from_micros(latest)) for pk, latest, windows in wanted}
    )
    totals: dict[int, dict[str, float]] = {}
    for pk, latest, windows in wanted:
        points = series.get(pk, [])
        times = [to_micros(at) for at, _, _ in points]
        values = [value for _, value, _ in points]
        totals[pk] = {
            str(int(window.total_seconds())): round(
                sum(values[bisect_right(times, latest - to_micros_span(window)) :]), 3
            )
            for window in windows
        }
    return totals


def _refresh_accumulations(rain: list[tuple[_State, StationRow]]) -> None:
    totals = _accumulation_totals([(state.station_id, state.observed_at, station.windows) for state, station in rain])
    for state, _ in rain:
        state.accumulations = totals[state.station_id]
        state.accumulations_changed = True


STATION_CHANGED = "station.changed"


def history_marks_change(station_ids: list[int]) -> None:
    """The stations' stored history changed other than by a newer reading (a late one, a rebuild):
    copies of their recent readings are stale (StationState.history_mark). Nothing on the hot path
    of newest readings."""
    if station_ids:
        StationState.objects.filter(station_id__in=station_ids).update(history_mark=secrets.randbits(62))


def station_changes_emit(states: Iterable[StationState]) -> None:
    """One change-log event for a batch of moved station states; its handlers (alert evaluation, live
    publishing, NGSI notifications) run in the drain, batched, never in the writer's request."""
    emit(STATION_CHANGED, {"stations": sorted({state.station_id for state in states})})


def changed_station_ids(events: Iterable[tuple[str, dict]], kinds: Iterable[str] = (STATION_CHANGED,)) -> list[int]:
    """The stations named by the `station.changed` events (or other events of the same payload
    shape, `kinds`) of a drain batch, each once."""
    kinds = set(kinds)
    return sorted({int(pk) for kind, payload in events if kind in kinds for pk in payload.get("stations", [])})


# Enough to judge any configured flatline count; a longer run is counted from here on.
RECOMPUTE_REPEATS = 1000


def station_state_recompute(*, station: Station) -> StationState:
    """Rebuild one station's latest state from history (after threshold edits or data repair)."""
    with transaction.atomic():
        StationState.objects.get_or_create(station=station)
        state = StationState.objects.select_for_update().get(station=station)
        latest = station.observations.order_by("-observed_at").first()
        state.value = latest.value if latest else None
        state.observed_at = latest.observed_at if latest else None
        state.quality = latest.quality if latest else Observation.Quality.OK
        good = station.observations.filter(quality=Observation.Quality.OK).order_by("-observed_at").first()
        state.reference_value = good.value if good else None
        state.reference_at = good.observed_at if good else None
        state.repeats = 0
        state.history_mark = secrets.randbits(62)
        for value in station.observations.order_by("-observed_at").values_list("value", flat=True)[:RECOMPUTE_REPEATS]:
            if value != state.value:
                break
            state.repeats += 1
        thresholds = {station.pk: list(station.thresholds.order_by("value"))}
        state.accumulations = {}
        windows = accumulation_windows(station.kind, (t.window for t in thresholds[station.pk]))
        if latest and station.kind == StationKind.RAIN and windows:
            state.accumulations = _accumulation_totals([(station.pk, to_micros(latest.observed_at), windows)])[station.pk]
        if good is not None and state.quality != Observation.Quality.OK:
            # As on ingest: a suspect latest reading does not set the level; the last good one does.
            judged = StationState(value=good.value, accumulations=state.accumulations)
            state.level = level_for(judged, thresholds[station.pk])
        else:
            state.level = level_for(state, thresholds[station.pk])
        state.save()
    return state



def mqtt_connection_record(*, client_id: str, session_present: bool, now: datetime | None = None) -> bool:
    """Note that the MQTT consumer `client_id` connected; True when the broker lost its session.

    A first connection never has a session; a later one without it means the broker forgot the
    subscription and the QoS 1 messages it held (restarted without persistence, session expired).
    One consumer process writes this; a lost update between two would only miss a count.
    """
    now = now or timezone.now()
    key = MQTT_STATUS_KEY.format(client_id=client_id)
    status = mqtt_status(client_id=client_id)
    lost = not session_present and status["connected_at"] is not None
    if lost:
        status["sessions_lost"] += 1
        status["last_session_lost_at"] = now.isoformat()
    status["connected_at"] = now.isoformat()
    cache.set(key, status, timeout=None)
    return lost


# --- sharing ------------------------------------------------------------------------------------
class SharingError(ValueError):
    """A sharing change that does not make sense (to oneself, another town's station...)."""


VISIBILITY_CHANGED = "visibility.changed"


def _after_visibility_change(station_ids: list[int]) -> None:
    """Record who could see these stations before the change (call it before changing them, inside
    the transaction), so live viewers who lost access are told at once: see dashboard.live."""
    before = station_audiences(station_ids)
    emit(
        VISIBILITY_CHANGED,
        {
            "stations": sorted(station_ids),
            "before": {str(pk): [visibility, sorted(towns)] for pk, (visibility, towns) in before.items()},
        },
    )


@transaction.atomic
def station_visibility_set(*, station: Station, visibility: str, actor=None) -> Station:
    if visibility not in Visibility.values:
        raise SharingError(f"Unknown visibility {visibility!r}.")
    if station.visibility == visibility:
        return station
    _after_visibility_change([station.pk])
    previous, station.visibility = station.visibility, visibility
    station.save(update_fields=["visibility"])
    audit_record(
        action=AuditEvent.Action.VISIBILITY_CHANGED, actor=actor, municipality=station.municipality_id,
        target=station.code, detail={"from": previous, "to": visibility},
    )
    return station


@transaction.atomic
def sharing_grant(
    *, grantee: Municipality, station: Station | None = None, group: StationGroup | None = None, actor=None
) -> SharingGrant:
    """Share one station or a group of stations with a named neighbour; private ones become 'shared'."""
    if (station is None) == (group is None):
        raise SharingError("Share either a station or a group.")
    grantor_id = station.municipality_id if station else group.municipality_id
    if grantee.pk == grantor_id:
        raise SharingError("A town always sees its own stations.")
    stations = [station] if station else list(group.stations.all())
    if any(item.municipality_id != grantor_id for item in stations):
        raise SharingError("A group may only share its own town's stations.")
    existing = SharingGrant.objects.active().filter(grantee=grantee, station=station, group=group).first()
    if existing:
        return existing
    _after_visibility_change([item.pk for item in stations])
    for item in stations:
        if item.visibility == Visibility.PRIVATE:
            item.visibility = Visibility.SHARED
            item.save(update_fields=["visibility"])
    grant = SharingGrant.objects.create(
        station=station, group=group, grantor_id=grantor_id, grantee=grantee, granted_by=_user(actor)
    )
    audit_record(
        action=AuditEvent.Action.SHARING_GRANTED, actor=actor, municipality=grantor_id,
        target=station.code if station else f"group {group.name}", detail={"grantee": grantee.slug},
    )
    return grant


@transaction.atomic
def sharing_withdraw(*, grant: SharingGrant, actor=None) -> SharingGrant:
    grant = SharingGrant.objects.select_for_update().get(pk=grant.pk)
    if grant.withdrawn_at is not None:
        return grant
    stations = [grant.station_id] if grant.station_id else list(grant.group.stations.values_list("pk", flat=True))
    _after_visibility_change(stations)
    grant.withdrawn_at = timezone.now()
    grant.withdrawn_by = _user(actor)
    grant.save(update_fields=["withdrawn_at", "withdrawn_by"])
    audit_record(
        action=AuditEvent.Action.SHARING_WITHDRAWN, actor=actor, municipality=grant.grantor_id,
        target=grant.station.code if grant.station_id else f"group {grant.group.name}",
        detail={"grantee": grant.grantee.slug},
    )
    return grant


@transaction.atomic
def station_group_create(*, municipality: Municipality, name: str, stations: list[Station]) -> StationGroup:
    if any(station.municipality_id != municipality.pk for station in stations):
        raise SharingError("A group may only hold its own town's stations.")
    group = StationGroup.objects.create(municipality=municipality, name=name.strip()[:100])
    group.stations.set(stations)
    return group


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


# --- thresholds ---------------------------------------------------------------------------------
THRESHOLD_TEXT_MAX_LENGTH = 40


def parse_typed_number(raw: Any) -> float:
    """A number typed by a person (a threshold, a coordinate): a number, or text in any width ("１．２"
    is 1.2, NFKC). A comma is refused rather than guessed: "1,2" may mean 1.2 or 12."""
    if isinstance(raw, str):
        text = unicodedata.normalize("NFKC", raw).strip()
        if not text:
            raise ItemError("値を入力してください / Enter a value")
        if len(text) > THRESHOLD_TEXT_MAX_LENGTH:
            raise ItemError(f"値が長すぎます / The value is longer than {THRESHOLD_TEXT_MAX_LENGTH} characters")
        if "," in text:
            raise ItemError(
                f"「{text}」: 小数点は「.」で入力してください(例 1.2) / "
                f"{text!r}: use '.' for the decimal point (e.g. 1.2), not ','"
            )
        try:
            raw = float(text)
        except ValueError:
            raise ItemError(f"「{text}」は数値ではありません / {text!r} is not a number") from None
    return parse_value(raw)


def ladder_order_problem(rungs: Iterable[tuple[int | None, float, str, str]]) -> str | None:
    """Within a station's scale (its thresholds on one measure: (level, value, label_ja, label_en)) a
    higher level needs a higher value, and thresholds below the scale (no level) stay below every level."""
    ranked = sorted(rungs, key=lambda rung: (rung[0] is not None, rung[0] or 0))
    for (low_level, low_value, low_ja, low_en), (high_level, high_value, high_ja, high_en) in zip(ranked, ranked[1:]):
        if low_level == high_level:
            continue  # thresholds without a level, or two names for one level: no order between them
        if not low_value < high_value:
            return (
                f"{low_ja}({low_value:g})は{high_ja}({high_value:g})より低くなければなりません / "
                f"{low_en} ({low_value:g}) must be below {high_en} ({high_value:g})"
            )
    return None


def _threshold_order_problem(threshold: Threshold, value: float) -> str | None:
    """`ladder_order_problem` of the threshold's station and measure with `value` in place of its own."""
    return ladder_order_problem(
        (t.level, value if t.pk == threshold.pk else t.value, t.label_ja, t.label_en)
        for t in Threshold.objects.filter(station_id=threshold.station_id, window=threshold.window)
    )


def _physical_problem(station: Station, value: float) -> str | None:
    low, high = station.physical_limits
    if low <= value <= high:
        return None
    return (
        f"{value:g} はこの観測所では不可能な値です({low:g}〜{high:g}) / "
        f"{value:g} is impossible for a {station.kind} station (allowed {low:g} to {high:g})"
    )


def threshold_set(*, threshold: Threshold, value: Any, actor=None, now: datetime | None = None) -> Threshold:
    """Change one threshold's value. The value it replaces is kept with the time it was in force
    (ThresholdRevision), so past readings are still judged by it; the station's level is recomputed
    and live viewers told. Nothing changes when the value is refused."""
    value = parse_typed_number(value)
    problem = _physical_problem(threshold.station, value)
    if problem:
        raise ItemError(problem)
    now = now or timezone.now()
    with transaction.atomic():
        threshold = Threshold.objects.select_for_update().select_related("station").get(pk=threshold.pk)
        problem = _threshold_order_problem(threshold, value)
        if problem:
            raise ItemError(problem)
        if not _threshold_value_write(threshold, value, actor=actor, now=now):
            return threshold
        state = station_state_recompute(station=threshold.station)
        station_changes_emit([state])
    return threshold


def _threshold_value_write(threshold: Threshold, value: float, *, actor, now: datetime) -> bool:
    """Store a checked new value, keeping the old one as a revision, with its audit row (inside the
    caller's transaction, the threshold row locked). False when the value is the same."""
    previous = threshold.value
    if previous == value:
        return False
    ThresholdRevision.objects.create(
        threshold=threshold, value=previous, valid_from=threshold.valid_from, valid_to=now, changed_by=_user(actor)
    )
    threshold.value, threshold.valid_from = value, now
    threshold.save(update_fields=["value", "valid_from"])
    audit_record(
        action=AuditEvent.Action.THRESHOLD_CHANGED, actor=actor, municipality=threshold.station.municipality_id,
        target=f"{threshold.station.code} {threshold.name}", detail={"from": previous, "to": value},
    )
    return True


# How far back `seed_plausibility_limits` reads a station's history by default.
PLAUSIBILITY_HISTORY = timedelta(days=365)


def plausibility_limits_seed(
    *, stations: Iterable[Station], since: datetime, dry_run: bool = False
) -> list[tuple[Station, dict | None]]:
    """Set each station's plausibility limits from its good readings since `since`
    (sensors.plausibility.limits_from_history); stations with too little history keep theirs.
    Returns what each station got (None: left as it was)."""
    results = []
    for station in stations:
        rows = list(
            station.observations.filter(observed_at__gte=since, quality=Observation.Quality.OK)
            .order_by("observed_at")
            .values_list("observed_at", "value")
        )
        limits = limits_from_history(station.kind, [to_micros(at) / 1e6 for at, _ in rows], [value for _, value in rows])
        if limits is not None and not dry_run:
            # An update, not save(): only these fields change; the catalog stamp trigger still fires.
            Station.objects.filter(pk=station.pk).update(**limits)
        results.append((station, limits))
    return results


# --- tide gauges: the astronomical baseline ----------------------------------------------------------


def tide_harmonics_set(*, station: Station, harmonics, source: str = "", now: datetime | None = None):
    """Store a tide gauge's harmonic constants (sensors.tide.Harmonics, already checked); replaces
    the previous ones. The caller decided who may (the command is the platform operator's)."""
    from .models import TideHarmonics

    if station.kind != StationKind.TIDE:
        raise ValueError(f"{station.code} is a {station.kind} station, not a tide gauge")
    document = harmonics.as_document()
    row, _ = TideHarmonics.objects.update_or_create(
        station=station,
        defaults={
            "mean_level": document["mean_level"], "epoch": harmonics.epoch, "constituents": document["constituents"],
            "source": source[:200], "updated_at": now or timezone.now(),
        },
    )
    return row


# --- stations: a town admin adds, edits, moves and retires its own ---------------------------------

# How far outside its town a station may stand: a gauge on the town's river just across the border
# (upstream, where the water comes from) is normal; one 40 km away is a typing error.
NEAR_TOWN_KM = 15.0
# For a town without a boundary, the distance is taken from its other stations.
NEAR_OWN_STATIONS_KM = 30.0
STATION_TEXT_FIELDS = {"name_ja": 100, "name_en": 100, "river_name": 100, "datum": 40}
MAX_INTERVAL_MINUTES = 24 * 60
# Station.code's validator, as a pattern for the form.
STATION_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class StationFormError(ValueError):
    """A station form that cannot be saved: {field: message}, each naming what is wrong and where.
    Nothing was written."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class StationForbidden(PermissionError):
    """The viewer may not manage this town's stations."""


def threshold_field(name: str) -> str:
    """The form field of one standard threshold's value."""
    return f"threshold-{name}"


def _typed_text(data: Mapping[str, Any], field: str, limit: int, errors: dict[str, str], *, required: bool) -> str:
    raw = data.get(field, "")
    if not isinstance(raw, str):
        errors[field] = "文字で入力してください / Enter text"
        return ""
    if len(raw) > 4 * limit:  # before normalising: a huge paste is refused without work
        errors[field] = f"{limit}文字以内で入力してください / At most {limit} characters"
        return ""
    text = normalized_text(raw)
    if required and not text:
        errors[field] = "入力してください / Required"
    elif len(text) > limit:
        errors[field] = f"{limit}文字以内で入力してください / At most {limit} characters"
    elif _has_control_character(text):
        errors[field] = "制御文字は使えません / Control characters are not allowed"
    return text


def _typed_coordinate(data: Mapping[str, Any], field: str, errors: dict[str, str]) -> float | None:
    try:
        return parse_typed_number(data.get(field, ""))
    except ItemError as exc:
        errors[field] = str(exc)
        return None


def _code_taken(code: str) -> str:
    # The same words whoever owns it: codes are unique on the platform, owners are private.
    return f"コード「{code}」は使用済みです / The code {code} is already taken on the platform"


def _location_problem(town: Municipality, lon: float, lat: float, *, moving: Station | None) -> str | None:
    """Inside Japan, and near its town: within NEAR_TOWN_KM of the boundary, or for a town without
    one, within NEAR_OWN_STATIONS_KM of the outline of its other active stations."""
    from geo.outlines import JAPAN_BOUNDS, distance_km, in_japan, station_hull

    if not in_japan(lon, lat):
        (west, east), (south, north) = JAPAN_BOUNDS["lon"], JAPAN_BOUNDS["lat"]
        return (
            f"日本の範囲外です(経度{west:g}〜{east:g}、緯度{south:g}〜{north:g}。緯度と経度が逆ではありませんか) / "
            f"Outside Japan (longitude {west:g} to {east:g}, latitude {south:g} to {north:g}; are they swapped?)"
        )
    if town.boundary:
        area, limit, what_ja, what_en = town.boundary, NEAR_TOWN_KM, "境界", "boundary"
    else:
        others = Station.objects.filter(municipality=town, is_active=True)
        if moving is not None:
            others = others.exclude(pk=moving.pk)
        area = station_hull(others.values_list("lon", "lat"))
        limit, what_ja, what_en = NEAR_OWN_STATIONS_KM, "他の観測所", "other stations"
        if area is None:
            return None  # the town's first station: nothing to be near yet
    try:
        away = distance_km(area, lon, lat)
    except (ValueError, TypeError, KeyError):
        return None  # a broken stored boundary must not block the form; the map skips it too
    if away > limit:
        return (
            f"{town.name_ja}の{what_ja}から{away:.0f} km 離れています({limit:g} km まで) / "
            f"{away:.0f} km from {town.name_en}'s {what_en} (at most {limit:g} km)"
        )
    return None


def _parsed_station(data: Mapping[str, Any], *, town: Municipality, station: Station | None) -> tuple[dict, dict]:
    """The form's station fields and standard threshold values, checked: ({field: value},
    {threshold name: value}), or StationFormError with every problem found."""
    from .threshold_sets import KIND_UNITS, standard_ladder

    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    if station is None:
        try:
            code = parse_station_code(data.get("code", ""))
        except ItemError:
            errors["code"] = f"1〜{MAX_CODE_LENGTH}文字の英数字で入力してください / {MAX_CODE_LENGTH} letters or digits at most"
        else:
            if not STATION_CODE_PATTERN.fullmatch(code):
                errors["code"] = "英数字と . _ - だけが使えます / Letters, digits, '.', '_' and '-' only"
            elif Station.objects.filter(code__iexact=code).exists():
                errors["code"] = _code_taken(code)
            fields["code"] = code
        kind = data.get("kind", "")
        if kind not in StationKind.values:
            errors["kind"] = "種別を選んでください / Choose a kind"
        else:
            fields["kind"] = kind
    else:
        kind = station.kind
        if data.get("kind", kind) != kind:
            errors["kind"] = (
                "種別は変更できません(廃止して新しい観測所を追加してください) / "
                "The kind cannot change: retire the station and add a new one"
            )
    for name, limit in STATION_TEXT_FIELDS.items():
        fields[name] = _typed_text(data, name, limit, errors, required=name in ("name_ja", "name_en"))
    if kind in StationKind.values:
        unit = data.get("unit", KIND_UNITS[kind])
        if unit != KIND_UNITS[kind]:
            errors["unit"] = f"この種別の単位は {KIND_UNITS[kind]} です / A {kind} station reports in {KIND_UNITS[kind]}"
        fields["unit"] = KIND_UNITS[kind]
    visibility = data.get("visibility", "")
    if visibility not in Visibility.values:
        errors["visibility"] = "公開範囲を選んでください / Choose who may see it"
    fields["visibility"] = visibility
    interval = data.get("interval_minutes", "")
    interval = interval.strip() if isinstance(interval, str) else ""
    if not interval:
        fields["expected_interval"] = None
    elif not interval.isascii() or not interval.isdigit() or not 1 <= int(interval) <= MAX_INTERVAL_MINUTES:
        errors["interval_minutes"] = (
            f"1〜{MAX_INTERVAL_MINUTES}の分数で入力してください(空欄: 基準以上でのみ送信) / "
            f"Whole minutes, 1 to {MAX_INTERVAL_MINUTES} (empty: reports only above a start level)"
        )
    else:
        fields["expected_interval"] = timedelta(minutes=int(interval))
    lon, lat = _typed_coordinate(data, "lon", errors), _typed_coordinate(data, "lat", errors)
    if lon is not None and lat is not None:
        problem = _location_problem(town, lon, lat, moving=station)
        if problem:
            errors["location"] = problem
        fields["lon"], fields["lat"] = round(lon, 7), round(lat, 7)

    values: dict[str, float] = {}
    if kind in StationKind.values:
        existing = {t.name: t for t in station.thresholds.all()} if station else {}
        probe = Station(kind=kind)
        for spec in standard_ladder(kind):
            raw = data.get(threshold_field(spec.name), "")
            if isinstance(raw, str) and not raw.strip():
                if spec.name in existing:
                    errors[threshold_field(spec.name)] = "値を入力してください / Enter a value"
                continue
            try:
                value = parse_typed_number(raw)
            except ItemError as exc:
                errors[threshold_field(spec.name)] = str(exc)
                continue
            problem = _physical_problem(probe, value)
            if problem:
                errors[threshold_field(spec.name)] = problem
            else:
                values[spec.name] = value
        ladder = {t.name: (t.level, t.value, t.label_ja, t.label_en, t.window) for t in existing.values()}
        for spec in standard_ladder(kind):
            if spec.name in values:
                ladder[spec.name] = (spec.level, values[spec.name], spec.label_ja, spec.label_en, spec.window)
        if not any(level is not None for level, *_ in ladder.values()):
            errors.setdefault("thresholds", "警戒レベル相当の基準値を一つ以上入力してください / Enter at least one threshold with a level")
        for window in {rung[4] for rung in ladder.values()}:
            problem = ladder_order_problem(rung[:4] for rung in ladder.values() if rung[4] == window)
            if problem:
                errors.setdefault("thresholds", problem)
    if errors:
        raise StationFormError(errors)
    return fields, values


def _may_manage(viewer, town: Municipality, station: Station | None) -> None:
    from tenancy.permissions import Action, permits

    if not permits(viewer, Action.MANAGE_STATIONS, town) or (
        station is not None and (station.municipality_id != town.pk or not permits(viewer, Action.MANAGE_STATIONS, station))
    ):
        raise StationForbidden("Only the admins of the station's town manage it.")


def station_save(
    *, viewer, town: Municipality, data: Mapping[str, Any], station: Station | None = None, actor=None,
    request=None, now: datetime | None = None,
) -> Station:
    """Add a station to `town` (station=None) or edit one of its own, from a form's fields (see
    `_parsed_station`): everything is checked first and nothing is written when anything is wrong
    (StationFormError). Threshold changes keep the old values as revisions (as `threshold_set`);
    a visibility change tells the viewers who lose it (as `station_visibility_set`); the station's
    new place and thresholds reach live maps through the change log (`station.changed`)."""
    _may_manage(viewer, town, station)
    fields, values = _parsed_station(data, town=town, station=station)
    now = now or timezone.now()
    from .threshold_sets import standard_ladder

    with transaction.atomic():
        if station is None:
            visibility = fields.pop("visibility")
            try:
                with transaction.atomic():
                    station = Station.objects.create(municipality=town, visibility=visibility, **fields)
            except IntegrityError:  # taken between the check and now
                raise StationFormError({"code": _code_taken(fields["code"])}) from None
            specs = {spec.name: spec for spec in standard_ladder(station.kind)}
            Threshold.objects.bulk_create(
                Threshold(station=station, name=name, label_ja=specs[name].label_ja, label_en=specs[name].label_en,
                          level=specs[name].level, value=value, window=specs[name].window)
                for name, value in values.items()
            )
            audit_record(
                action=AuditEvent.Action.STATION_ADDED, actor=actor, municipality=town, target=station.code,
                detail={"kind": station.kind, "lon": station.lon, "lat": station.lat, "visibility": visibility,
                        "thresholds": values},
                request=request,
            )
        else:
            station = Station.objects.select_for_update().get(pk=station.pk)
            visibility = fields.pop("visibility")
            changed = {
                name: [getattr(station, name), value] for name, value in fields.items() if getattr(station, name) != value
            }
            if changed:
                for name, (_, value) in changed.items():
                    setattr(station, name, value)
                station.save(update_fields=list(changed))
                audit_record(
                    action=AuditEvent.Action.STATION_EDITED, actor=actor, municipality=town, target=station.code,
                    detail={
                        name: [str(old) if isinstance(old, timedelta) else old,
                               str(new) if isinstance(new, timedelta) else new]
                        for name, (old, new) in changed.items()
                    },
                    request=request,
                )
            if visibility != station.visibility:
                station_visibility_set(station=station, visibility=visibility, actor=actor)
            existing = {t.name: t for t in Threshold.objects.select_for_update().filter(station=station)}
            specs = {spec.name: spec for spec in standard_ladder(station.kind)}
            for name, value in values.items():
                if name in existing:
                    existing[name].station = station
                    _threshold_value_write(existing[name], value, actor=actor, now=now)
                else:
                    spec = specs[name]
                    Threshold.objects.create(
                        station=station, name=name, label_ja=spec.label_ja, label_en=spec.label_en, level=spec.level,
                        value=value, window=spec.window,
                    )
                    audit_record(
                        action=AuditEvent.Action.THRESHOLD_CHANGED, actor=actor, municipality=town,
                        target=f"{station.code} {name}", detail={"from": None, "to": value},
                    )
            station_state_recompute(station=station)
        emit(STATION_CHANGED, {"stations": [station.pk]})
    return station


def station_retire(*, viewer, station: Station, retired: bool = True, actor=None, request=None) -> Station:
    """Retire a station (it stops showing everywhere and takes no readings; its readings, thresholds
    and alerts' history stay) or reinstate it. Live viewers of a retired station are told it is gone
    (`withdrawn`), through the same path as a narrowed visibility."""
    town = station.municipality
    _may_manage(viewer, town, station)
    with transaction.atomic():
        station = Station.objects.select_for_update().get(pk=station.pk)
        if station.is_active != retired:
            return station
        if retired:
            _after_visibility_change([station.pk])  # who saw it: they are told it is withdrawn
        station.is_active = not retired
        station.save(update_fields=["is_active"])
        audit_record(
            action=AuditEvent.Action.STATION_RETIRED, actor=actor, municipality=station.municipality_id,
            target=station.code, detail={"retired": retired}, request=request,
        )
        if not retired:
            emit(STATION_CHANGED, {"stations": [station.pk]})
    return station
