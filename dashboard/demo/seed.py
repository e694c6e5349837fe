"""Services that write the FICTIONAL demo region: towns, users, geography (with hazard zones and
shelters), stations, thresholds and a day of calm-weather history. Every function is idempotent:
run the seed as often as you like."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from geo.models import Basin, HazardZone, River, Shelter
from sensors.models import PHYSICAL_LIMITS, Observation, Station, StationKind, StationState, Threshold
from sensors.services import observation_ingest, sharing_grant, station_state_recompute
from tenancy.models import Membership, Municipality
from tenancy.services import membership_set

from . import region
from .region import StationSpec, ThresholdSpec

DEFAULT_PASSWORD = "mizumori-demo"
PLATFORM_ADMIN_USERNAME = "platform-admin"
TOWN_ROLES = (Membership.Role.ADMIN, Membership.Role.OPERATOR, Membership.Role.VIEWER)

HISTORY_HOURS = 24
HISTORY_STEP = timedelta(minutes=10)
# observation_ingest takes any batch size, but HTTP callers are capped at 10,000 (INGEST_MAX_BATCH);
# stay under that so a seed batch is never larger than what the platform accepts elsewhere.
INGEST_BATCH = 10_000

HISTORY_SEED = "mizumori-demo-history"
REGION_TIME = ZoneInfo("Asia/Tokyo")  # the basin is in Japan whatever TIME_ZONE the site displays
TIDE_PERIOD_HOURS = 12.42  # principal lunar semidiurnal tide (M2)
SHOWER_LOCAL_HOURS = (4.0, 5.5)  # a light shower before dawn, inside any 24-hour window


def username_for(slug: str, role: str) -> str:
    return f"{slug}-{role}"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str  # a Membership.Role, or "superuser"
    town: str | None


@dataclass
class SeedSummary:
    towns: list[Municipality] = field(default_factory=list)
    stations: dict[str, Station] = field(default_factory=dict)
    hazard_zones: list[HazardZone] = field(default_factory=list)
    shelters: list[Shelter] = field(default_factory=list)
    stations_retuned: int = 0
    logins: list[DemoLogin] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)


def demo_seed(*, password: str = DEFAULT_PASSWORD, now: datetime | None = None, history: bool = True) -> SeedSummary:
    """Create or refresh the whole demo region; `history` adds the last 24 hours of calm weather."""
    summary = SeedSummary()
    with transaction.atomic():
        towns = demo_towns_upsert()
        demo_geography_upsert()
        summary.hazard_zones = demo_hazard_zones_upsert(towns)
        summary.shelters = demo_shelters_upsert(towns, now=now or timezone.now())
        stations, retuned = demo_stations_upsert(towns)
        demo_sharing_upsert(stations, towns)
        summary.logins = demo_users_upsert(towns, password=password)
    summary.towns = list(towns.values())
    summary.stations = stations
    summary.stations_retuned = len(retuned)
    if history:
        demo_history_ingest(stations, now=now or timezone.now(), summary=summary)
    _recompute_states(stations[code] for code in retuned)
    return summary


def demo_sharing_upsert(stations: dict, towns: dict[str, Municipality]) -> None:
    """The demo's sharing grants; an existing active grant is kept as it is."""
    for code, grantee in region.SHARING:
        sharing_grant(station=stations[code], grantee=towns[grantee])


def demo_towns_upsert() -> dict[str, Municipality]:
    towns = {}
    for spec in region.TOWNS:
        towns[spec.slug], _ = Municipality.objects.update_or_create(
            slug=spec.slug,
            defaults={
                "code": spec.code,
                "name_ja": spec.name_ja,
                "name_en": spec.name_en,
                "boundary": region.town_boundary(spec.slug),
            },
        )
    return towns


def demo_geography_upsert() -> Basin:
    basin, _ = Basin.objects.update_or_create(
        name_en=region.BASIN_NAME_EN,
        defaults={"name_ja": region.BASIN_NAME_JA, "geometry": region.basin_boundary()},
    )
    for river in region.RIVERS:
        River.objects.update_or_create(
            name_en=river.name_en,
            defaults={"name_ja": river.name_ja, "basin": basin, "geometry": region.river_line(river.key)},
        )
    return basin


