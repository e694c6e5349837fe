"""Reads of sensor data. Every function that answers a viewer takes the viewer and goes through
`Station.objects.visible_to`; the few without one (`station_audiences`, `readings_in_ranges`) serve
services that already hold the station ids they may work on and never answer a viewer directly."""

from __future__ import annotations

import json
import threading
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.db.models import QuerySet, TextField, prefetch_related_objects
from django.db.models.functions import Cast
from django.utils import timezone

from bulkwrite import TO_MICROS_SQL, filter_ids, pg_array
from tenancy.selectors import Viewer

from .levels import Measure, level_for, value_ladder, window_totals
from .models import (
    Observation,
    SharingGrant,
    Station,
    StationGroup,
    StationKind,
    StationState,
    Threshold,
    TideHarmonics,
    Visibility,
)
from .rain import HOUR_KEY as RAIN_HOUR_KEY, rain_intensity
from .tide import TideError, harmonics_from_document, predict as tide_predict
from .trends import (
    TREND_LOOKBACK,
    TREND_WINDOW_MICROS,
    reading_trend,
    station_trend,
    trend_readings_of,
    trend_readings_prefetch,
)


def visible_stations(*, viewer: Viewer, kind: str | None = None, municipality: str | None = None) -> QuerySet[Station]:
    """Active stations the viewer may see, by code, with their owner town (the base of every map read)."""
    queryset = Station.objects.visible_to(viewer).filter(is_active=True).select_related("municipality").order_by("code")
    if kind:
        queryset = queryset.filter(kind=kind)
    if municipality:
        queryset = queryset.filter(municipality__slug=municipality)
    return queryset


def managed_stations(*, viewer: Viewer, town) -> QuerySet[Station]:
    """A town's own stations, retired ones too (active first), if the viewer may manage that town's
    stations (tenancy.permissions MANAGE_STATIONS); otherwise none. For the town admin's station editor."""
    from tenancy.permissions import Action, restrict

    return (
        restrict(Station.objects.filter(municipality=town), viewer, Action.MANAGE_STATIONS)
        .select_related("municipality", "state")
        .prefetch_related("thresholds")
        .order_by("-is_active", "code")
    )


def station_list(*, viewer: Viewer, kind: str | None = None, municipality: str | None = None) -> QuerySet[Station]:
    """Stations the viewer may see, with owner, latest state, thresholds and the readings their trend
    is judged on loaded (three queries)."""
    return (
        visible_stations(viewer=viewer, kind=kind, municipality=municipality)
        .select_related("state")
        .prefetch_related("thresholds", trend_readings_prefetch())
    )


class LiveState(NamedTuple):
    """The parts of a `StationState` a feature reads (duck-types it for `feature_of`)."""

    value: float | None
    observed_at: datetime | None
    quality: str
    level: int | None
    accumulations: dict


class _FeatureCatalog:
    """Per-process copies of what a station's feature takes from the catalog (the station with its
    owner and thresholds, as loaded by `station_list`), kept while the catalog stamp
    (`sensors.models.CatalogStamp`) stays the same: the live publisher then loads only the states and
    the trend readings of a batch's stations, as tuples, instead of the station, owner and five
    thresholds of each as model instances every batch. Each entry also keeps the station's
    `fixed_parts` by language once built (the same for every batch until the stamp moves)."""

    def __init__(self):
        self.stamp: int | None = None
        self.stations: dict[int, tuple[Station, list[Threshold], dict[str, FixedParts]]] = {}
        self.lock = threading.Lock()

    def of(self, station_ids: list[int]) -> dict[int, tuple[Station, list[Threshold], dict[str, FixedParts]]]:
        from .catalog import current_stamp

        stamp = current_stamp()
        with self.lock:
            if stamp is None or stamp != self.stamp:
                self.stamp, self.stations = stamp, {}
            known = self.stations
        missing = [pk for pk in station_ids if pk not in known]
        if missing:
            loaded = {
                station.pk: (station, list(station.thresholds.all()), {})
                for station in Station.objects.filter(is_active=True, pk__in=missing)
                .select_related("municipality").prefetch_related("thresholds")
            }
            if stamp is not None:
                with self.lock:
                    if self.stamp == stamp:
                        self.stations.update(loaded)
            known = {**known, **loaded}
        return {pk: known[pk] for pk in station_ids if pk in known}

    def forget(self, station_id: int) -> None:
        with self.lock:
            self.stations.pop(station_id, None)


_feature_catalog = _FeatureCatalog()


def live_features_of(station_ids, *, now: datetime) -> dict[int, dict]:
    """`station_feature` of each of these active stations as committed now, by station id in order of
    code, for the live publisher (which sees every station: it routes each feature to its audiences
    itself). The same features (tests/events/test_pipeline.py compares them), from fewer objects:
    stations and thresholds from a per-process copy kept under the catalog stamp, the states and
    trend readings of the batch as tuples (three queries: stamp, states, trend readings)."""
    station_ids = sorted(set(station_ids))
    catalog = _feature_catalog.of(station_ids)
    states = filter_ids(StationState.objects.all(), "station_id", list(catalog)).values_list(
        "station_id", "value", "observed_at", "quality", "level", "accumulations", "station__municipality__slug"
    )
    by_station = {}
    for station_id, value, observed_at, quality, level, accumulations, slug in states:
        by_station[station_id] = LiveState(value, observed_at, quality, level, accumulations)
        if catalog[station_id][0].municipality.slug != slug:
            # The town was renamed (towns are not under the stamp): this station's copy is reloaded.
            _feature_catalog.forget(station_id)
            catalog[station_id][0].municipality.slug = slug
            catalog[station_id][2].clear()
    trends = trend_readings_of({pk: station.kind for pk, (station, _, _) in catalog.items()})
    # One formatter for the batch: a storm's readings share a few clock ticks, each written once.
    lang, iso = _lang(), LocalIsoFormatter()
    features = {}
    for pk, (station, thresholds, fixed) in sorted(catalog.items(), key=lambda item: item[1][0].code):
        parts = fixed.get(lang)
        if parts is None:
            parts = fixed[lang] = fixed_parts(station, thresholds, at=None, lang=lang)
        features[pk] = feature_of(
            station, by_station.get(pk), thresholds, reading_trend(station.kind, trends[pk], window=TREND_WINDOW_MICROS),
            now=now, lang=lang, iso=iso, fixed=parts,
        )
    return features


def stations_with_threshold_history(
    *, viewer: Viewer, kind: str | None = None, municipality: str | None = None
) -> list[Station]:
    """`visible_stations` with their thresholds and the past values of those ever edited loaded, to
    judge readings of any time (the rest were never anything but their value: no revisions to load).
    From the process's as-of catalog (`_as_of_catalog`): shared, read-only instances."""
    return [entry.station for entry in _as_of_catalog(visible_stations(viewer=viewer, kind=kind, municipality=municipality))]


