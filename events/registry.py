"""Who handles which domain events. Apps register their handlers in `AppConfig.ready()`:

    from events.registry import register
    register("alerts.evaluate", kinds=["station.changed"], func=handle_station_changes)

A handler gets the events of one drain batch at once, as a list of `(kind, payload)` pairs in the
order they were emitted, so it can coalesce them (one evaluation for every changed station, one
live message per audience). It runs inside the drain's transaction: its database writes commit
together with the removal of the events it was given, so its effect is applied once. It must be
idempotent all the same (a handler that raises is retried with the whole batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

HandlerFunc = Callable[[list[tuple[str, dict]]], None]
# (kind, payload) -> this handler's part of the payload, or None when it has nothing to do with it.
RouteFunc = Callable[[str, dict], dict | None]


@dataclass(frozen=True)
class Handler:
    name: str
    kinds: frozenset[str]
    func: HandlerFunc
    # Most events handed over in one call; a larger backlog drains over several ticks.
    batch_size: int = 1000
    # A handler that keeps failing stops being retried after this many attempts (kept for the operator).
    max_attempts: int = 100
    # Retries back off up to this many seconds (events.services.RETRY_MAX_SECONDS unless lower).
    retry_max_seconds: float | None = None
    # While its oldest pending event waits for a retry, newer ones wait too: batches are handled
    # strictly in the order they were emitted (the live publisher: numbers follow events).
    in_order: bool = False
    # Which part of each event this handler gets (None: all of it). Several handlers splitting one
    # kind of event between them by a key (e.g. station id) run in parallel on disjoint keys, each
    # under its own name, so each stays one at a time and keeps its batches in order.
    route: RouteFunc | None = None


_handlers: dict[str, Handler] = {}


def register(
    name: str,
    *,
    kinds: Iterable[str],
    func: HandlerFunc,
    batch_size: int = 1000,
    max_attempts: int = 100,
    retry_max_seconds: float | None = None,
    in_order: bool = False,
    route: RouteFunc | None = None,
) -> Handler:
    """Register (or, for the same name, replace) a handler. Names are stored in outbox rows: keep them stable."""
    if len(name) > 60:
        raise ValueError(f"handler name {name!r} is longer than 60 characters")
    handler = Handler(
        name=name, kinds=frozenset(kinds), func=func, batch_size=batch_size, max_attempts=max_attempts,
        retry_max_seconds=retry_max_seconds, in_order=in_order, route=route,
    )
    _handlers[name] = handler
    return handler


def unregister(name: str) -> None:
    _handlers.pop(name, None)


def handlers() -> list[Handler]:
    return sorted(_handlers.values(), key=lambda handler: handler.name)


def handlers_for(kind: str) -> list[Handler]:
    return [handler for handler in handlers() if kind in handler.kinds]


def get(name: str) -> Handler | None:
    return _handlers.get(name)