def demo_hazard_zones_upsert(towns: dict[str, Municipality]) -> list[HazardZone]:
    """The assumed inundation areas along the lower river, keyed by kind, town and Japanese name
    (the key geo imports use, so an imported real hazard map would update the same rows)."""
    zones = []
    for spec in region.HAZARD_ZONES:
        zone, _ = HazardZone.objects.update_or_create(
            kind=HazardZone.Kind.INUNDATION,
            municipality=towns[spec.town],
            name_ja=spec.name_ja,
            defaults={
                "name_en": spec.name_en,
                "depth_min_m": spec.depth_min_m,
                "depth_max_m": spec.depth_max_m,
                "geometry": spec.geometry,
                "source": region.HAZARD_SOURCE,
            },
        )
        zones.append(zone)
    return zones


def demo_shelters_upsert(towns: dict[str, Municipality], *, now: datetime) -> list[Shelter]:
    """The shelters, in the demo's starting state. A status that already matches is left alone
    (with its time), so seeding again changes nothing; one an operator changed is set back."""
    shelters = []
    for spec in region.SHELTERS:
        lon, lat = spec.lonlat
        shelter = Shelter.objects.filter(code=spec.code).first() or Shelter(code=spec.code)
        shelter.name_ja = spec.name_ja
        shelter.name_en = spec.name_en
        shelter.municipality = towns[spec.town]
        shelter.lon, shelter.lat = lon, lat
        shelter.address = spec.address
        shelter.capacity = spec.capacity
        if shelter.pk is None or shelter.status != spec.status:
            shelter.status = spec.status
            shelter.status_updated_at = None if spec.status == Shelter.Status.CLOSED else now
            shelter.status_updated_by = None
        shelter.save()
        shelters.append(shelter)
    return shelters


def demo_stations_upsert(towns: dict[str, Municipality]) -> tuple[dict[str, Station], set[str]]:
    """Stations and their thresholds; also returns the codes of existing stations whose thresholds changed."""
    stations: dict[str, Station] = {}
    retuned: set[str] = set()
    for spec in region.STATIONS:
        lon, lat = spec.lonlat
        station, created = Station.objects.update_or_create(
            code=spec.code,
            defaults={
                "name_ja": spec.name_ja,
                "name_en": spec.name_en,
                "kind": spec.kind,
                "municipality": towns[spec.town],
                "lon": lon,
                "lat": lat,
                "river_name": spec.river_name,
                "unit": spec.unit,
                "expected_interval": spec.expected_interval,
                "visibility": spec.visibility,
                "is_active": True,
            },
        )
        stations[spec.code] = station
        if demo_thresholds_set(station, spec.thresholds) and not created:
            retuned.add(spec.code)
    return stations, retuned


def _threshold_fields(spec: ThresholdSpec) -> dict:
    return {
        "label_ja": spec.label_ja,
        "label_en": spec.label_en,
        "level": spec.level,
        "value": spec.value,
        "window": spec.window,
    }


def demo_thresholds_set(station: Station, specs: Sequence[ThresholdSpec]) -> bool:
    """Make the station's thresholds exactly `specs`; True when anything had to change."""
    existing = {threshold.name: threshold for threshold in station.thresholds.all()}
    changed = False
    for spec in specs:
        wanted = _threshold_fields(spec)
        current = existing.pop(spec.name, None)
        if current is not None and all(getattr(current, key) == value for key, value in wanted.items()):
            continue
        Threshold.objects.update_or_create(station=station, name=spec.name, defaults=wanted)
        changed = True
    if existing:
        Threshold.objects.filter(pk__in=[threshold.pk for threshold in existing.values()]).delete()
        changed = True
    return changed


def demo_users_upsert(towns: dict[str, Municipality], *, password: str) -> list[DemoLogin]:
    """`<slug>-admin/-operator/-viewer` per town and the `platform-admin` superuser, all with `password`."""
    _user_upsert(PLATFORM_ADMIN_USERNAME, password, superuser=True)
    logins = [DemoLogin(PLATFORM_ADMIN_USERNAME, "superuser", None)]
    for slug, town in towns.items():
        for role in TOWN_ROLES:
            user = _user_upsert(username_for(slug, role), password)
            membership_set(user=user, municipality=town, role=role)
            logins.append(DemoLogin(user.username, role, slug))
    return logins


