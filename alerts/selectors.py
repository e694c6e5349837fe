"""Reads of alerts. Every function takes the viewer and reaches stations through `Station.objects.visible_to`.

The public (anyone who is not a member of a town: anonymous callers, the Atom feed) sees alerts of
public stations that reached level 3 (高齢者等避難) or higher at some point, including their later
de-escalation and end; members of a town see every alert of every station they may see.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from django.conf import settings
from django.db.models import IntegerField, Prefetch, QuerySet, Value
from django.urls import reverse
from django.utils import timezone

from bulkwrite import filter_ids
from sensors.models import Station, StationKind
from sensors.selectors import local_iso
from tenancy.models import Municipality
from tenancy.permissions import Action, restrict
from tenancy.selectors import ANONYMOUS, Viewer

from .models import Alert, AlertEvent, LevelDefinition
from .rules import fired_words, rule_concern, rule_unit
from .vocabulary import GaugeWords, gauge_words

PUBLIC_MIN_LEVEL = 3
# Alerts of the last days listed in the public Atom feed.
FEED_DAYS = getattr(settings, "ALERT_FEED_DAYS", 7)
# Compound SELECTs per statement (SQLite allows 500) and stations per IN list.
AUDIENCE_TERMS_PER_QUERY = 100
AUDIENCE_STATIONS_PER_QUERY = 200


def _with_relations(queryset: QuerySet[Alert]) -> QuerySet[Alert]:
    return queryset.select_related("station", "station__municipality", "rule", "level_scheme").prefetch_related(
        Prefetch("level_scheme__levels", queryset=LevelDefinition.objects.order_by("level"))
    )


# Heavy-rain alerts are for the towns' headquarters: a point rainfall is not an evacuation level,
# and the public sees rain as rain (its intensity on the map), not as an alert.
HQ_ONLY_STATION_KINDS = (StationKind.RAIN,)


def alert_may_go_public(station: Station) -> bool:
    """Whether the public may ever hear of this station's alerts (its visibility decides the rest)."""
    return station.kind not in HQ_ONLY_STATION_KINDS


def alerts_visible_to(alerts: QuerySet[Alert], viewer: Viewer) -> QuerySet[Alert]:
    """The visibility rule of alerts, registered with tenancy.permissions: alerts of the stations the
    viewer may see; for the public, only those that reached PUBLIC_MIN_LEVEL, never heavy rain, never
    an unconfirmed raise (alerts.services, "unconfirmed alerts")."""
    alerts = alerts.filter(station__in=Station.objects.visible_to(viewer))
    if not viewer.is_member:  # the public, signed in or not
        alerts = (
            alerts.filter(peak_level__gte=PUBLIC_MIN_LEVEL, unconfirmed_at__isnull=True)
            .exclude(station__kind__in=HQ_ONLY_STATION_KINDS)
        )
    return alerts


def alert_list(
    *,
    viewer: Viewer,
    state: str | None = None,
    municipality: str | None = None,
    kind: str | None = None,
    level: int | None = None,
    min_level: int | None = None,
    station: str | None = None,
) -> QuerySet[Alert]:
    """Alerts the viewer may see, newest first, with station, rule and level words loaded (two queries)."""
    queryset = restrict(Alert.objects.all(), viewer, Action.VIEW)
    if state:
        queryset = queryset.filter(state=state)
    if municipality:
        queryset = queryset.filter(station__municipality__slug=municipality)
    if kind:
        queryset = queryset.filter(rule__kind=kind)
    if level is not None:
        queryset = queryset.filter(level=level)
    if min_level is not None:
        queryset = queryset.filter(level__gte=min_level)
    if station:
        queryset = queryset.filter(station__code=station)
    return _with_relations(queryset).order_by("-opened_at", "-pk")


LEVEL_KINDS = (AlertEvent.Kind.OPENED, AlertEvent.Kind.ESCALATED, AlertEvent.Kind.DEESCALATED)


def alert_list_at(
    *,
    viewer: Viewer,
    at: datetime,
    municipality: str | None = None,
    kind: str | None = None,
    station: str | None = None,
) -> list[Alert]:
    """The alerts that were open (or acknowledged) at `at`, as they stood then, newest first: level,
    peak, state and acknowledgement rebuilt from their events up to `at` (in memory, never saved).
    Visibility is today's; the public sees those that had reached PUBLIC_MIN_LEVEL by then."""
    alerts = list(
        alert_list(viewer=viewer, municipality=municipality, kind=kind, station=station)
        .filter(opened_at__lte=at)
        .exclude(resolved_at__lte=at)
        .prefetch_related(
            Prefetch(
                "events",
                queryset=AlertEvent.objects.filter(at__lte=at).select_related("actor").order_by("at", "pk"),
                to_attr="events_then",
            )
        )
    )
    rebuilt = [alert for alert in alerts if _alert_as_of(alert, alert.events_then)]
    if not viewer.is_member:
        # As alerts_visible_to says for now: an unconfirmed raise was HQ's only, then too.
        rebuilt = [alert for alert in rebuilt if alert.peak_level >= PUBLIC_MIN_LEVEL and alert.unconfirmed_at is None]
    return rebuilt