def station_get(*, viewer: Viewer, code: str) -> Station:
    """One visible station with its state, thresholds and trend readings (`station_list`); raises
    Station.DoesNotExist alike for missing and not-visible ones."""
    return _by_code(station_list(viewer=viewer), code)


def visible_station_get(*, viewer: Viewer, code: str) -> Station:
    """One visible station with its owner town only (one query), for reads that need no more than
    which station it is, such as its history: `station_get` also loads its state, thresholds and trend
    readings (three queries, about a sixth of a 7-day history request before: bench/history.py). Raises
    Station.DoesNotExist alike for missing and not-visible ones."""
    return _by_code(visible_stations(viewer=viewer), code)


def _by_code(stations: QuerySet[Station], code: str) -> Station:
    if "\x00" in code:  # no code has one, and PostgreSQL refuses to even compare text with a NUL
        raise Station.DoesNotExist
    return stations.get(code=code)


def _state_of(station: Station) -> StationState | None:
    try:
        return station.state
    except StationState.DoesNotExist:
        return None


_OWN_STATE = object()  # "the station's own `state`", where a caller may pass another (a past one)


def station_stale_after(station: Station, state=_OWN_STATE) -> datetime | None:
    """When the latest reading stops counting as current: the expected interval, doubled for one
    missed report of slack. None for gauges that report only above a start level (silence is normal)
    and for stations that never reported (stale already)."""
    if state is _OWN_STATE:
        state = _state_of(station)
    if station.expected_interval is None or state is None or state.observed_at is None:
        return None
    return state.observed_at + 2 * station.expected_interval


def station_is_stale(station: Station, *, now: datetime, state=_OWN_STATE) -> bool:
    if station.expected_interval is None:
        return False
    stale_after = station_stale_after(station, state)
    return stale_after is None or stale_at(stale_after, now)


def stale_at(stale_after: datetime, now: datetime) -> bool:
    """Whether a reading current until `stale_after` is stale at `now` (for features kept between
    messages: public.features, and static/mizumori/live.js in the browser)."""
    return now > stale_after


def local_iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


class LocalIsoFormatter:
    """`local_iso` for many UTC times, without a time zone conversion per time (in any order; spans
    are looked up again when times go back and forth, so ascending order is cheapest).

    The zone's offset is looked up once per span in which it is constant (probed every few hours,
    with the exact change instant found by bisection), then each time is shifted by it and given
    the offset's text. The output is the same string `local_iso` gives, for any zone with DST or
    not; tzdata has no offset that changes and changes back within `PROBE`.
    """

    PROBE = timedelta(hours=6)
    HORIZON = timedelta(days=2)

    def __init__(self, zone=None):
        self.zone = zone or timezone.get_current_timezone()
        self._start = self._end = datetime.max
        self._offset = timedelta(0)
        self._suffix = ""
        self._written: dict[datetime, str] = {}

    def __call__(self, value: datetime) -> str:
        """One aware time (any offset), or a naive one meaning UTC, as local ISO 8601 text."""
        # Kept per time: one formatter writes a map's 2,000 newest readings and stale-after times,
        # and gauges report on the same clock ticks, so most are repeats.
        try:
            return self._written[value]
        except KeyError:
            pass
        at = _naive_utc(value)
        if not self._start <= at < self._end:
            self._span_from(at)
        text = self._written[value] = (at + self._offset).isoformat() + self._suffix
        return text

    def rows(self, rows) -> list[tuple]:
        """Rows whose first item is a time (aware, naive meaning UTC, or ISO text of either), with
        that time as local ISO 8601 text."""
        formatted = []
        append = formatted.append
        start, end, offset, suffix = self._start, self._end, self._offset, self._suffix
        for at, *rest in rows:
            at = _naive_utc(at)
            if not start <= at < end:
                self._span_from(at)
                start, end, offset, suffix = self._start, self._end, self._offset, self._suffix
            append(((at + offset).isoformat() + suffix, *rest))
        return formatted

    def _offset_at(self, utc: datetime) -> timedelta:
        return utc.replace(tzinfo=UTC).astimezone(self.zone).utcoffset()

    def _span_from(self, utc: datetime) -> None:
        """The span of constant offset around `utc`, up to HORIZON either way: times that come back
        and forth within it (a batch of stations' readings, in station order) find it again."""
        offset = self._offset_at(utc)
        end = utc
        limit = min(utc, datetime.max - self.HORIZON - self.PROBE) + self.HORIZON
        while end < limit:
            probe = end + self.PROBE
            if self._offset_at(probe) != offset:
                end = self._first_with_offset_of(end, probe)
                break
            end = probe
        start = utc
        floor = max(utc, datetime.min + self.HORIZON + self.PROBE) - self.HORIZON
        while start > floor:
            probe = start - self.PROBE
            if self._offset_at(probe) != offset:
                start = self._first_with_offset_of(probe, start)
                break
            start = probe
        aware = utc.replace(tzinfo=UTC).astimezone(self.zone)
        self._start, self._end, self._offset = start, max(end, utc + timedelta(microseconds=1)), offset
        self._suffix = aware.isoformat()[len(aware.replace(tzinfo=None).isoformat()):]

    def _first_with_offset_of(self, low: datetime, high: datetime) -> datetime:
        """The first microsecond in (low, high] with the offset in force at `high` (not the one at `low`;
        one change between them: see PROBE)."""
        offset = self._offset_at(high)
        while high - low > timedelta(microseconds=1):
            middle = low + (high - low) // 2
            if self._offset_at(middle) == offset:
                high = middle
            else:
                low = middle
        return high


def _naive_utc(at: datetime | str) -> datetime:
    """An aware time (any offset), a naive one meaning UTC, or ISO text of either, as naive UTC."""
    if type(at) is str:
        at = datetime.fromisoformat(at)
    if at.tzinfo is not None:
        # Database drivers hand over UTC; other offsets take the slower exact path.
        at = at.replace(tzinfo=None) if at.tzinfo is UTC else at.astimezone(UTC).replace(tzinfo=None)
    return at


def station_feature(station: Station, *, now: datetime, at: datetime | None = None) -> dict:
    """A GeoJSON Feature in the shape of the `/api/v1/stations` contract (and the live layer), of a
    station loaded with its state, thresholds and trend readings (`station_list`)."""
    return feature_of(station, _state_of(station), list(station.thresholds.all()), station_trend(station), now=now)


