"""The event timeline: what happened in a window, per town, through the viewer's eyes.

Nothing here is stored twice: each kind of event is read from the rows that already record it —
threshold crossings from the readings themselves (judged by the one level rule, sensors.levels, with
the threshold values in force at each reading), alert transitions from AlertEvent, stale gauges and
their recovery from the alerts of stale-sensor rules, shelter changes and their actors from the audit
log, threshold edits from ThresholdRevision, shares from SharingGrant. Each source is narrowed by the
same visibility rules as the map (today's permissions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlencode

from django.db.models import Q
from django.urls import reverse

from alerts.models import AlertEvent, AlertRule
from alerts.selectors import alert_board, alert_list
from alerts.vocabulary import EVENT_KIND_WORDS
from dashboard.maps import level_style, levels
from geo.models import Shelter
from geo.selectors import shelter_list
from orders.cap import STEP_WORDS
from orders.models import OrderEvent
from orders.selectors import order_history_visible, order_list, order_steps_between, order_words
from sensors.models import SharingGrant, ThresholdRevision
from sensors.selectors import (
    as_of_span,
    local_iso,
    ReadingJudge,
    StaleProbe,
    readings_in_ranges,
    readings_up_to,
    station_is_stale,
    stations_with_threshold_history,
    visible_stations,
)
from tenancy.models import AuditEvent, Municipality
from tenancy.selectors import Viewer

LEVEL_UP, LEVEL_DOWN = "level.up", "level.down"
GAUGE_STALE, GAUGE_RECOVERED = "gauge.stale", "gauge.recovered"
SHELTER_STATUS = "shelter.status"
SHARING_GRANTED, SHARING_WITHDRAWN = "sharing.granted", "sharing.withdrawn"
THRESHOLD_CHANGED = "threshold.changed"
ALERT_KINDS = [f"alert.{kind}" for kind in AlertEvent.Kind.values]
ORDER_KINDS = [f"order.{kind}" for kind in OrderEvent.Kind.values]
KINDS = [LEVEL_UP, LEVEL_DOWN, *ALERT_KINDS, *ORDER_KINDS, GAUGE_STALE, GAUGE_RECOVERED, SHELTER_STATUS,
         SHARING_GRANTED, SHARING_WITHDRAWN, THRESHOLD_CHANGED]  # fmt: skip
KIND_GROUPS = sorted({kind.split(".")[0] for kind in KINDS})

SHELTER_WORDS = {"open": ("開設", "open"), "full": ("満員", "full"), "closed": ("閉鎖", "closed")}


@dataclass
class TimelineEvent:
    id: str
    at: datetime
    kind: str
    municipality: str
    subject: str  # a station code, shelter code, group name or order-<id>
    name_ja: str
    name_en: str
    summary_ja: str
    summary_en: str
    level: int | None = None
    previous_level: int | None = None
    value: float | None = None
    actor: str | None = None
    alert: int | None = None
    detail: dict = field(default_factory=dict)


def timeline_events(
    *,
    viewer: Viewer,
    since: datetime,
    until: datetime,
    municipality: str | None = None,
    kinds: list[str] | None = None,
    loaded: tuple[list, dict] | None = None,
) -> list[TimelineEvent]:
    """Every event the viewer may see in [since, until], oldest first; `kinds` narrows to those kinds;
    `loaded` is passed on to `level_changes`."""
    wanted = set(kinds or KINDS)
    events: list[TimelineEvent] = []
    if wanted & {LEVEL_UP, LEVEL_DOWN}:
        events += level_changes(viewer=viewer, since=since, until=until, municipality=municipality, loaded=loaded)
    if wanted & {*ALERT_KINDS, GAUGE_STALE, GAUGE_RECOVERED}:
        events += _alert_events(viewer, since, until, municipality)
    if wanted & set(ORDER_KINDS):
        events += _order_events(viewer, since, until, municipality)
    if SHELTER_STATUS in wanted:
        events += _shelter_events(viewer, since, until, municipality)
    if wanted & {SHARING_GRANTED, SHARING_WITHDRAWN}:
        events += _sharing_events(viewer, since, until, municipality)
    if THRESHOLD_CHANGED in wanted:
        events += _threshold_events(viewer, since, until, municipality)
    events = [event for event in events if event.kind in wanted]
    events.sort(key=lambda event: (event.at, event.id))
    return events


def map_url(event_at: datetime, *, viewer: Viewer) -> str:
    """The map at the moment of an event: HQ for town staff, the public map otherwise."""
    page = reverse("dashboard-hq") if viewer.is_member else reverse("dashboard-public")
    return f"{page}?{urlencode({'at': local_iso(event_at)})}"


def _actor(user, viewer: Viewer) -> str | None:
    # Staff names are for town staff, never the public.
    if user is None or not viewer.is_member:
        return None
    return user.get_username()


def level_changes(
    *, viewer: Viewer, since: datetime, until: datetime, municipality: str | None = None,
    loaded: tuple[list, dict] | None = None,
) -> list[TimelineEvent]:
    """Every change of a visible station's level in (since, until], judged reading by reading as the
    map judged it (suspect readings move no level), starting from its level at `since`. Two queries
    for the readings however many stations. `loaded`: the visible stations and their
    `window_readings`, when the caller has them already (the situation report)."""
    visible, during = loaded or (None, None)
    if visible is None:
        visible = stations_with_threshold_history(viewer=viewer, municipality=municipality)
    stations = {station.pk: station for station in visible}
    if not stations:
        return []
    spans = {pk: as_of_span(station) for pk, station in stations.items()}
    before = readings_up_to(spans, since)
    if during is None:
        during = window_readings(visible, since, until)
    events = []
    styles = levels()  # the active scheme's words, read once (it is a query)
    for pk, station in stations.items():
        readings = during.get(pk, [])
        judge = ReadingJudge(station)
        previous = None
        context = before.get(pk, [])
        good = [i for i, reading in enumerate(context) if reading[2] == "ok"]
        if good:
            previous = judge.level(context, good[-1], at=context[good[-1]][0])
        for index, (observed_at, value, quality) in enumerate(readings):
            if observed_at <= since or quality != "ok":
                continue
            level = judge.level(readings, index, at=observed_at)
            if previous is not None and level != previous:
                rising = level > previous
                words = level_style(level, styles)
                events.append(TimelineEvent(
                    id=f"level:{station.code}:{observed_at.isoformat()}",
                    at=observed_at,
                    kind=LEVEL_UP if rising else LEVEL_DOWN,
                    municipality=station.municipality.slug,
                    subject=station.code,
                    name_ja=station.name_ja,
                    name_en=station.name_en,
                    summary_ja=f"{words.name_ja}に{'上昇' if rising else '低下'}({value:g} {station.unit})",
                    summary_en=f"{'Rose' if rising else 'Fell'} to {words.name_en} ({value:g} {station.unit})",
                    level=level,
                    previous_level=previous,
                    value=value,
                ))
            previous = level
    return events


def window_readings(stations, since: datetime, until: datetime) -> dict:
    """The readings of (since − as-of span, until] per station: what judging a window needs."""
    return readings_in_ranges({station.pk: (since - as_of_span(station), until) for station in stations})


def _alert_events(viewer: Viewer, since: datetime, until: datetime, municipality: str | None) -> list[TimelineEvent]:
    rows = (
        AlertEvent.objects.filter(alert__in=alert_list(viewer=viewer, municipality=municipality), at__gte=since, at__lte=until)
        .select_related("alert__station__municipality", "alert__rule", "actor")
        .order_by("at", "pk")
    )
    if not viewer.is_member:
        rows = rows.exclude(kind=AlertEvent.Kind.NOTE)
    events = []
    styles = levels()
    for row in rows:
        station, stale = row.alert.station, row.alert.rule.kind == AlertRule.Kind.STALE
        kind = f"alert.{row.kind}"
        if stale and row.kind == AlertEvent.Kind.OPENED:
            kind = GAUGE_STALE
        elif stale and row.kind == AlertEvent.Kind.RESOLVED:
            kind = GAUGE_RECOVERED
        words = level_style(row.level, styles)
        ja, en = EVENT_KIND_WORDS[row.kind]
        if kind == GAUGE_STALE:
            ja, en = "データ途絶", "stopped reporting"
        elif kind == GAUGE_RECOVERED:
            ja, en = "データ復旧", "reporting again"
        actor = _actor(row.actor, viewer)
        by_ja, by_en = (f"({actor})", f" by {actor}") if actor else ("", "")
        events.append(TimelineEvent(
            id=f"alert-event:{row.pk}",
            at=row.at,
            kind=kind,
            municipality=station.municipality.slug,
            subject=station.code,
            name_ja=station.name_ja,
            name_en=station.name_en,
            summary_ja=f"アラート{ja}: {row.alert.rule.name} {words.name_ja}{by_ja}",
            summary_en=f"Alert {en}: {row.alert.rule.name}, {words.name_en}{by_en}",
            level=row.level,
            value=row.value,
            actor=actor,
            alert=row.alert_id,
            detail={"rule": row.alert.rule.kind, "note": row.note} if viewer.is_member else {"rule": row.alert.rule.kind},
        ))
    return events


def _order_events(viewer: Viewer, since: datetime, until: datetime, municipality: str | None) -> list[TimelineEvent]:
    """Orders are public; who took a step is the issuing town's record (orders.selectors)."""
    events, said = [], {}
    for step in order_steps_between(viewer=viewer, since=since, until=until, municipality=municipality):
        order, town = step.order, step.order.municipality
        key = (step.level, order.level_scheme_id)
        if key not in said:  # a query each
            said[key] = order_words(step.level, order.level_scheme)
        words = said[key]
        ja, en = STEP_WORDS[step.kind]
        actor = (step.actor_name or None) if viewer.is_member and order_history_visible(viewer=viewer, order=order) else None
        by_ja, by_en = (f"({actor})", f" by {actor}") if actor else ("", "")
        count = len(step.districts)
        events.append(TimelineEvent(
            id=f"order-event:{step.pk}",
            at=step.at,
            kind=f"order.{step.kind}",
            municipality=town.slug,
            subject=f"order-{order.pk}",
            name_ja=f"{town.name_ja} {words.title_ja}",
            name_en=f"{town.name_en} {words.title_en}",
            summary_ja=f"避難情報{ja}: {words.title_ja}、{count}地区{by_ja}",
            summary_en=f"Evacuation information {en}: {words.title_en}, {count} district{'s' if count != 1 else ''}{by_en}",
            level=step.level,
            actor=actor,
            detail={"order": order.pk, "districts": step.districts},
        ))
    return events