def _alert_as_of(alert: Alert, events: list[AlertEvent]) -> bool:
    """Roll `alert` back to the state its `events` (those up to a moment) left it in; False when it
    had no level yet then."""
    levels = [event for event in events if event.kind in LEVEL_KINDS]
    if not levels:
        return False
    last = levels[-1]
    alert.level, alert.peak_level = last.level, max(event.level for event in levels)
    acknowledgements = [event for event in events if event.kind == AlertEvent.Kind.ACKNOWLEDGED]
    first_ack = acknowledgements[0] if acknowledgements else None
    alert.state = Alert.State.ACKNOWLEDGED if first_ack else Alert.State.OPEN
    alert.acknowledged_at = first_ack.at if first_ack else None
    alert.acknowledged_by = first_ack.actor if first_ack else None
    alert.resolved_at = alert.resolved_by = None
    alert.updated_at = events[-1].at
    alert.apply_metrics(value=last.value, observed_at=last.observed_at, metrics=last.metrics or {})
    alert.unconfirmed_at = _unconfirmed_then(events, last)
    return True


def _unconfirmed_then(events: list[AlertEvent], last_level_event: AlertEvent):
    """When the alert's level stood on an unconfirmed raise at the end of `events` (not yet confirmed
    by the next reading), that reading's time; else None (see alerts.services, unconfirmed alerts)."""
    from .services import CONFIRMED_NOTE

    if not (last_level_event.metrics or {}).get("unconfirmed"):
        return None
    later = events[events.index(last_level_event) + 1 :]
    if any(event.kind == AlertEvent.Kind.NOTE and event.note == CONFIRMED_NOTE for event in later):
        return None
    return last_level_event.observed_at


def alert_get(*, viewer: Viewer, alert_id: int) -> Alert:
    """One visible alert; raises Alert.DoesNotExist alike for missing and not-visible ones."""
    return alert_list(viewer=viewer).get(pk=alert_id)


def alert_board(viewer: Viewer, municipality: str | None = None, kind: str | None = None) -> list[Alert]:
    """Unresolved alerts for an HQ board: most severe first, then the oldest (waiting longest) first."""
    queryset = alert_list(viewer=viewer, municipality=municipality, kind=kind).exclude(state=Alert.State.RESOLVED)
    return list(queryset.order_by("-level", "opened_at", "pk"))


def board_row_anchor(station_code: str, concern: str) -> str:
    """The id of a board row (its station and concern): messages link to it, so a staff member
    lands on the row the message is about, which keeps its id through live refreshes."""
    return f"row-{station_code}-{concern}"


@dataclass
class BoardRow:
    """One row of the HQ board: a station and one concern (rules.rule_concern), its alerts most
    severe first. A rain gauge's 1 h and 24 h rules are one row naming the rule that fired."""

    station: Station
    concern: str
    alerts: list[Alert]

    @property
    def key(self) -> str:
        return f"{self.station.code}:{self.concern}"

    @property
    def anchor(self) -> str:
        return board_row_anchor(self.station.code, self.concern)

    @property
    def primary(self) -> Alert:
        return self.alerts[0]

    @property
    def others(self) -> list[Alert]:
        return self.alerts[1:]

    @property
    def level(self) -> int:
        return self.primary.level

    @property
    def is_open(self) -> bool:
        """Someone still has to acknowledge it: any of its alerts is unacknowledged."""
        return any(alert.state == Alert.State.OPEN for alert in self.alerts)

    @property
    def opened_at(self) -> datetime:
        return min(alert.opened_at for alert in self.alerts)


def board_rows(alerts: Iterable[Alert]) -> list[BoardRow]:
    """Group (already visible, unresolved) alerts into board rows, most severe first, then waiting
    longest; each alert gets `fired_ja` / `fired_en`, its rule in plain words with the unit."""
    groups: dict[tuple[int, str], list[Alert]] = defaultdict(list)
    for alert in alerts:
        alert.fired_ja, alert.fired_en = fired_words(alert.rule, alert.station, alert.last_value)
        groups[(alert.station_id, rule_concern(alert.rule))].append(alert)
    rows = [
        BoardRow(
            station=members[0].station,
            concern=concern,
            # The rule that fired: the highest level, then the freshest reading.
            alerts=sorted(members, key=lambda a: (-a.level, -(a.last_observed_at or a.opened_at).timestamp(), a.pk)),
        )
        for (_, concern), members in groups.items()
    ]
    return sorted(rows, key=lambda row: (-row.level, row.opened_at, row.key))


