"""The demo storm over the FICTIONAL Kawasemi basin, and the simulator that feeds it to the platform.

The model (first half) is pure: a station's value is a deterministic function of the storm minute
and the value the station started from. A convective cell breaks over the hills first and drifts
towards the sea; the flood wave runs down each river, so a gauge peaks later the further it is
from the source; the dam and the ponds fill and then drain slowly.

Two faults are part of the script, for the stale-sensor and data-quality features:
- SILENT_GAUGE (KWS-R07, 新田, core city) sends nothing after storm minute SILENT_AFTER_MINUTE (150),
  while the river is still rising there: as if the gauge had been washed out.
- SPIKE_GAUGE (KWS-R09, 潮見橋, coast) sends one reading SPIKE_JUMP_M (4 m) too high, on the tick
  whose storm time covers SPIKE_MINUTE (100): a glitch, not water.

The simulator (second half) stamps every tick with the real current time, so nothing is ever in
the future, while storm time advances `minutes_per_tick` per tick. It delivers either in-process
through `observation_ingest` or, like a real gateway, through the HTTP API of a running server.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from django.utils import timezone

from sensors.models import PHYSICAL_LIMITS, Observation, Station, StationKind, StationState
from sensors.services import observation_ingest
from tenancy.models import Municipality
from tenancy.services import ingest_token_create, ingest_token_revoke

from . import region
from .region import StationSpec

# --- the storm model (pure) ---------------------------------------------------------------------

STORM_MINUTES = 360
DEFAULT_MINUTES_PER_TICK = 10

RAIN_PEAK_MINUTE_AT_HEAD = 60.0
RAIN_CELL_DRIFT_MINUTES = 40.0  # the cell reaches the coast this much later than the head of the basin
RAIN_BURST_SIGMA_MINUTES = 18.0
RAIN_RESOLUTION_MM = 0.5  # a tipping-bucket gauge counts half millimetres

RIVER_ONSET_MINUTE = 30.0  # the first runoff reaches the river sources
FLOOD_WAVE_MINUTES_PER_KM = 3.5  # about 17 km/h, a fast flood wave in a short, steep river
RIVER_TIME_TO_PEAK_MINUTES = 90.0
HYDROGRAPH_SHAPE = 3.0  # gamma unit hydrograph: steep rise, long recession

RESERVOIR_ONSET_MINUTE = 30.0
STORAGE_SHAPE = 2.0  # storage recedes slower than a river: releases are limited

# Continuity: a station starts the storm from its last stored value, and that head start (or lag)
# fades over this many minutes towards the region's calm value. The storm's own rise is added to
# the calm value, never to the start value, so a looping storm cannot ratchet levels upwards.
RETURN_TO_CALM_MINUTES = {StationKind.RIVER: 60.0, StationKind.RESERVOIR: 240.0}

SILENT_GAUGE = "KWS-R07"
SILENT_AFTER_MINUTE = 150
SPIKE_GAUGE = "KWS-R09"
SPIKE_MINUTE = 100
SPIKE_JUMP_M = 4.0

VALUE_DECIMALS = {StationKind.RIVER: 2, StationKind.RAIN: 1, StationKind.RESERVOIR: 1}


def storm_ticks(minutes_per_tick: int = DEFAULT_MINUTES_PER_TICK) -> int:
    """Ticks that cover the whole storm, recession included."""
    return math.ceil(STORM_MINUTES / minutes_per_tick)


def unit_hydrograph(minutes_since_onset: float, time_to_peak: float, shape: float) -> float:
    """Gamma-shaped response, 0 before the onset, 1 at the peak."""
    if minutes_since_onset <= 0:
        return 0.0
    ratio = minutes_since_onset / time_to_peak
    return ratio**shape * math.exp(shape * (1 - ratio))


def rain_peak_minute(spec: StationSpec) -> float:
    return RAIN_PEAK_MINUTE_AT_HEAD + RAIN_CELL_DRIFT_MINUTES * spec.u


def river_onset_minute(spec: StationSpec) -> float:
    return RIVER_ONSET_MINUTE + FLOOD_WAVE_MINUTES_PER_KM * spec.chainage_km


def river_peak_minute(spec: StationSpec) -> float:
    return river_onset_minute(spec) + RIVER_TIME_TO_PEAK_MINUTES


def reservoir_onset_minute(spec: StationSpec) -> float:
    return RESERVOIR_ONSET_MINUTE + RAIN_CELL_DRIFT_MINUTES * spec.u


def _rain_10min(spec: StationSpec, minute: float) -> float:
    offset = (minute - rain_peak_minute(spec)) / RAIN_BURST_SIGMA_MINUTES
    amount = spec.storm_response * math.exp(-0.5 * offset * offset)
    return round(amount / RAIN_RESOLUTION_MM) * RAIN_RESOLUTION_MM


def _carry_over(spec: StationSpec, minute: float, start_value: float | None) -> float:
    """What is left, at this minute, of the difference between the start value and the calm value."""
    if start_value is None:
        return 0.0
    return (start_value - spec.base) * math.exp(-minute / RETURN_TO_CALM_MINUTES[StationKind(spec.kind)])


def _river_stage(spec: StationSpec, minute: float, start_value: float | None) -> float:
    rise = spec.storm_response * unit_hydrograph(
        minute - river_onset_minute(spec), RIVER_TIME_TO_PEAK_MINUTES, HYDROGRAPH_SHAPE
    )
    return spec.base + _carry_over(spec, minute, start_value) + rise


def _storage(spec: StationSpec, minute: float, start_value: float | None) -> float:
    fill = spec.storm_response * unit_hydrograph(
        minute - reservoir_onset_minute(spec), spec.time_to_peak_min, STORAGE_SHAPE
    )
    return spec.base + _carry_over(spec, minute, start_value) + fill


def storm_value(spec: StationSpec, minute: float, *, start_value: float | None = None) -> float:
    """The station's true value at this storm minute (10-minute rainfall for rain gauges)."""
    kind = StationKind(spec.kind)
    if kind == StationKind.RAIN:
        value = _rain_10min(spec, minute)
    elif kind == StationKind.RIVER:
        value = _river_stage(spec, minute, start_value)
    else:
        value = _storage(spec, minute, start_value)
    return _within_limits(kind, value)