def _shelter_events(viewer: Viewer, since: datetime, until: datetime, municipality: str | None) -> list[TimelineEvent]:
    """Shelter status is public information; who changed it is for town staff."""
    rows = AuditEvent.objects.filter(action=AuditEvent.Action.SHELTER_UPDATED, at__gte=since, at__lte=until)
    if municipality:
        rows = rows.filter(municipality__slug=municipality)
    rows = list(rows.select_related("actor", "municipality").order_by("at", "pk"))
    shelters = {shelter.code: shelter for shelter in Shelter.objects.filter(code__in=[row.target for row in rows])}
    events = []
    for row in rows:
        shelter = shelters.get(row.target)
        if shelter is None:
            continue
        to, was = row.detail.get("to", ""), row.detail.get("from", "")
        to_ja, to_en = SHELTER_WORDS.get(to, (to, to))
        events.append(TimelineEvent(
            id=f"audit:{row.pk}",
            at=row.at,
            kind=SHELTER_STATUS,
            municipality=row.municipality.slug if row.municipality else "",
            subject=shelter.code,
            name_ja=shelter.name_ja,
            name_en=shelter.name_en,
            summary_ja=f"避難所 {shelter.name_ja}: {to_ja}",
            summary_en=f"Shelter {shelter.name_en}: {to_en}",
            actor=_actor(row.actor, viewer),
            detail={"from": was, "to": to},
        ))
    return events


