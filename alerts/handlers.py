"""Change-log handlers of the alerts app (registered in AlertsConfig.ready)."""

from __future__ import annotations

from sensors.models import StationState
from sensors.services import changed_station_ids

from .services import evaluate_newest_readings, of_stations


def station_changes_evaluate(events: list[tuple[str, dict]]) -> None:
    """Every station changed in the batch is evaluated once, from its state as committed now."""
    newest = {}
    states = StationState.objects.filter(observed_at__isnull=False).values_list("station_id", "observed_at")
    for queryset in of_stations(states, changed_station_ids(events)):
        newest.update(queryset)
    evaluate_newest_readings(newest)