def alert_history(
    viewer: Viewer,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    municipality: str | None = None,
    kind: str | None = None,
    station: str | None = None,
    state: str | None = None,
    peak_level: int | None = None,
    limit: int | None = 200,
) -> list[Alert]:
    """Alerts opened in [since, until] (default: the last 7 days), newest first, with their events;
    `peak_level` keeps those whose peak was that level. `limit` None: all of them (CSV export)."""
    until = until or timezone.now()
    since = since or until - timedelta(days=7)
    queryset = (
        alert_list(viewer=viewer, municipality=municipality, kind=kind, station=station, state=state)
        .filter(opened_at__gte=since, opened_at__lte=until)
        .prefetch_related(Prefetch("events", queryset=AlertEvent.objects.select_related("actor").order_by("at", "pk")))
    )
    if peak_level is not None:
        queryset = queryset.filter(peak_level=peak_level)
    return list(queryset if limit is None else queryset[:limit])


def alert_events(alert: Alert, *, viewer: Viewer) -> list[AlertEvent]:
    """The alert's trail; towns' notes to each other are for town staff, not the public."""
    events = alert.events.select_related("actor").order_by("at", "pk")
    if not viewer.is_member:
        events = events.exclude(kind=AlertEvent.Kind.NOTE)
    return list(events)


def public_feed_alerts(*, now: datetime | None = None, days: int = FEED_DAYS) -> list[Alert]:
    """What the Atom feed lists: the public's view, limited to alerts active in the last `days`."""
    now = now or timezone.now()
    return list(alert_list(viewer=ANONYMOUS).filter(updated_at__gte=now - timedelta(days=days)).order_by("-updated_at", "-pk"))


def alert_gauge_words(alert: Alert, level: int | None = None) -> GaugeWords:
    """The gauge words for `level` (default: the alert's) in the scheme the alert was issued with
    (the active one for an alert issued without). Alerts of gauges never take an order's words."""
    return gauge_words(alert.level if level is None else level, alert.level_scheme)


# --- audiences -------------------------------------------------------------------------------


def station_audiences(station_ids: Iterable[int], town_ids: Iterable[int], *, public: bool = False) -> dict[int, set]:
    """For each station, which of `town_ids` may see it (and None for the public when `public`).

    Each town's view is `Station.objects.visible_to` for a viewer of that town alone — the same rule
    as every page and API — glued into one UNION query so the cost does not grow with the towns.
    """
    station_ids = sorted(set(station_ids))
    audiences: list[int | None] = ([None] if public else []) + sorted(set(town_ids))
    result: dict[int, set] = defaultdict(set)
    if not station_ids or not audiences:
        return result
    for station_start in range(0, len(station_ids), AUDIENCE_STATIONS_PER_QUERY):
        chunk = station_ids[station_start : station_start + AUDIENCE_STATIONS_PER_QUERY]
        for audience_start in range(0, len(audiences), AUDIENCE_TERMS_PER_QUERY):
            terms = [
                filter_ids(Station.objects.all(), "id", chunk).visible_to(
                    ANONYMOUS if town_id is None else Viewer(municipality_ids=frozenset({town_id}))
                )
                .order_by()
                .annotate(audience=Value(0 if town_id is None else town_id, output_field=IntegerField()))
                .values_list("pk", "audience")
                for town_id in audiences[audience_start : audience_start + AUDIENCE_TERMS_PER_QUERY]
            ]
            union = terms[0].union(*terms[1:], all=True) if len(terms) > 1 else terms[0]
            for station_id, audience in union:
                result[station_id].add(None if audience == 0 else audience)
    return result


def live_groups_for_stations(station_ids: Iterable[int]) -> dict[int, list[str]]:
    """Channels groups that should hear about alerts of each station: `alerts.public` when anyone may see
    it, and `alerts.<slug>` of every town that may see it."""
    towns = dict(Municipality.objects.values_list("pk", "slug"))
    station_ids = list(station_ids)
    hq_only = set(
        Station.objects.filter(pk__in=station_ids, kind__in=HQ_ONLY_STATION_KINDS).values_list("pk", flat=True)
    )
    groups: dict[int, list[str]] = {}
    for station_id, audience in station_audiences(station_ids, towns.keys(), public=True).items():
        if station_id in hq_only:
            audience = audience - {None}
        groups[station_id] = sorted(live_group(None if town_id is None else towns[town_id]) for town_id in audience)
    return groups