def _user_upsert(username: str, password: str, *, superuser: bool = False):
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.email = f"{username}@example.invalid"
    user.is_active = True
    user.is_staff = superuser
    user.is_superuser = superuser
    # Always, even for an existing user: the seed promises that the printed password works.
    user.set_password(password)
    user.save()
    return user


# --- calm-weather history -----------------------------------------------------------------------


def history_times(now: datetime, *, hours: int = HISTORY_HOURS, step: timedelta = HISTORY_STEP) -> list[datetime]:
    """Reading times on the step grid, the newest at or before `now`, covering `hours`."""
    step_seconds = int(step.total_seconds())
    newest = datetime.fromtimestamp(int(now.timestamp()) // step_seconds * step_seconds, tz=dt_timezone.utc)
    count = int(timedelta(hours=hours) / step)
    return [newest - step * back for back in range(count - 1, -1, -1)]


def calm_value(spec: StationSpec, at: datetime) -> float:
    """The station's value at `at` in calm weather: deterministic for the same station and time."""
    rng = random.Random(f"{HISTORY_SEED}:{spec.code}:{int(at.timestamp())}")
    kind = StationKind(spec.kind)
    if kind == StationKind.RIVER:
        value = spec.base + _diurnal(at) + _tide(spec, at) + rng.uniform(-0.01, 0.01)
        decimals = 2
    elif kind == StationKind.RAIN:
        value = _shower(spec, at, rng)
        decimals = 1
    else:
        value = spec.base + rng.uniform(-0.1, 0.1)
        decimals = 1
    low, high = PHYSICAL_LIMITS[kind]
    return round(min(max(value, low), high), decimals)


def _local_hours(at: datetime) -> float:
    local = at.astimezone(REGION_TIME)
    return local.hour + local.minute / 60


def _diurnal(at: datetime) -> float:
    # Snowmelt-free lowland rivers still breathe a little over a day (evaporation, irrigation intakes).
    return 0.02 * math.sin(2 * math.pi * (_local_hours(at) - 9) / 24)


def _tide(spec: StationSpec, at: datetime) -> float:
    if not spec.tide_amplitude:
        return 0.0
    return spec.tide_amplitude * math.sin(2 * math.pi * (at.timestamp() / 3600) / TIDE_PERIOD_HOURS)


def _shower(spec: StationSpec, at: datetime, rng: random.Random) -> float:
    start, end = SHOWER_LOCAL_HOURS
    if not start <= _local_hours(at) < end:
        return 0.0
    in_the_hills = spec.town == region.TOWN_SLUGS[0]
    return rng.choice((0.0, 0.5, 0.5, 1.0) if in_the_hills else (0.0, 0.0, 0.5))


def calm_history_items(specs: Iterable[StationSpec], times: Sequence[datetime]) -> list[dict]:
    """Ingestion items for every station that reports on a schedule (flood gauges stay silent when calm)."""
    return [
        {"station": spec.code, "observed_at": at, "value": calm_value(spec, at)}
        for spec in specs
        if spec.expected_interval is not None
        for at in times
    ]


def demo_history_ingest(stations: dict[str, Station], *, now: datetime, summary: SeedSummary) -> None:
    """The last 24 hours, through the ingestion service like any other source, in a few large batches."""
    specs = [region.station(code) for code in stations]
    items = calm_history_items(specs, history_times(now))
    for start in range(0, len(items), INGEST_BATCH):
        report = observation_ingest(
            municipality=None, items=items[start : start + INGEST_BATCH], source=Observation.Source.SEED
        )
        summary.accepted += report.accepted
        summary.duplicates += report.duplicates
        summary.rejected += [{**r, "index": r["index"] + start} for r in report.rejected]


def _recompute_states(stations: Iterable[Station]) -> None:
    """New thresholds change what the latest reading means: bring the stored level up to date."""
    for station in stations:
        if StationState.objects.filter(station=station).exists():
            station_state_recompute(station=station)