def _within_limits(kind: StationKind, value: float) -> float:
    low, high = PHYSICAL_LIMITS[kind]
    return round(min(max(value, low), high), VALUE_DECIMALS[kind])


def is_spike_tick(spec: StationSpec, minute: float, minutes_per_tick: int) -> bool:
    """The one tick whose storm time [minute, minute + step) covers SPIKE_MINUTE, so any step size hits it once."""
    return spec.code == SPIKE_GAUGE and minute <= SPIKE_MINUTE < minute + minutes_per_tick


def storm_reading(
    spec: StationSpec,
    minute: float,
    *,
    start_value: float | None = None,
    minutes_per_tick: int = DEFAULT_MINUTES_PER_TICK,
) -> float | None:
    """What the station sends at this storm minute, or None when it sends nothing."""
    if spec.code == SILENT_GAUGE and minute > SILENT_AFTER_MINUTE:
        return None
    value = storm_value(spec, minute, start_value=start_value)
    if spec.start_level is not None and value < spec.start_level:
        return None
    if is_spike_tick(spec, minute, minutes_per_tick):
        value = _within_limits(StationKind(spec.kind), value + SPIKE_JUMP_M)
    return value


# --- the simulator ------------------------------------------------------------------------------

HTTP_TIMEOUT_SECONDS = 10
MAX_PENDING_PER_TOWN = 2000  # readings kept for re-sending while the server is unreachable
RETRYABLE_HTTP_STATUS = {408, 429, 500, 502, 503, 504}


class StormError(Exception):
    """The storm cannot run (e.g. the demo region is not seeded)."""