def live_group(town_slug: str | None) -> str:
    return "alerts.public" if town_slug is None else f"alerts.{town_slug}"


# --- the one JSON shape of an alert (REST, live, webhook) -----------------------------------


def _minutes(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 60, 1)


def alert_document(alert: Alert, *, site_url: str | None = None) -> dict:
    station = alert.station
    words = alert_gauge_words(alert)
    base = (site_url if site_url is not None else settings.SITE_URL).rstrip("/")
    return {
        "id": alert.pk,
        "state": alert.state,
        "level": alert.level,
        "peak_level": alert.peak_level,
        "level_name_ja": words.name_ja,
        "level_name_en": words.name_en,
        "reached_ja": words.reached_ja,
        "reached_en": words.reached_en,
        "action_ja": words.advice_ja,
        "action_en": words.advice_en,
        "level_scheme": alert.level_scheme.version if alert.level_scheme else None,
        "unconfirmed": alert.unconfirmed_at is not None,
        "station": {
            "code": station.code,
            "name_ja": station.name_ja,
            "name_en": station.name_en,
            "kind": station.kind,
            "municipality": station.municipality.slug,
            "visibility": station.visibility,
            "unit": station.unit,
            "lon": station.lon,
            "lat": station.lat,
        },
        "rule": {
            "id": alert.rule_id,
            "kind": alert.rule.kind,
            "name": alert.rule.name,
            "window_minutes": _minutes(alert.rule.window),
        },
        "value": alert.last_value,
        "unit": rule_unit(alert.rule, alert.station),
        "observed_at": local_iso(alert.last_observed_at),
        "rate_of_rise_per_hour": alert.rate_of_rise,
        "next_level": alert.next_level,
        "time_to_next_level_minutes": _minutes(alert.time_to_next_level),
        "time_to_next_level_uncertainty_minutes": _minutes(alert.time_to_next_level_uncertainty),
        "opened_at": local_iso(alert.opened_at),
        "updated_at": local_iso(alert.updated_at),
        "acknowledged_at": local_iso(alert.acknowledged_at),
        "resolved_at": local_iso(alert.resolved_at),
        "cap_url": base + reverse("api-alert-cap", args=[alert.pk]),
        "url": base + reverse("api-alert-detail", args=[alert.pk]),
        "station_page_url": base + reverse("station-detail", args=[station.code]),
        "board_url": base + reverse("alert-board") + "#" + board_row_anchor(station.code, rule_concern(alert.rule)),
    }


def event_document(event: AlertEvent) -> dict:
    return {
        "id": event.pk,
        "kind": event.kind,
        "level": event.level,
        "value": event.value,
        "observed_at": local_iso(event.observed_at),
        "at": local_iso(event.at),
        "actor": event.actor.get_username() if event.actor_id and event.actor else None,
        "note": event.note,
    }


def notification_document(event: AlertEvent) -> dict:
    """What every transport sends for one event: the event and the alert as it is now."""
    return {"event": event_document(event), "alert": alert_document(event.alert)}


def digest_document(notifications: list[dict]) -> dict:
    """Several updates of one station for one channel as one message (the channel's rate limit,
    alerts.services._DigestLimiter): each update's own document, oldest first, and the alert as it
    is now."""
    return {
        "digest": {
            "count": len(notifications),
            "first_at": notifications[0]["event"]["at"],
            "last_at": notifications[-1]["event"]["at"],
        },
        "notifications": notifications,
        "alert": notifications[-1]["alert"],
    }


def events_for_notification(event_ids: Iterable[int]) -> list[AlertEvent]:
    return list(
        AlertEvent.objects.filter(pk__in=list(event_ids))
        .select_related(
            "actor", "alert", "alert__station", "alert__station__municipality", "alert__rule", "alert__level_scheme"
        )
        .prefetch_related(Prefetch("alert__level_scheme__levels", queryset=LevelDefinition.objects.order_by("level")))
        .order_by("at", "pk")
    )


def cap_versions(alert: Alert) -> list[AlertEvent]:
    """The alert's CAP messages, oldest first: one per notified event."""
    return list(alert.events.filter(kind__in=AlertEvent.NOTIFIED_KINDS).order_by("at", "pk"))



def acknowledgements_of(alerts: Iterable[Alert]) -> dict[int, list[AlertEvent]]:
    """Who acknowledged each of these (already visibility-checked) alerts, in one query."""
    by_alert: dict[int, list[AlertEvent]] = defaultdict(list)
    for event in (
        AlertEvent.objects.filter(alert_id__in=[alert.pk for alert in alerts], kind=AlertEvent.Kind.ACKNOWLEDGED)
        .select_related("actor")
        .order_by("at", "pk")
    ):
        by_alert[event.alert_id].append(event)
    return by_alert