def _sharing_events(viewer: Viewer, since: datetime, until: datetime, municipality: str | None) -> list[TimelineEvent]:
    """Shares are news to the two towns involved (and the platform operator), nobody else."""
    if not viewer.is_member:
        return []
    grants = SharingGrant.objects.filter(
        Q(granted_at__gte=since, granted_at__lte=until) | Q(withdrawn_at__gte=since, withdrawn_at__lte=until)
    )
    if not viewer.is_platform_admin:
        towns = viewer.municipality_ids
        grants = grants.filter(Q(grantor_id__in=towns) | Q(grantee_id__in=towns))
    if municipality:
        grants = grants.filter(Q(grantor__slug=municipality) | Q(grantee__slug=municipality))
    events = []
    for grant in grants.select_related("station", "group", "grantor", "grantee", "granted_by", "withdrawn_by"):
        subject = grant.station.code if grant.station_id else grant.group.name
        name_ja = grant.station.name_ja if grant.station_id else f"グループ {grant.group.name}"
        name_en = grant.station.name_en if grant.station_id else f"group {grant.group.name}"
        for kind, at, by, ja, en in (
            (SHARING_GRANTED, grant.granted_at, grant.granted_by, "共有開始", "shared with"),
            (SHARING_WITHDRAWN, grant.withdrawn_at, grant.withdrawn_by, "共有終了", "no longer shared with"),
        ):
            if at is None or not since <= at <= until:
                continue
            events.append(TimelineEvent(
                id=f"{kind}:{grant.pk}",
                at=at,
                kind=kind,
                municipality=grant.grantor.slug,
                subject=subject,
                name_ja=name_ja,
                name_en=name_en,
                summary_ja=f"{name_ja}: {grant.grantee.name_ja}と{ja}",
                summary_en=f"{name_en}: {en} {grant.grantee.name_en}",
                actor=_actor(by, viewer),
                detail={"grantor": grant.grantor.slug, "grantee": grant.grantee.slug},
            ))
    return events