def feature_of(
    station: Station, state, thresholds: list[Threshold], trend: str | None, *, now: datetime,
    at: datetime | None = None, lang: str | None = None, iso=local_iso, fixed: "FixedParts | None" = None,
) -> dict:
    """The feature of `station_feature` from its parts: the station's state (a StationState, or the
    state it had at `at`), thresholds and trend. `at`: the feature as of that past moment; threshold
    values are those in force then, `now` is then. `iso`: how times are written (a LocalIsoFormatter
    for many features). `fixed`: the station's `fixed_parts` for this `at` and language, when the
    caller keeps them (the as-of catalog: they are the same for every moment of an unedited station)."""
    lang = lang or _lang()
    fixed = fixed or fixed_parts(station, thresholds, at=at, lang=lang)
    return _feature(station, fixed, *moving_properties(station, state, thresholds, trend, now=now, iso=iso))


def _feature(station: Station, fixed: "FixedParts", readings_part: dict, judged_part: dict) -> dict:
    """A feature from its fixed and moving parts, in the order of the contract (docs/api.md).
    `FeatureJson.text` writes the same order as JSON."""
    properties = {**fixed.names, **readings_part, "thresholds": fixed.thresholds, **judged_part}
    properties["visibility"] = station.visibility
    return {"type": "Feature", "id": station.code, "geometry": fixed.geometry, "properties": properties}


def moving_properties(station: Station, state, thresholds: list[Threshold], trend: str | None, *, now: datetime,
                      iso=local_iso) -> tuple[dict, dict]:
    """The properties of a station's feature that change with its readings and the time (the rest
    are its `fixed_parts`): those listed before its thresholds, and those after them."""
    observed_at = state.observed_at if state else None
    return (
        {
            "value": state.value if state else None,
            "observed_at": iso(observed_at) if observed_at else None,
            "level": state.level if state else None,
            # "suspect" / "range" / "flatline": the latest reading is flagged (sensors.plausibility); it
            # is shown but does not set the level.
            "quality": state.quality if observed_at else None,
            # ...yet QC never silences danger: the level that suspect reading would mean, so the map
            # says "unconfirmed" rather than "normal" until the next reading confirms or withdraws it.
            "unconfirmed_level": unconfirmed_level(state, thresholds),
            # Rain gauges: the 1-hour total that sets their state and its JMA intensity category.
            **rain_state(station, state),
            "trend": trend,
            "accumulations": state.accumulations if state else {},
        },
        {
            "stale": station_is_stale(station, now=now, state=state),
            # Lets a page that stops hearing from the server still grey the station out on time.
            "stale_after": _iso_or_none(iso, station_stale_after(station, state)),
        },
    )


class FixedParts(NamedTuple):
    """What of a station's feature does not change with its readings: geometry, the leading
    properties (code, names, kind, town, river, unit, datum) and the thresholds as listed at a moment.
    Shared read-only between features (never mutate them)."""

    geometry: dict
    names: dict
    thresholds: list[dict]


