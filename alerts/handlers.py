"""Change-log handlers of the alerts app (registered in AlertsConfig.ready)."""

from __future__ import annotations

from sensors.models import StationState
from sensors.services import changed_station_ids

from .services import IN_CHUNK, evaluate_newest_readings


def station_changes_evaluate(events: list[tuple[str, dict]]) -> None:
    """Every station changed in the batch is evaluated once, from its state as committed now."""
    station_ids = changed_station_ids(events)
    newest = {}
    for start in range(0, len(station_ids), IN_CHUNK):
        newest.update(
            StationState.objects.filter(
                station_id__in=station_ids[start : start + IN_CHUNK], observed_at__isnull=False
            ).values_list("station_id", "observed_at")
        )
    evaluate_newest_readings(newest)