def _threshold_events(viewer: Viewer, since: datetime, until: datetime, municipality: str | None) -> list[TimelineEvent]:
    revisions = (
        ThresholdRevision.objects.filter(
            valid_to__gte=since, valid_to__lte=until,
            threshold__station__in=visible_stations(viewer=viewer, municipality=municipality).values("pk"),
        )
        .select_related("threshold__station__municipality", "changed_by")
        .order_by("valid_to", "pk")
    )
    events = []
    for revision in revisions:
        threshold, station = revision.threshold, revision.threshold.station
        # The value that replaced this one: the next revision's, or the threshold's current value.
        after = threshold.value_at(revision.valid_to)
        events.append(TimelineEvent(
            id=f"threshold:{revision.pk}",
            at=revision.valid_to,
            kind=THRESHOLD_CHANGED,
            municipality=station.municipality.slug,
            subject=station.code,
            name_ja=station.name_ja,
            name_en=station.name_en,
            summary_ja=f"{threshold.label_ja}を {revision.value:g} → {after:g} {station.unit} に変更",
            summary_en=f"{threshold.label_en} changed {revision.value:g} → {after:g} {station.unit}",
            level=threshold.level,
            value=after,
            actor=_actor(revision.changed_by, viewer),
            detail={"threshold": threshold.name, "from": revision.value, "to": after},
        ))
    return events


def town_names() -> dict[str, tuple[str, str]]:
    return {slug: (ja, en) for slug, ja, en in Municipality.objects.values_list("slug", "name_ja", "name_en")}


# --- the HQ overview: per town, now -------------------------------------------------------------

OVERVIEW_RECENT = 60  # minutes of "what changed"
OVERVIEW_RECENT_MAX = 30