def fixed_parts(station: Station, thresholds: list[Threshold], *, at: datetime | None, lang: str) -> FixedParts:
    return FixedParts(
        {"type": "Point", "coordinates": [station.lon, station.lat]},
        {
            "code": station.code,
            "name": station.name_ja if lang == "ja" else station.name_en,
            "name_ja": station.name_ja,
            "name_en": station.name_en,
            "kind": station.kind,
            "municipality": station.municipality.slug,
            "river": station.river_name,
            "unit": station.unit,
            # What 0 m means for a stage or tide level (e.g. "T.P."); "" for the gauge's own zero.
            "datum": station.datum,
        },
        [
            {
                "name": t.name,
                "label_ja": t.label_ja,
                "label_en": t.label_en,
                "level": t.level,
                "value": t.value_at(at),
                "window_minutes": int(t.window.total_seconds() // 60) if t.window else None,
            }
            for t in thresholds
        ],
    )


def _iso_or_none(iso, value: datetime | None) -> str | None:
    return iso(value) if value else None


def rain_state(station: Station, state: StationState | None) -> dict:
    if station.kind != StationKind.RAIN:
        return {}
    total = (state.accumulations or {}).get(RAIN_HOUR_KEY) if state and state.observed_at else None
    intensity = rain_intensity(total)
    return {"rain_hour_total": total, "rain_intensity": intensity.key if intensity else None}


def unconfirmed_level(state: StationState | None, thresholds: list[Threshold]) -> int | None:
    """The level a flagged latest reading would set (None when the reading is not flagged)."""
    if state is None or state.observed_at is None or state.quality == Observation.Quality.OK:
        return None
    from .services import level_for  # here, not above: an import statement per feature costs

    return level_for(state, thresholds)


def _lang() -> str:
    from django.utils import translation

    return (translation.get_language() or "ja")[:2]


def station_feature_collection(*, viewer: Viewer, kind: str | None = None, municipality: str | None = None) -> dict:
    now = timezone.now()
    return {
        "type": "FeatureCollection",
        "features": [
            station_feature(station, now=now)
            for station in station_list(viewer=viewer, kind=kind, municipality=municipality)
        ],
    }


def station_feature_collection_at(
    *, viewer: Viewer, at: datetime, kind: str | None = None, municipality: str | None = None
) -> dict:
    """The map as it stood at `at`: for each station the viewer may see *today*, its newest reading at
    or before `at`, the level that reading had under the threshold values in force at `at`, its trend
    and rain totals from the readings before it, and stale as judged at `at`. Same shape as
    `station_feature_collection`. Two queries (the visible stations' ids; `readings_up_to`): the
    stations themselves, thresholds and revisions come from a per-process copy of the catalog."""
    entries = _as_of_catalog(visible_stations(viewer=viewer, kind=kind, municipality=municipality))
    return {"type": "FeatureCollection", "features": _features_as_of(entries, at)}


def station_feature_collection_at_json(
    *, viewer: Viewer, at: datetime, kind: str | None = None, municipality: str | None = None
) -> bytes:
    """`station_feature_collection_at` as `GET /api/v1/stations?at=` writes it: the bytes the API's
    JSON renderer makes of that dict (tests/timeline/test_as_of_json.py holds them equal), without
    building it. Each station's fixed parts are JSON text kept with the process's as-of catalog
    (`FeatureJson`); per request only the properties that change with time are encoded, two small
    dicts a station, where building and encoding 2,000 whole features (2.3 MB) was most of the
    request's Python time (docs/performance.md, issue 14)."""
    entries = _as_of_catalog(visible_stations(viewer=viewer, kind=kind, municipality=municipality))
    readings = readings_up_to({entry.pk: entry.span for entry in entries}, at)
    lang, iso, encode, none = _lang(), LocalIsoFormatter(), _api_json_encode(), []
    features = ",".join(
        entry.json(at, lang).text(*_moving_as_of(entry, readings.get(entry.pk, none), at, iso=iso), encode)
        for entry in entries
    )
    return _api_json_text(f'{{"type":"FeatureCollection","features":[{features}]}}')


def features_as_of(stations: list[Station], at: datetime) -> list[dict]:
    """`station_feature` of each station as it stood at `at` (thresholds loaded; revisions are read
    for edited ones). One readings query. The stations are left as they were."""
    return _features_as_of([AsOfStation.of(station) for station in stations], at)


def _api_json_encode():
    """`encode` of a JSON encoder set as the API's renderer sets its own (compact, non-ASCII kept,
    NaN refused), for parts of an answer written ahead."""
    from rest_framework.renderers import JSONRenderer
    from rest_framework.compat import LONG_SEPARATORS, SHORT_SEPARATORS

    return JSONRenderer.encoder_class(
        ensure_ascii=JSONRenderer.ensure_ascii, allow_nan=not JSONRenderer.strict,
        separators=SHORT_SEPARATORS if JSONRenderer.compact else LONG_SEPARATORS,
    ).encode


def _api_json_text(text: str) -> bytes:
    """JSON text as the API's renderer finishes it: the two line separators JavaScript does not allow
    in strings escaped (JSONRenderer.render), UTF-8."""
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class FeatureJson(NamedTuple):
    """A station's feature as JSON text with two gaps, for the properties listed before its
    thresholds and those after them (`moving_properties`); the rest — geometry, names, thresholds,
    visibility — is written once, from the very dict `_feature` builds (with a marker in each gap),
    so the order and the encoding are the API's."""

    head: str
    middle: str
    tail: str

    # A key no feature has: a NUL is written as an escape, and only a key is followed by ':'.
    _GAPS = ("\x00readings", "\x00judged")

    @classmethod
    def of(cls, station: Station, fixed: "FixedParts", encode) -> "FeatureJson":
        readings, judged = (encode({gap: 0})[1:-1] for gap in cls._GAPS)
        head, rest = encode(_feature(station, fixed, {cls._GAPS[0]: 0}, {cls._GAPS[1]: 0})).split(readings)
        middle, tail = rest.split(judged)
        return cls(head, middle, tail)

    def text(self, readings_part: dict, judged_part: dict, encode) -> str:
        """The feature's JSON with these moving properties (each a non-empty dict)."""
        return f"{self.head}{encode(readings_part)[1:-1]}{self.middle}{encode(judged_part)[1:-1]}{self.tail}"


class AsOfStation:
    """A station ready to be judged at any moment: its thresholds (with revisions for edited ones),
    judge and as-of span. Read-only once made, so requests in many threads may share one (what it
    keeps — fixed parts per language and values in force — is built whole before it is stored, and
    alike by any thread)."""

    __slots__ = ("station", "pk", "thresholds", "judge", "span", "_fixed", "_json")

    def __init__(self, station: Station, thresholds: list[Threshold]):
        self.station = station
        self.pk = station.pk
        self.thresholds = thresholds
        self.judge = ReadingJudge(station, thresholds)
        self.span = max([TREND_LOOKBACK, *self.judge.windows])
        self._fixed: dict[tuple, FixedParts] = {}
        self._json: dict[tuple, FeatureJson] = {}

    def fixed(self, at: datetime, lang: str) -> FixedParts:
        """The feature's fixed parts at `at`, built once per language and, for a station whose
        thresholds were edited, per set of values in force (the thresholds are listed with those)."""
        key = self._key(at, lang)
        kept = self._fixed.get(key)
        if kept is None:
            kept = self._fixed[key] = fixed_parts(self.station, self.thresholds, at=at, lang=lang)
        return kept

    def json(self, at: datetime, lang: str) -> FeatureJson:
        """`fixed` as JSON text, kept as `fixed` is."""
        key = self._key(at, lang)
        kept = self._json.get(key)
        if kept is None:
            kept = self._json[key] = FeatureJson.of(self.station, self.fixed(at, lang), _api_json_encode())
        return kept

    def _key(self, at: datetime, lang: str) -> tuple:
        # The values in force at `at` are all of `fixed_parts` that depends on the moment: a few
        # revision periods per edited station, not one copy per moment asked for.
        if not self.judge.has_edits:
            return (lang,)
        return (lang, *(t.value_at(at) for t in self.thresholds))

    @classmethod
    def of(cls, station: Station) -> "AsOfStation":
        return cls(station, list(station.thresholds.all()))


_as_of_lock = threading.Lock()
_as_of_cache: tuple[int | None, dict[int, AsOfStation]] = (None, {})


def _as_of_catalog(stations: QuerySet[Station]) -> list[AsOfStation]:
    """These stations (in their order) from the process's copy of every active station, reloaded
    when the catalog stamp changes (database triggers change it on any write to stations,
    thresholds or revisions: sensors.catalog), when a station is missing from it, or when a
    station's town slug differs from the copy's (a town row is not under the stamp's triggers; the
    slugs come with the ids, in the same query). What the copy keeps per station (its fixed parts,
    as dicts and as JSON) goes with it."""
    global _as_of_cache
    from .catalog import current_stamp

    wanted = list(stations.values_list("pk", "municipality__slug"))
    stamp = current_stamp()
    cached_stamp, loaded = _as_of_cache
    if stamp is None or stamp != cached_stamp or any(
        pk not in loaded or loaded[pk].station.municipality.slug != slug for pk, slug in wanted
    ):
        with _as_of_lock:
            stations = list(
                Station.objects.filter(is_active=True).select_related("municipality").prefetch_related("thresholds")
            )
            edited = [t for station in stations for t in station.thresholds.all() if t.valid_from is not None]
            prefetch_related_objects(edited, "revisions")
            loaded = {station.pk: AsOfStation.of(station) for station in stations}
            _as_of_cache = (stamp, loaded) if stamp is not None else (None, {})
    return [loaded[pk] for pk, _ in wanted if pk in loaded]


def _features_as_of(entries: list[AsOfStation], at: datetime) -> list[dict]:
    readings = readings_up_to({entry.pk: entry.span for entry in entries}, at)
    lang, iso, none = _lang(), LocalIsoFormatter(), []
    return [_feature_as_of(entry, readings.get(entry.pk, none), at, lang=lang, iso=iso) for entry in entries]


def _feature_as_of(entry: AsOfStation, rows: list[tuple[datetime, float, str]], at: datetime, *, lang, iso) -> dict:
    """One station's feature at `at` from its readings up to its newest at or before `at` (with
    `entry.span` of history before that one), oldest first."""
    return _feature(entry.station, entry.fixed(at, lang), *_moving_as_of(entry, rows, at, iso=iso))


def _moving_as_of(entry: AsOfStation, rows: list[tuple[datetime, float, str]], at: datetime, *, iso) -> tuple[dict, dict]:
    """`moving_properties` of one station at `at`, from rows as `_feature_as_of` takes them."""
    state = _state_as_of(entry, rows, at)
    if not state.observed_at:
        trend = None
    elif entry.span == TREND_LOOKBACK:  # the rows are the trend's look-back already
        trend = reading_trend(entry.station.kind, rows)
    else:
        since = state.observed_at - TREND_LOOKBACK
        trend = reading_trend(entry.station.kind, [row for row in rows if since < row[0]])
    return moving_properties(entry.station, state, entry.thresholds, trend, now=at, iso=iso)


# What of a station's feature changes with time: one row of these per station and frame in
# `replay_frames` (the rest — place, names, thresholds — the client has from the map it shows). The
# rain fields are null for the kinds whose features have none.
FRAME_FIELDS = (
    "value", "observed_at", "level", "quality", "unconfirmed_level", "trend", "stale", "stale_after",
    "rain_hour_total", "rain_intensity", "accumulations",
)
MAX_FRAMES = 121
MAX_FRAMES_SPAN = timedelta(hours=3)


def replay_frames(
    *, viewer: Viewer, since: datetime, step: timedelta, count: int, kind: str | None = None,
    municipality: str | None = None,
) -> dict:
    """The map at `count` moments since, since + step, …, compactly: per moment the `FRAME_FIELDS`
    of each station, as `station_feature_collection_at` says of that moment, the first moment every
    visible station, the next ones only those whose row changed since the moment before.

    Two queries whatever the number of stations and moments: the readings up to `since` (as for
    one as-of map), then those after it up to the last moment. A station's feature is rebuilt only
    when its newest reading changes (or, with edited thresholds, at every moment: a revision may
    change its level between readings); in between, only `stale` is judged again."""
    if not 1 <= count <= MAX_FRAMES or step <= timedelta(0) or step * (count - 1) > MAX_FRAMES_SPAN:
        raise ValueError("frames out of bounds")
    moments = [since + step * index for index in range(count)]
    entries = _as_of_catalog(visible_stations(viewer=viewer, kind=kind, municipality=municipality))
    before = readings_up_to({entry.station.pk: entry.span for entry in entries}, since)
    after = readings_in_ranges({entry.station.pk: (since, moments[-1]) for entry in entries})
    iso = LocalIsoFormatter()
    frames: list[dict] = [{"at": iso(moment), "stations": {}} for moment in moments]
    for entry in entries:
        station, code = entry.station, entry.station.code
        rows = before.get(station.pk, []) + after.get(station.pk, [])
        times = [row[0] for row in rows]
        recompute_always = entry.judge.has_edits
        previous_newest, previous_row, props = None, None, None
        for frame, moment in zip(frames, moments):
            newest = bisect_right(times, moment)
            if props is None or newest != previous_newest or recompute_always:
                first = bisect_right(times, times[newest - 1] - entry.span) if newest else 0
                readings_part, judged_part = _moving_as_of(entry, rows[first:newest], moment, iso=iso)
                props = {**readings_part, **judged_part}
                previous_newest = newest
                row = [props.get(name) for name in FRAME_FIELDS]
            else:
                row = list(previous_row)
                row[_STALE] = station_is_stale(station, now=moment, state=StaleProbe(rows[newest - 1][0] if newest else None))
            if row != previous_row:
                frame["stations"][code] = row
                previous_row = row
    return {"fields": list(FRAME_FIELDS), "step_seconds": step.total_seconds(), "frames": frames}


_STALE = FRAME_FIELDS.index("stale")


class StaleProbe(NamedTuple):
    """What `station_is_stale` reads of a state: when its newest reading was."""

    observed_at: datetime | None


def as_of_span(station: Station) -> timedelta:
    """How far before its newest reading a station's as-of state looks: the trend's windows and the
    longest rain window its thresholds total over."""
    return max([TREND_LOOKBACK, *(t.window for t in station.thresholds.all() if t.window)])


class PastState(NamedTuple):
    """What a station's latest state was at a past moment (the fields of StationState a feature reads)."""

    value: float | None = None
    observed_at: datetime | None = None
    quality: str = Observation.Quality.OK
    accumulations: dict = {}
    level: int | None = None


def _state_as_of(entry: AsOfStation, readings: list[tuple[datetime, float, str]], at: datetime) -> PastState:
    """The latest state the station had at `at`, rebuilt from the readings before it as ingestion
    builds it: a suspect newest reading is shown but the level stays the last good reading's."""
    if not readings:
        return PastState()
    judge = entry.judge
    newest = len(readings) - 1
    observed_at, value, quality = readings[newest]
    ok = Observation.Quality.OK
    good = newest if quality == ok else next((i for i in range(newest, -1, -1) if readings[i][2] == ok), newest)
    return PastState(value, observed_at, quality, judge.accumulations(readings, newest), judge.level(readings, good, at=at))


class ReadingJudge:
    """Judges one station's readings as ingestion did: rain totals ending at a reading and the level
    (`sensors.levels.level_for`) under the threshold values in force at a given time. Readings are
    (time, value, quality) tuples, oldest first, with `as_of_span` of history before the first one
    judged; the station's thresholds (with revisions for edited ones) must be loaded."""

    def __init__(self, station: Station, thresholds: list[Threshold] | None = None):
        self.thresholds = list(station.thresholds.all()) if thresholds is None else thresholds
        self.windows = sorted({t.window for t in self.thresholds if t.window})
        # Judging hundreds of thousands of readings (the report, the timeline): a station judged on
        # its value alone climbs a ladder of its current values for readings since its last edit.
        self._ladder = None if self.windows else value_ladder(self.thresholds)
        self._current_since = max((t.valid_from for t in self.thresholds if t.valid_from is not None), default=None)
        # Edited thresholds had other values before: the level of one reading may differ by moment.
        self.has_edits = self._current_since is not None

    def accumulations(self, readings: list[tuple[datetime, float, str]], index: int) -> dict[str, float]:
        if not self.windows:
            return {}
        observed_at = readings[index][0]
        first = bisect_right(readings, observed_at - self.windows[-1], key=lambda reading: reading[0])
        return window_totals([(t, v) for t, v, _ in readings[first : index + 1]], observed_at, self.windows)

    def level(self, readings: list[tuple[datetime, float, str]], index: int, *, at: datetime) -> int | None:
        if self._ladder is not None and (self._current_since is None or at >= self._current_since):
            return self._ladder(readings[index][1])
        measured = Measure(readings[index][1], self.accumulations(readings, index))
        return level_for(measured, self.thresholds, at=at)


# How far before `at` readings_up_to first looks for each station's newest reading (the partitions
# the lookup touches); a station silent that long is looked up again further back.
NEWEST_LOOKUP_RECENT = timedelta(days=1)


def readings_up_to(spans: dict[int, timedelta], at: datetime) -> dict[int, list[tuple[datetime, float, str]]]:
    """Per station, its newest reading at or before `at` and the readings in the span before that
    one, oldest first, in one query whatever the number of stations.

    PostgreSQL: a LATERAL lookup of each station's newest reading (a backward scan of the
    (station, observed_at) index, LIMIT 1) in the day before `at` — one monthly partition, two at
    the turn of a month — and only for a station with nothing that day, over the older partitions;
    then, LATERAL again so that it stays a parameterized scan of the same index rather than a hash
    join over the whole table, the span before it. SQLite: the same with a correlated MAX()."""
    rows: dict[int, list] = defaultdict(list)
    if not spans:
        return rows
    table = connection.ops.quote_name(Observation._meta.db_table)
    station_ids = sorted(spans)
    seconds = [spans[pk].total_seconds() for pk in station_ids]
    if connection.vendor == "postgresql":
        from .services import _TO_MICROS, from_micros_many

        # Times as integer microseconds: the driver's per-row timestamp parsing (Django's loader is
        # the pure-Python one) was a third of an as-of map's Python time. One row per station, its
        # readings as three arrays (parsed by the driver in C), where a row per reading cost a tuple
        # and an append each.
        sql = f"""
            SELECT s.station_id, o.times, o.vals, o.qualities
            FROM unnest(%s::bigint[], %s::float8[]) AS s(station_id, span_seconds)
            CROSS JOIN LATERAL (
                -- Unbounded, the lookup merged the newest index entry of every partition up to `at`
                -- (10 buffers a station on the 35-day bench table, 4 with the day's bound);
                -- COALESCE runs the second only when the first finds nothing.
                SELECT coalesce(
                    (SELECT max(l.observed_at) FROM {table} l
                     WHERE l.station_id = s.station_id AND l.observed_at <= %s AND l.observed_at > %s),
                    (SELECT max(l.observed_at) FROM {table} l
                     WHERE l.station_id = s.station_id AND l.observed_at <= %s)
                ) AS newest
                OFFSET 0  -- a fence: inlined into the span's scan below, the lookup ran twice
            ) AS last
            CROSS JOIN LATERAL (
                -- An aggregate, so never flattened into a join: it stays a parameterized scan of
                -- the (station, observed_at) index (as a join it was a hash join over the whole table).
                SELECT array_agg({_TO_MICROS.format("r.observed_at")} ORDER BY r.observed_at) AS times,
                       array_agg(r.value ORDER BY r.observed_at) AS vals,
                       array_agg(r.quality ORDER BY r.observed_at) AS qualities
                FROM {table} r
                WHERE r.station_id = s.station_id
                    AND r.observed_at > last.newest - s.span_seconds * interval '1 second'
                    AND r.observed_at <= last.newest
            ) AS o
            WHERE o.times IS NOT NULL"""
        recent = at - NEWEST_LOOKUP_RECENT
        with connection.cursor() as cursor:
            cursor.execute(sql, [pg_array(station_ids), pg_array(seconds), at, recent, recent])
            for station_id, times, values, qualities in cursor.fetchall():
                rows[station_id] = list(zip(from_micros_many(times), values, qualities))
        return rows
    # SQLite keeps times as text to the second by datetime(): one second of slack below, then the
    # exact bound in Python.
    document = json.dumps([[pk, span + 1] for pk, span in zip(station_ids, seconds)])
    sql = f"""
        SELECT o.station_id, o.observed_at, o.value, o.quality, last.newest
        FROM (
            SELECT json_extract(r.value, '$[0]') AS station_id, json_extract(r.value, '$[1]') AS span_seconds,
                (SELECT MAX(l.observed_at) FROM {table} l
                 WHERE l.station_id = json_extract(r.value, '$[0]') AND l.observed_at <= %s) AS newest
            FROM json_each(%s) AS r
        ) AS last
        JOIN {table} o ON o.station_id = last.station_id
            AND o.observed_at > datetime(last.newest, '-' || last.span_seconds || ' seconds')
            AND o.observed_at <= last.newest
        ORDER BY o.station_id, o.observed_at"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(at), document])
        for station_id, observed_at, value, quality, newest in cursor.fetchall():
            observed_at, newest = _sqlite_time(observed_at), _sqlite_time(newest)
            if observed_at > newest - spans[station_id]:
                rows[station_id].append((observed_at, value, quality))
    return rows


def observation_range(*, station: Station, since: datetime, until: datetime) -> QuerySet[Observation]:
    """Readings of an already visibility-checked station in [since, until], oldest first."""
    return (
        Observation.objects.filter(station=station, observed_at__gte=since, observed_at__lte=until)
        .order_by("observed_at")
        .only("observed_at", "value", "quality")
    )


def observation_history(
    *, station: Station, since: datetime, until: datetime, chunk_size: int = 2000
) -> Iterator[list[tuple[str, float, str]]]:
    """Readings of an already visibility-checked station in [since, until], oldest first, as chunks
    of (observed_at in local ISO 8601, value, quality) tuples.

    The history endpoint's fast path: the range query is compiled by the ORM and its rows are read
    as plain tuples through the cursor, without model instances or Django's per-row converters.
    The database hands times over as text (UTC), which `datetime.fromisoformat` reads far faster
    than the drivers' timestamp loaders, and one `LocalIsoFormatter` formats them.
    """
    queryset = (
        observation_range(station=station, since=since, until=until)
        .annotate(observed_text=Cast("observed_at", output_field=TextField()))
        .values_list("observed_text", "value", "quality")
    )
    sql, params = queryset.query.sql_with_params()
    to_local = LocalIsoFormatter()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield to_local.rows(rows)


# The history rows written by PostgreSQL itself, in the bytes `observation_history` + the endpoint's
# renderers give (tests/sensors/test_history_output.py holds them to it), so no Python runs per row.
# A value as Python's repr. Between 1e-4 and 1e15 PostgreSQL's float8out (the shortest round-trip
# digits, extra_float_digits 1, the default) writes repr's digits in repr's plain notation: only whole
# numbers need ".0". Outside that range both switch to exponent notation below 1e-4 and from 1e16, but
# PostgreSQL already at 1e15, so [1e15, 1e16) goes through numeric, whose text of a decimal is exact;
# zero keeps its sign. A value that is not finite gives NULL (the JSON path refuses it; see below).
_HISTORY_VALUE_SQL = """CASE
    WHEN abs(o.value) >= 1e-4::float8 AND abs(o.value) < 1e15::float8
        THEN CASE WHEN o.value = trunc(o.value) THEN o.value::text || '.0' ELSE o.value::text END
    WHEN NOT (o.value > '-Infinity'::float8 AND o.value < 'Infinity'::float8) THEN NULL
    WHEN o.value <> 0 AND (abs(o.value) < 1e-4::float8 OR abs(o.value) >= 1e16::float8) THEN o.value::text
    WHEN o.value = 0 THEN CASE WHEN o.value::text = '-0' THEN '-0.0' ELSE '0.0' END
    WHEN o.value = trunc(o.value) THEN o.value::text::numeric::text || '.0'
    ELSE o.value::text::numeric::text END"""
# The local time as Python's isoformat. In DateStyle ISO (PostgreSQL's default) the text of a
# `timestamp` is that text with a space for the "T" when it has no fractional seconds; to_char, three
# times slower, writes the others, and every time on a connection with another DateStyle.
_HISTORY_TIME_SQL = """concat(to_char(o.local, 'YYYY-MM-DD"T"HH24:MI:SS'), NULLIF(to_char(o.local, '.US'), '.000000'), %(suffix)s)"""
_HISTORY_TIME_ISO_SQL = f"""CASE WHEN date_trunc('second', o.local) = o.local
    THEN replace(o.local::text, ' ', 'T') || %(suffix)s ELSE {_HISTORY_TIME_SQL} END"""
# A quality code not of the model's list gives NULL (the Python path quotes and escapes it).
_HISTORY_QUALITY_SQL = "CASE WHEN o.quality = ANY(%(qualities)s) THEN o.quality END"
_HISTORY_ROW_SQL = {
    "json": """'{{"observed_at":"' || {time} || '","value":' || {value} || ',"quality":"' || {quality} || '"}}'""",
    "csv": """%(code)s || ',' || {time} || ',' || {value} || ',' || {quality} || E'\\r\\n'""",
}


def observation_history_text(*, station: Station, since: datetime, until: datetime, csv_code: str | None = None) -> str | None:
    """`observation_history`'s rows already rendered, as one text: the JSON objects joined by commas,
    or with `csv_code` (the station's CSV cell) the CSV lines. None where PostgreSQL cannot write
    them in those exact bytes: not PostgreSQL, the site's UTC offset changes within the window, a
    value that is not finite or a quality code not of the model's list (such a row comes back NULL).

    One text per row in the order of the (station, observed_at) index, joined here: `string_agg`
    with an ORDER BY sorted the 10,080 rows of a 7-day read again (PostgreSQL 15 does not see that
    its input is ordered), a third of the query's time."""
    if connection.vendor != "postgresql":
        return None
    offset = _constant_utc_offset(since, until)
    if offset is None:
        return None
    output = "json" if csv_code is None else "csv"
    zone_aware = (datetime(2000, 1, 1) + offset).replace(tzinfo=dt_timezone(offset))
    suffix = zone_aware.isoformat()[len(zone_aware.replace(tzinfo=None).isoformat()):]
    params = {
        "suffix": suffix, "code": csv_code, "qualities": list(Observation.Quality.values), "offset": offset,
        "station": station.pk, "since": since, "until": until,
    }
    with connection.cursor() as cursor:
        iso_dates = (cursor.connection.info.parameter_status("DateStyle") or "").startswith("ISO")
        row = _HISTORY_ROW_SQL[output].format(
            time=_HISTORY_TIME_ISO_SQL if iso_dates else _HISTORY_TIME_SQL,
            value=_HISTORY_VALUE_SQL, quality=_HISTORY_QUALITY_SQL,
        )
        cursor.execute(
            f"""SELECT {row}
                FROM (SELECT observed_at, (observed_at AT TIME ZONE 'UTC') + %(offset)s AS local, value, quality
                      FROM {connection.ops.quote_name(Observation._meta.db_table)}
                      WHERE station_id = %(station)s AND observed_at >= %(since)s AND observed_at <= %(until)s) AS o
                ORDER BY o.observed_at""",
            params,
        )
        rows = [text for (text,) in cursor.fetchall()]
    if None in rows:
        return None
    return ("," if output == "json" else "").join(rows)


def _constant_utc_offset(since: datetime, until: datetime) -> timedelta | None:
    """The site's UTC offset throughout [since, until], or None when it changes (probed every
    LocalIsoFormatter.PROBE: no zone changes its offset and back within it)."""
    zone = timezone.get_current_timezone()
    offsets = {until.astimezone(zone).utcoffset()}
    at = since
    while at < until and len(offsets) == 1:
        offsets.add(at.astimezone(zone).utcoffset())
        at += LocalIsoFormatter.PROBE
    return offsets.pop() if len(offsets) == 1 else None


def station_audiences(station_ids) -> dict[int, tuple[str, frozenset[int]]]:
    """Who may see each station: (visibility, towns with access). For public and region stations the
    town set is just the owner; for private and shared ones it is exactly the towns that may see it;
    for a retired station nobody (private, no town).
    A fixed number of queries however many stations; used to route live messages, not to answer a viewer."""
    rows = Station.objects.filter(pk__in=list(station_ids)).values_list("pk", "visibility", "municipality_id", "is_active")
    # A retired station has no audience: everyone who saw it is told it is withdrawn.
    retired = {pk for pk, _, _, is_active in rows if not is_active}
    stations = {pk: visibility for pk, visibility, _, _ in rows}
    towns: dict[int, set[int]] = {pk: {owner} for pk, _, owner, _ in rows}
    shared = [pk for pk, visibility in stations.items() if visibility == Visibility.SHARED]
    if shared:
        active = SharingGrant.objects.active()
        for station_id, grantee_id in active.filter(station_id__in=shared).values_list("station_id", "grantee_id"):
            towns[station_id].add(grantee_id)
        memberships = StationGroup.stations.through.objects.filter(station_id__in=shared)
        grantees_by_group: dict[int, set[int]] = {}
        for group_id, grantee_id in active.filter(group__isnull=False).filter(
            group_id__in=memberships.values("stationgroup_id")
        ).values_list("group_id", "grantee_id"):
            grantees_by_group.setdefault(group_id, set()).add(grantee_id)
        for station_id, group_id in memberships.values_list("station_id", "stationgroup_id"):
            towns[station_id] |= grantees_by_group.get(group_id, set())
    return {
        pk: (Visibility.PRIVATE, frozenset()) if pk in retired else (stations[pk], frozenset(towns[pk])) for pk in stations
    }


def sharing_grants_of(*, municipality_id: int) -> QuerySet[SharingGrant]:
    """Grants a town has given (active first), for its admin's sharing page."""
    return (
        SharingGrant.objects.filter(grantor_id=municipality_id)
        .select_related("station", "group", "grantee", "granted_by", "withdrawn_by")
        .order_by("withdrawn_at", "-granted_at")
    )


def readings_in_ranges(
    ranges: dict[int, tuple[datetime, datetime]],
) -> dict[int, list[tuple[datetime, float, str]]]:
    """Readings in (start, end] for every station, in one query whatever the number of stations: the
    ranges go in as arrays (PostgreSQL `unnest`) or one JSON document (SQLite `json_each`) and are
    joined to the (station, observed_at) index, instead of an OR with a term per station.
    (Every session plans without JIT, config.settings: these thousands of short index scans are
    estimated far past jit_above_cost and compiling them saved nothing.)"""
    rows: dict[int, list] = defaultdict(list)
    if not ranges:
        return rows
    table = connection.ops.quote_name(Observation._meta.db_table)
    station_ids = sorted(ranges)
    if connection.vendor == "postgresql":
        from .services import _TO_MICROS, from_micros

        sql = f"""
            SELECT o.station_id, {_TO_MICROS.format("o.observed_at")}, o.value, o.quality
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS r(station_id, start_at, end_at)
            JOIN {table} o ON o.station_id = r.station_id AND o.observed_at > r.start_at AND o.observed_at <= r.end_at"""
        params = [
            pg_array(station_ids), pg_array([ranges[pk][0] for pk in station_ids]),
            pg_array([ranges[pk][1] for pk in station_ids]),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for station_id, micros, value, quality in cursor.fetchall():
                rows[station_id].append((from_micros(micros), value, quality))
        # Oldest first, sorted here: the rows come station by station, each already (nearly) in
        # order from its index scan, which Python's sort passes through in one comparison a row;
        # an ORDER BY made PostgreSQL sort a report's 300k rows on disk (EXPLAIN ANALYZE: a quarter
        # of the query's time). A station's times are unique (the table's key), so its rows compare
        # by time alone.
        for series in rows.values():
            series.sort()
        return rows
    adapt = connection.ops.adapt_datetimefield_value
    document = json.dumps([[pk, adapt(ranges[pk][0]), adapt(ranges[pk][1])] for pk in station_ids])
    sql = f"""
        SELECT o.station_id, o.observed_at, o.value, o.quality
        FROM json_each(%s) AS r
        JOIN {table} o ON o.station_id = json_extract(r.value, '$[0]')
            AND o.observed_at > json_extract(r.value, '$[1]') AND o.observed_at <= json_extract(r.value, '$[2]')
        ORDER BY o.station_id, o.observed_at"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        for station_id, observed_at, value, quality in cursor.fetchall():
            rows[station_id].append((_sqlite_time(observed_at), value, quality))
    return rows


def readings_in_ranges_micros(ranges: dict[int, tuple[datetime, datetime]]) -> dict[int, tuple[list, list, list]]:
    """As `readings_in_ranges`, for arithmetic: per station (times in integer microseconds since the
    epoch, values, whether each reading is quality-flagged), oldest first. PostgreSQL computes the
    microseconds, so no timestamp is parsed in Python (that parsing was most of the query's cost)."""
    series: dict[int, tuple[list, list, list]] = {}
    if not ranges:
        return series
    if connection.vendor != "postgresql":
        epoch = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
        for pk, rows in readings_in_ranges(ranges).items():
            series[pk] = (
                [(at - epoch) // timedelta(microseconds=1) for at, _, _ in rows],
                [value for _, value, _ in rows],
                [quality != Observation.Quality.OK for _, _, quality in rows],
            )
        return series
    table = connection.ops.quote_name(Observation._meta.db_table)
    station_ids = sorted(ranges)
    # One row per station with its readings as three arrays: the driver parses an array in C, where
    # a row per reading cost a Python tuple and three appends each.
    sql = f"""
        SELECT r.station_id, h.micros, h.vals, h.suspect
        FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS r(station_id, start_at, end_at)
        CROSS JOIN LATERAL (
            SELECT array_agg({TO_MICROS_SQL.format("o.observed_at")} ORDER BY o.observed_at) AS micros,
                   array_agg(o.value ORDER BY o.observed_at) AS vals,
                   array_agg(o.quality <> %s ORDER BY o.observed_at) AS suspect
            FROM {table} o
            WHERE o.station_id = r.station_id AND o.observed_at > r.start_at AND o.observed_at <= r.end_at
        ) h
        WHERE h.micros IS NOT NULL"""
    params = [
        pg_array(station_ids), pg_array([ranges[pk][0] for pk in station_ids]),
        pg_array([ranges[pk][1] for pk in station_ids]), str(Observation.Quality.OK),
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for station_id, times, values, flags in cursor.fetchall():
            series[station_id] = (times, values, flags)
    return series


def _sqlite_time(raw) -> datetime:
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=dt_timezone.utc)
    return datetime.fromisoformat(raw).replace(tzinfo=dt_timezone.utc)


# --- the MQTT consumer's status --------------------------------------------------------------------
# Kept in the cache (Redis in production, so every process sees the consumer's; per process in the
# embedded default) because the consumer is its own process and the health endpoint is the web server's.
MQTT_STATUS_KEY = "mqtt-status:{client_id}"


def mqtt_status(*, client_id: str | None = None) -> dict:
    """What an operator needs about the MQTT consumer with this client id (default MQTT_CLIENT_ID):

    - `connected_at`: the last time it connected to the broker (ISO 8601, UTC), or None;
    - `sessions_lost`: how often the broker had no session for it on a reconnect (`session present:
      False` after it had one): QoS 1 readings queued for it while it was away may be gone;
    - `last_session_lost_at`: when that last happened, or None.
    """
    stored = cache.get(MQTT_STATUS_KEY.format(client_id=client_id or settings.MQTT_CLIENT_ID)) or {}
    return {
        "connected_at": stored.get("connected_at"),
        "sessions_lost": stored.get("sessions_lost", 0),
        "last_session_lost_at": stored.get("last_session_lost_at"),
    }


# --- tide gauges: the astronomical baseline (sensors.tide) ------------------------------------------


def tide_harmonics_of(station: Station):
    """The gauge's harmonic constants as sensors.tide.Harmonics, or None when it has none."""
    row = TideHarmonics.objects.filter(station=station).first() if station.kind == StationKind.TIDE else None
    if row is None:
        return None
    try:
        return harmonics_from_document(
            {"mean_level": row.mean_level, "constituents": row.constituents}, epoch=row.epoch
        )
    except TideError:
        return None  # stored before a check tightened: no baseline rather than a wrong one


def tide_anomaly_series(*, station: Station, since: datetime, until: datetime) -> dict:
    """An already visibility-checked tide gauge's readings in [since, until] with the astronomical
    tide and the anomaly (observed − predicted) beside each: {"harmonics", "series": [...]}."""
    harmonics = tide_harmonics_of(station)
    rows = list(observation_range(station=station, since=since, until=until).values_list("observed_at", "value"))
    predicted = tide_predict(harmonics, [at for at, _ in rows]) if harmonics and rows else [None] * len(rows)
    series = [
        {
            "observed_at": local_iso(at),
            "observed": value,
            "predicted": None if expected is None else round(expected, 3),
            "anomaly": None if expected is None else round(value - expected, 3),
        }
        for (at, value), expected in zip(rows, predicted)
    ]
    return {"harmonics": harmonics.as_document() if harmonics else None, "series": series}