class WallClock:
    """Real time. Tests swap in a fake so that ticks need no real sleeping."""

    def now(self) -> datetime:
        return timezone.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class BatchResult:
    """What became of one town's batch of readings."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    failed: bool = False


@dataclass
class StormTotals:
    ticks: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed_posts: int = 0

    def add(self, result: BatchResult, sent: int) -> None:
        self.sent += sent
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected += len(result.rejected)
        self.failed_posts += int(result.failed)


class InProcessDelivery:
    """Through `observation_ingest` in this process. In the embedded default the live map does not
    see these readings unless this *is* the server process (in-memory channel layer)."""

    def __init__(self, towns: dict[str, Municipality]):
        self.towns = towns

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, slug: str, items: list[dict]) -> BatchResult:
        report = observation_ingest(
            municipality=self.towns[slug], items=items, source=Observation.Source.SIMULATOR
        )
        return BatchResult(
            accepted=report.accepted,
            duplicates=report.duplicates,
            rejected=[f"{items[r['index']]['station']}: {r['error']}" for r in report.rejected],
        )


class HttpDelivery:
    """Like a town's sensor gateway: POST /api/v1/observations with that town's bearer token.

    One token per town, created on open and revoked on close. When the server is unreachable or
    busy, the readings are kept and sent again with the next tick (duplicates are harmless).
    """

    def __init__(self, api_url: str, towns: dict[str, Municipality], *, warn: Callable[[str], None]):
        self.endpoint = api_url.rstrip("/") + "/api/v1/observations"
        self.towns = towns
        self.warn = warn
        self.tokens: dict[str, tuple[object, str]] = {}
        self.pending: dict[str, list[dict]] = {slug: [] for slug in towns}

    def open(self) -> None:
        for slug, town in self.towns.items():
            self.tokens[slug] = ingest_token_create(municipality=town, label="storm simulator")

    def close(self) -> None:
        for token, _secret in self.tokens.values():
            ingest_token_revoke(token=token)
        self.tokens.clear()

    def send(self, slug: str, items: list[dict]) -> BatchResult:
        batch = self.pending[slug] + [self._as_json(item) for item in items]
        self.pending[slug] = []
        try:
            reply = self._post(slug, batch)
        except _Retry as problem:
            self._keep(slug, batch)
            self.warn(f"{problem}; {len(self.pending[slug])} reading(s) kept for the next tick")
            return BatchResult(failed=True)
        except _GiveUp as problem:
            self.warn(f"{problem}; {len(batch)} reading(s) dropped")
            return BatchResult(failed=True)
        return BatchResult(
            accepted=reply["accepted"],
            duplicates=reply["duplicates"],
            rejected=[_describe_rejection(batch, rejection) for rejection in reply["rejected"]],
        )

    def _keep(self, slug: str, batch: list[dict]) -> None:
        self.pending[slug] = batch[-MAX_PENDING_PER_TOWN:]

    @staticmethod
    def _as_json(item: dict) -> dict:
        return {**item, "observed_at": timezone.localtime(item["observed_at"]).isoformat()}

    def _post(self, slug: str, batch: list[dict]) -> dict:
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps({"observations": batch}).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.tokens[slug][1]}",
            },
        )
        where = f"POST {self.endpoint} for {slug}"
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode("utf-8", "replace").strip()
            message = f"{where} failed: HTTP {error.code} {error.reason}" + (f": {detail}" if detail else "")
            raise (_Retry if error.code in RETRYABLE_HTTP_STATUS else _GiveUp)(message) from None
        except urllib.error.URLError as error:
            raise _Retry(f"{where} failed: cannot reach the server ({error.reason})") from None
        except (OSError, http.client.HTTPException) as error:
            # Timeouts, resets and truncated replies: the server may be restarting.
            raise _Retry(f"{where} failed: {type(error).__name__} {error}".rstrip()) from None
        return _parse_reply(body, where)


class _Retry(Exception):
    pass


class _GiveUp(Exception):
    pass


def _parse_reply(body: bytes, where: str) -> dict:
    try:
        reply = json.loads(body)
    except ValueError:
        raise _GiveUp(f"{where}: the reply is not JSON: {body[:200]!r}") from None
    if not (
        isinstance(reply, dict)
        and isinstance(reply.get("accepted"), int)
        and isinstance(reply.get("duplicates"), int)
        and isinstance(reply.get("rejected"), list)
    ):
        raise _GiveUp(f"{where}: unexpected reply {str(reply)[:200]}")
    return reply


def _describe_rejection(batch: list[dict], rejection) -> str:
    if not isinstance(rejection, dict):
        return str(rejection)[:200]
    index = rejection.get("index")
    station = batch[index]["station"] if isinstance(index, int) and 0 <= index < len(batch) else f"item {index}"
    return f"{station}: {rejection.get('error')}"


def _demo_stations() -> dict[str, Station]:
    stations = {s.code: s for s in Station.objects.select_related("municipality").filter(code__in=region.STATIONS_BY_CODE)}
    missing = sorted(set(region.STATIONS_BY_CODE) - set(stations))
    if missing:
        raise StormError(
            f"The demo region is not seeded ({len(missing)} station(s) missing, e.g. {missing[0]}): "
            "run `manage.py seed_demo` first."
        )
    return stations


def _start_values(stations: dict[str, Station]) -> dict[str, float | None]:
    """Each station's last stored value, so the storm continues from where the data left off."""
    values = dict(
        StationState.objects.filter(station__in=stations.values()).values_list("station__code", "value")
    )
    return {code: values.get(code) for code in stations}


def _tick_stamp(clock, previous: datetime | None) -> datetime:
    """The current time in whole seconds, later than the previous tick's stamp.

    Two ticks within one second would carry the same time and the second would only produce
    duplicates, so a tick waits for the next second rather than stamping a time in the future.
    """
    stamp = clock.now().replace(microsecond=0)
    while previous is not None and stamp <= previous:
        clock.sleep(max((previous + timedelta(seconds=1) - clock.now()).total_seconds(), 0.001))
        stamp = clock.now().replace(microsecond=0)
    return stamp


