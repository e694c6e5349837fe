"""Services that write the FICTIONAL demo region: towns, users, geography (with hazard zones and
shelters), stations, thresholds and 60 days of history with past storms (see weather.py). Every
function is idempotent: run the seed as often as you like (the history is rewritten each time)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from geo.models import Basin, HazardZone, River, Shelter
from sensors.models import Observation, Station, StationKind, StationState, Threshold
from sensors.services import sharing_grant, station_state_recompute, tide_harmonics_set
from tenancy.models import Membership, Municipality
from tenancy.services import membership_set

from . import region
from .districts import demo_districts_upsert, demo_trigger_rules_upsert
from .region import ThresholdSpec
from .weather import HISTORY, Weather, history_snapshots

DEFAULT_PASSWORD = "mizumori-demo"
PLATFORM_ADMIN_USERNAME = "platform-admin"
TOWN_ROLES = (Membership.Role.ADMIN, Membership.Role.OPERATOR, Membership.Role.VIEWER)

# Rows per INSERT: 6 parameters each stays under SQLite's 32,766 parameters per statement.
HISTORY_BATCH = 5000


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
    written: int = 0  # history readings
    replaced: int = 0  # readings of the demo stations deleted first
    weather: Weather | None = None


def demo_seed(
    *,
    password: str = DEFAULT_PASSWORD,
    now: datetime | None = None,
    history: bool = True,
    history_length: timedelta = HISTORY,
) -> SeedSummary:
    """Create or refresh the whole demo region; `history` (re)writes the demo stations' readings:
    `history_length` (60 days) of past storms and dry spells up to the start of the current storm
    (SHOW_LEAD before `now`). Tests shorten it; the weather is the same."""
    summary = SeedSummary()
    with transaction.atomic():
        towns = demo_towns_upsert()
        demo_geography_upsert()
        summary.hazard_zones = demo_hazard_zones_upsert(towns)
        summary.shelters = demo_shelters_upsert(towns, now=now or timezone.now())
        stations, retuned = demo_stations_upsert(towns)
        demo_sharing_upsert(stations, towns)
        demo_districts_upsert(towns)
        demo_trigger_rules_upsert(towns, stations)
        summary.logins = demo_users_upsert(towns, password=password)
    summary.towns = list(towns.values())
    summary.stations = stations
    summary.stations_retuned = len(retuned)
    if history:
        demo_history_write(stations, now=now or timezone.now(), summary=summary, length=history_length)
    else:
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
                "datum": spec.datum,
                "is_active": True,
            },
        )
        stations[spec.code] = station
        if spec.kind == StationKind.TIDE:
            tide_harmonics_set(station=station, harmonics=region.tide_harmonics(spec), source="demo harbour (fictional)")
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


# --- history: past storms and the dry spells between them ----------------------------------------


def demo_history_write(
    stations: dict[str, Station], *, now: datetime, summary: SeedSummary, length: timedelta = HISTORY
) -> Weather:
    """Replace the demo stations' readings with `length` of the demo weather, ending where the
    current storm begins (SHOW_LEAD before `now`), and rebuild their latest states.

    Written with COPY (PostgreSQL) or multi-row INSERTs, not through
    `observation_ingest`: 60 days of 10-minute data is about 240,000 readings, which the ingestion
    service (parsing, duplicate checks, QC and state per batch) took about 70 s of a loaded 2-core
    machine to store, and even Django's `bulk_create` spent about 25 s of CPU preparing the values;
    `make demo` must start in well under a minute. What the service would add is moot here: the
    values come from the model, within physical limits and without implausible jumps, on an empty
    slate (the demo stations' old readings, fictional like them, are deleted first), and the latest
    states are rebuilt by the service's own `station_state_recompute`. No subscriber (alerts, live
    map) is told about history.
    """
    weather = Weather.for_seed_time(now)
    station_ids = {code: station.pk for code, station in stations.items()}
    received_at = _db_datetime(timezone.now())
    rows = []
    for snapshot in history_snapshots(weather, since=weather.anchor - length):
        observed_at = _db_datetime(snapshot.at)
        rows.extend(
            (station_ids[code], observed_at, value, Observation.Quality.OK.value, received_at, Observation.Source.SEED.value)
            for code, value in snapshot.values.items()
            if value is not None and code in station_ids
        )
    with transaction.atomic():
        demo_ids = list(station_ids.values())
        summary.replaced, _ = Observation.objects.filter(station_id__in=demo_ids).delete()
        StationState.objects.filter(station_id__in=demo_ids).delete()
        _insert_observations(rows)
        for station in stations.values():
            station_state_recompute(station=station)
    summary.written = len(rows)
    summary.weather = weather
    return weather


OBSERVATION_COLUMNS = ("station", "observed_at", "value", "quality", "received_at", "source")


def _db_datetime(at: datetime):
    return connection.ops.adapt_datetimefield_value(at)


def _insert_observations(rows: list[tuple]) -> None:
    """Prepared rows (in OBSERVATION_COLUMNS order, values already adapted) into the table: COPY on
    PostgreSQL (psycopg spent about 20 s of CPU binding the parameters of multi-row INSERTs),
    multi-row INSERTs elsewhere."""
    meta = Observation._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in OBSERVATION_COLUMNS)
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        row_marks = "(" + ", ".join(["%s"] * len(OBSERVATION_COLUMNS)) + ")"
        for start in range(0, len(rows), HISTORY_BATCH):
            batch = rows[start : start + HISTORY_BATCH]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row_marks] * len(batch)),
                [value for row in batch for value in row],
            )


def _recompute_states(stations: Iterable[Station]) -> None:
    """New thresholds change what the latest reading means: bring the stored level up to date."""
    for station in stations:
        if StationState.objects.filter(station=station).exists():
            station_state_recompute(station=station)
