"""Change-log handlers of the alerts app (registered in AlertsConfig.ready)."""

from __future__ import annotations

from sensors.services import changed_station_ids

from .services import evaluate_stations

EVALUATE = "alerts.evaluate"


def station_changes_evaluate(events: list[tuple[str, dict]]) -> None:
    """Every station changed in the batch is evaluated once, from its state as committed now."""
    evaluate_stations(changed_station_ids(events))


def evaluation_handlers(shards: int) -> list[tuple[str, object]]:
    """(name, route) of the evaluator's handlers: `shards` of them, each given the stations whose id
    modulo `shards` is its index. Each shard runs one batch at a time (the drain's per-handler lock)
    and no two shards share a station, so several drain workers evaluate at once without waiting on
    each other's rule locks, and each keeps coalescing a backlog per station. Shard 0 keeps the plain
    name, so a single evaluator (the embedded default) is what it always was."""
    if shards <= 1:
        return [(EVALUATE, None)]
    return [(EVALUATE if index == 0 else f"{EVALUATE}/{index}", _shard_route(index, shards)) for index in range(shards)]


def _shard_route(index: int, shards: int):
    def route(kind: str, payload: dict) -> dict | None:
        stations = [pk for pk in payload.get("stations", []) if int(pk) % shards == index]
        return {**payload, "stations": stations} if stations else None

    return route