def storm_tick_readings(
    stations: dict[str, Station],
    minute: float,
    *,
    stamp: datetime,
    start_values: dict[str, float | None],
    minutes_per_tick: int,
) -> dict[str, list[dict]]:
    """This tick's readings, grouped by the slug of the town that owns each station."""
    by_town: dict[str, list[dict]] = {}
    for code, station in sorted(stations.items()):
        value = storm_reading(
            region.station(code), minute, start_value=start_values.get(code), minutes_per_tick=minutes_per_tick
        )
        if value is not None:
            by_town.setdefault(station.municipality.slug, []).append(
                {"station": code, "observed_at": stamp, "value": value}
            )
    return by_town


def _level_summary(stations: dict[str, Station]) -> str:
    levels = Counter(
        StationState.objects.filter(station__in=stations.values()).values_list("level", flat=True)
    )
    without_state = len(stations) - sum(levels.values())
    no_data = without_state + levels.pop(None, 0)
    parts = [f"L{level} {count}" for level, count in sorted(levels.items())]
    if no_data:
        parts.append(f"no data {no_data}")
    return " · ".join(parts)


def storm_simulate(
    *,
    steps: int | None = None,
    minutes_per_tick: int = DEFAULT_MINUTES_PER_TICK,
    interval: float = 5.0,
    loop: bool = False,
    api_url: str | None = None,
    out: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> StormTotals:
    """Run the storm: `steps` ticks (default: the whole storm), again and again with `loop`.

    Storm time restarts at minute 0 on every loop, from the values the stations then hold.
    """
    if minutes_per_tick < 1:
        raise StormError("minutes per tick must be at least 1")
    if interval < 0:
        raise StormError("the interval cannot be negative")
    if steps is not None and steps < 1:
        raise StormError("steps must be at least 1")
    stations = _demo_stations()
    towns = {station.municipality.slug: station.municipality for station in stations.values()}
    delivery = HttpDelivery(api_url, towns, warn=warn) if api_url else InProcessDelivery(towns)
    ticks_per_storm = steps or storm_ticks(minutes_per_tick)
    clock = WallClock()
    totals = StormTotals()
    out(
        f"Storm over {region.BASIN_NAME_EN}: {ticks_per_storm} tick(s) of {minutes_per_tick} storm minute(s), "
        f"{interval:g} s apart, {'via ' + delivery.endpoint if api_url else 'in-process'}"
        + (", looping until interrupted" if loop else "")
    )
    stamp = None
    try:
        delivery.open()
        while True:
            start_values = _start_values(stations)
            for tick in range(ticks_per_storm):
                if totals.ticks:
                    clock.sleep(interval)
                stamp = _tick_stamp(clock, stamp)
                minute = tick * minutes_per_tick
                readings = storm_tick_readings(
                    stations, minute, stamp=stamp, start_values=start_values, minutes_per_tick=minutes_per_tick
                )
                result = _deliver_tick(delivery, readings, totals)
                out(_tick_line(tick + 1, ticks_per_storm, minute, stamp, result, stations))
            if not loop:
                break
    finally:
        delivery.close()
    out(
        f"Storm done: {totals.ticks} tick(s), {totals.sent} reading(s) sent, {totals.accepted} accepted, "
        f"{totals.duplicates} duplicate(s), {totals.rejected} rejected, {totals.failed_posts} failed delivery(ies)."
    )
    return totals


def _deliver_tick(delivery, readings: dict[str, list[dict]], totals: StormTotals) -> BatchResult:
    """One batch per town (a token may write only its own town's stations); the tick's combined result."""
    combined = BatchResult()
    for slug, items in readings.items():
        result = delivery.send(slug, items)
        totals.add(result, len(items))
        combined.accepted += result.accepted
        combined.duplicates += result.duplicates
        combined.rejected += result.rejected
        combined.failed = combined.failed or result.failed
    totals.ticks += 1
    return combined


def _tick_line(tick: int, ticks: int, minute: int, stamp: datetime, result: BatchResult, stations) -> str:
    hours, minutes = divmod(minute, 60)
    failed = " (delivery failed, see stderr)" if result.failed else ""
    return (
        f"storm +{hours:02d}:{minutes:02d} tick {tick}/{ticks} at {timezone.localtime(stamp):%H:%M:%S}: "
        f"accepted {result.accepted}, duplicates {result.duplicates}, rejected {len(result.rejected)}"
        f"{_rejections_shown(result.rejected)}{failed} | levels {_level_summary(stations)}"
    )


def _rejections_shown(rejections: list[str], shown: int = 3) -> str:
    if not rejections:
        return ""
    more = f"; +{len(rejections) - shown} more" if len(rejections) > shown else ""
    return " (" + "; ".join(rejections[:shown]) + more + ")"