@dataclass
class TownOverview:
    slug: str
    name_ja: str
    name_en: str
    is_own: bool
    stations_by_level: dict[str, int] = field(default_factory=dict)  # "none", "0" … "5"
    stale: int = 0
    alerts_by_level: dict[int, int] = field(default_factory=dict)
    unacknowledged: int = 0
    shelters_open: int = 0
    shelters_full: int = 0
    orders_by_level: dict[int, int] = field(default_factory=dict)  # evacuation orders in force

    @property
    def stations(self) -> int:
        return sum(self.stations_by_level.values())

    @property
    def open_alerts(self) -> int:
        return sum(self.alerts_by_level.values())

    def level_counts(self) -> list[tuple[str, int]]:
        """(level key, count) from the most severe down, for the table."""
        return [(key, self.stations_by_level.get(key, 0)) for key in ("5", "4", "3", "2", "1", "0", "none")]

    def alert_counts(self) -> list[tuple[int, int]]:
        return [(level, self.alerts_by_level.get(level, 0)) for level in (5, 4, 3, 2, 1)]

    def order_counts(self) -> list[tuple[int, int]]:
        """(level, orders in force at it), highest first: only the levels that have any."""
        return sorted(self.orders_by_level.items(), reverse=True)


class _Town(NamedTuple):
    pk: int
    slug: str
    name_ja: str
    name_en: str


class _Gauge(NamedTuple):
    """What `station_is_stale` reads of a station."""

    expected_interval: timedelta | None


def hq_overview(*, viewer: Viewer, now: datetime, board: list | None = None, shelters: list | None = None) -> dict:
    """Per town whose stations the viewer may see (its own first): stations by level, stale gauges,
    open alerts by level and how many nobody has acknowledged, evacuation orders in force by level,
    shelters open / full; and the events of the last OVERVIEW_RECENT minutes, newest first. `board`
    (the viewer's `alert_board`) and `shelters` (`shelter_list`): when the page that includes the
    overview read them already."""
    towns: dict[str, TownOverview] = {}

    def town_of(municipality) -> TownOverview:
        if municipality.slug not in towns:
            towns[municipality.slug] = TownOverview(
                municipality.slug, municipality.name_ja, municipality.name_en,
                is_own=municipality.pk in viewer.municipality_ids,
            )
        return towns[municipality.slug]

    # Counts need each station's town, latest level and reporting interval only: not the thresholds
    # and trend readings a map feature is built from (at 2,000 stations that load took seconds), nor
    # model instances (three per station).
    rows = visible_stations(viewer=viewer).values_list(
        "expected_interval", "municipality_id", "municipality__slug", "municipality__name_ja",
        "municipality__name_en", "state__level", "state__observed_at",
    )
    for interval, *town, level, observed_at in rows:
        overview = town_of(_Town(*town))
        key = "none" if level is None or observed_at is None else str(level)
        overview.stations_by_level[key] = overview.stations_by_level.get(key, 0) + 1
        overview.stale += station_is_stale(_Gauge(interval), now=now, state=StaleProbe(observed_at))
    for alert in alert_board(viewer) if board is None else board:
        overview = town_of(alert.station.municipality)
        overview.alerts_by_level[alert.level] = overview.alerts_by_level.get(alert.level, 0) + 1
        overview.unacknowledged += alert.state == "open"
    for shelter in shelter_list() if shelters is None else shelters:
        if shelter.municipality.slug in towns or shelter.municipality.pk in viewer.municipality_ids:
            overview = town_of(shelter.municipality)
            overview.shelters_open += shelter.status == Shelter.Status.OPEN
            overview.shelters_full += shelter.status == Shelter.Status.FULL
    for order in order_list(viewer=viewer):
        if order.municipality.slug in towns or order.municipality.pk in viewer.municipality_ids:
            overview = town_of(order.municipality)
            overview.orders_by_level[order.level] = overview.orders_by_level.get(order.level, 0) + 1
    recent = timeline_events(viewer=viewer, since=now - timedelta(minutes=OVERVIEW_RECENT), until=now)
    return {
        "towns": sorted(towns.values(), key=lambda town: (not town.is_own, town.slug)),
        "recent": list(reversed(recent))[:OVERVIEW_RECENT_MAX],
        "recent_count": len(recent),
        "recent_minutes": OVERVIEW_RECENT,
        "generated_at": now,
    }
