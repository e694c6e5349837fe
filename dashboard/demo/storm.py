"""The storm simulator: feeds the demo weather (weather.py) through the basin model (hydrology.py)
to the platform, as the demo stations' gateways would.

Every reading carries the time it represents. On start the simulator backfills, with backdated
readings, everything from where each station's data ends (at the earliest the anchor, where
`seed_demo`'s history ends and the current storm begins) up to the last 10-minute mark; then it
sends one reading per station every 10 minutes of real time, as the stations' expected interval
says. Readings go through `observation_ingest` in-process or, like a real gateway, through the HTTP
API of a running server.

Two faults are scripted into the current storm, for the stale-sensor and data-quality features:
- SILENT_GAUGE (KWS-R07, 新田, core city) sends nothing from SILENT_FROM after the storm's start
  until the storm has passed (SHOW_LENGTH), as if washed out: stale by the time the demo opens.
- SPIKE_GAUGE (KWS-R09, 潮見橋, coast) reads SPIKE_JUMP_M too high once, in the last backfilled
  reading of a simulator run that starts during the current storm: the map opens with it flagged,
  and the next reading, 10 minutes later at most, withdraws it.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from sensors.models import (
    PHYSICAL_LIMITS,
    Observation,
    Station,
    StationKind,
    StationState,
)
from sensors.services import observation_ingest
from tenancy.models import Municipality
from tenancy.services import ingest_token_create, ingest_token_revoke

from . import region
from .hydrology import STEP, Snapshot, grid_floor
from .weather import SHOW_LEAD, Weather, basin_from_anchor

SILENT_GAUGE = "KWS-R07"
SILENT_FROM = SHOW_LEAD - timedelta(minutes=20)  # last reading 30 minutes before the demo opens
SPIKE_GAUGE = "KWS-R09"
SPIKE_JUMP_M = 4.0
# Older seeded history than this is not caught up on: seed the demo again instead.
MAX_CATCH_UP = timedelta(days=7)


@dataclass(frozen=True)
class Script:
    """The faults of one simulator run on top of the physics."""

    weather: Weather
    spike_at: datetime | None

    def reading(self, code: str, at: datetime, value: float | None) -> float | None:
        """What the station sends at `at`, given what the basin model says it measures."""
        weather = self.weather
        if code == SILENT_GAUGE and weather.anchor + SILENT_FROM <= at < weather.show_end:
            return None
        if value is not None and code == SPIKE_GAUGE and at == self.spike_at:
            highest = PHYSICAL_LIMITS[StationKind.RIVER][1]
            return round(min(value + SPIKE_JUMP_M, highest), 2)
        return value

    @classmethod
    def for_run(cls, weather: Weather, started_at: datetime) -> Script:
        last_backfilled = grid_floor(started_at)
        during_storm = weather.anchor < last_backfilled < weather.show_end
        return cls(weather=weather, spike_at=last_backfilled if during_storm else None)


# --- the simulator ------------------------------------------------------------------------------

HTTP_TIMEOUT_SECONDS = 10
MAX_PENDING_PER_TOWN = 20_000  # readings kept for re-sending while the server is unreachable
POST_BATCH = 5000  # readings per POST, below the API's INGEST_MAX_BATCH (10,000 by default)
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
        queue = self.pending[slug] + [self._as_json(item) for item in items]
        self.pending[slug] = []
        result = BatchResult()
        for start in range(0, len(queue), POST_BATCH):
            batch = queue[start : start + POST_BATCH]
            try:
                reply = self._post(slug, batch)
            except _Retry as problem:
                self._keep(slug, queue[start:])
                self.warn(f"{problem}; {len(self.pending[slug])} reading(s) kept for the next tick")
                result.failed = True
                return result
            except _GiveUp as problem:
                self.warn(f"{problem}; {len(batch)} reading(s) dropped")
                result.failed = True
                continue
            result.accepted += reply["accepted"]
            result.duplicates += reply["duplicates"]
            result.rejected += [_describe_rejection(batch, rejection) for rejection in reply["rejected"]]
        return result

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


def _anchor(stations: dict[str, Station], now: datetime) -> datetime:
    """Where the seeded history ends (the current storm's start); without history, SHOW_LEAD ago."""
    latest = [
        observed_at
        for station in stations.values()
        if station.expected_interval is not None
        for observed_at in Observation.objects.filter(station=station, source=Observation.Source.SEED)
        .order_by("-observed_at")
        .values_list("observed_at", flat=True)[:1]
    ]
    return grid_floor(max(latest)) if latest else grid_floor(now) - SHOW_LEAD


def _resume_points(stations: dict[str, Station], anchor: datetime) -> dict[str, datetime]:
    """Per station, the time after which it still has readings to send: its newest stored reading,
    or the anchor when that is older (a station never goes back over history it already has)."""
    newest = dict(
        StationState.objects.filter(station__in=stations.values(), observed_at__isnull=False).values_list(
            "station__code", "observed_at"
        )
    )
    return {code: max(newest.get(code, anchor), anchor) for code in stations}


def storm_readings(
    snapshots: Iterable[Snapshot], stations: dict[str, Station], script: Script, resume: dict[str, datetime]
) -> dict[str, list[dict]]:
    """The readings in these snapshots that the stations send and have not sent, grouped by the slug
    of the town that owns each station (a token may write only its own town's stations)."""
    by_town: dict[str, list[dict]] = {}
    for snapshot in snapshots:
        for code, station in stations.items():
            if snapshot.at <= resume[code]:
                continue
            value = script.reading(code, snapshot.at, snapshot.values[code])
            if value is not None:
                by_town.setdefault(station.municipality.slug, []).append(
                    {"station": code, "observed_at": snapshot.at, "value": value}
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
    loop: bool = False,
    api_url: str | None = None,
    out: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> StormTotals:
    """Backfill up to now, then one reading per station every 10 minutes of real time: `steps`
    readings, or until the current storm has passed, or with `loop` for ever (storm after storm)."""
    if steps is not None and steps < 0:
        raise StormError("steps cannot be negative")
    stations = _demo_stations()
    towns = {station.municipality.slug: station.municipality for station in stations.values()}
    delivery = HttpDelivery(api_url, towns, warn=warn) if api_url else InProcessDelivery(towns)
    clock = WallClock()
    started_at = clock.now()
    weather = Weather(anchor=_anchor(stations, started_at))
    if weather.anchor < started_at - MAX_CATCH_UP:
        raise StormError(
            f"The demo's seeded history ends at {timezone.localtime(weather.anchor):%Y-%m-%d %H:%M}, more than "
            f"{MAX_CATCH_UP.days} days ago: run `manage.py seed_demo` again to start a fresh storm."
        )
    script = Script.for_run(weather, started_at)
    resume = _resume_points(stations, weather.anchor)
    run = basin_from_anchor(weather)
    for _ in run.run_until(min(resume.values())):
        pass  # on to where the stored readings end (an earlier run may have sent some)
    totals = StormTotals()
    out(
        f"Storm over {region.BASIN_NAME_EN}: the current storm began at "
        f"{timezone.localtime(weather.anchor):%Y-%m-%d %H:%M}; readings every {STEP.seconds // 60} minutes, "
        f"{'via ' + delivery.endpoint if api_url else 'in-process'}"
        + (", storm after storm until interrupted" if loop else "")
    )
    try:
        delivery.open()
        backfill = list(run.run_until(grid_floor(started_at)))
        _deliver(delivery, storm_readings(backfill, stations, script, resume), totals, stations, out, "backfilled up to")
        sent = 0
        while loop or (sent < steps if steps is not None else run.at < weather.show_end):
            due = run.at + STEP
            while clock.now() < due:
                clock.sleep(min((due - clock.now()).total_seconds(), 60.0))
            snapshots = list(run.run_until(grid_floor(clock.now())))
            if not loop and steps is not None:
                snapshots = snapshots[: steps - sent]
            sent += len(snapshots)
            _deliver(delivery, storm_readings(snapshots, stations, script, resume), totals, stations, out, "reading at")
    finally:
        delivery.close()
    out(
        f"Storm done: {totals.sent} reading(s) sent, {totals.accepted} accepted, "
        f"{totals.duplicates} duplicate(s), {totals.rejected} rejected, {totals.failed_posts} failed delivery(ies)."
    )
    return totals


def _deliver(delivery, readings: dict[str, list[dict]], totals: StormTotals, stations, out, what: str) -> None:
    combined = BatchResult()
    for slug, items in readings.items():
        result = delivery.send(slug, items)
        totals.add(result, len(items))
        combined.accepted += result.accepted
        combined.duplicates += result.duplicates
        combined.rejected += result.rejected
        combined.failed = combined.failed or result.failed
    totals.ticks += 1
    newest = max((item["observed_at"] for items in readings.values() for item in items), default=None)
    when = f"{timezone.localtime(newest):%m-%d %H:%M}" if newest else "(nothing new)"
    failed = " (delivery failed, see stderr)" if combined.failed else ""
    out(
        f"{what} {when}: {sum(len(items) for items in readings.values())} sent, accepted {combined.accepted}, "
        f"duplicates {combined.duplicates}, rejected {len(combined.rejected)}"
        f"{_rejections_shown(combined.rejected)}{failed} | levels {_level_summary(stations)}"
    )


def _rejections_shown(rejections: list[str], shown: int = 3) -> str:
    if not rejections:
        return ""
    more = f"; +{len(rejections) - shown} more" if len(rejections) > shown else ""
    return " (" + "; ".join(rejections[:shown]) + more + ")"
