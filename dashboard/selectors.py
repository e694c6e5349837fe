"""Reads for the dashboard pages. Tenant data comes only through `sensors.selectors` with a viewer."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from sensors.models import Station
from sensors.selectors import station_feature, station_list
from tenancy.selectors import Viewer

# Residents are told about stations from this level up (警戒レベル2: check how to evacuate).
NOTICE_LEVEL = 2


@dataclass(frozen=True)
class MapStation:
    """A visible station with its contract-shaped GeoJSON feature (see /api/v1/stations)."""

    station: Station
    feature: dict

    @property
    def level(self) -> int | None:
        return self.feature["properties"]["level"]

    @property
    def stale(self) -> bool:
        return self.feature["properties"]["stale"]


def map_stations(*, viewer: Viewer) -> list[MapStation]:
    """Every active station the viewer may see, ready to draw; a fixed number of queries."""
    now = timezone.now()
    return [MapStation(station, station_feature(station, now=now)) for station in station_list(viewer=viewer)]


def stations_needing_notice(stations: list[MapStation], *, min_level: int = NOTICE_LEVEL) -> list[MapStation]:
    """Stations at `min_level` or above, most severe first."""
    raised = [item for item in stations if item.level is not None and item.level >= min_level]
    return sorted(raised, key=lambda item: (-item.level, item.station.code))
