"""Writes of alert state: evaluating ingested readings, stale checks, acknowledgement and resolution,
default rules, and the notification outbox with its dispatcher.

Flow: `sensors.services.observation_ingest` commits a batch → `evaluate_station_changes` (an ingest
subscriber) moves alerts and writes one `AlertEvent` per transition plus one `Delivery` per
(event, channel) in the same transaction → after commit, Celery tasks announce the events on the
live groups and run the dispatcher, which claims due deliveries atomically and sends them.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, prefetch_related_objects
from django.utils import timezone

from bulkwrite import FROM_MICROS_SQL, TO_MICROS_SQL, filter_ids, loaded_instances, pg_array, update_from_arrays
from events import emit
from orders.documents import order_notification_documents
from orders.models import OrderEvent
from releases.models import DamRelease, ReleaseTransition
from releases.selectors import release_notification_documents
from sensors.models import Station, StationKind, StationState, Threshold
from sensors.catalog import current_stamp
from sensors.selectors import local_iso
from sensors.services import from_micros, to_micros
from tenancy.models import AuditEvent
from tenancy.services import audit_record

from . import rules as rulebook
from .recent import RecentReadings
from .evaluation import (
    RATE_WINDOWS,
    LevelSteps,
    jumps_and_spikes,
    linear_trend,
    rate_of_rise_now,
    time_to_next,
    window_sums,
)
from .models import Alert, AlertEvent, AlertRule, Delivery, LevelDefinition, LevelScheme, NotificationChannel
from .selectors import digest_document, events_for_notification, notification_document, station_audiences
from .transports import TransportError, sender_for

logger = logging.getLogger(__name__)

Kind = AlertRule.Kind
# SQLite refuses statements with more than 32,766 parameters; stay well below.
IN_CHUNK = 2000
# When a station's readings arrive after a long gap, evaluation steps through at most this much of them.
CATCH_UP = timedelta(hours=6)
# A delivery left in "sending" this long is assumed lost with its worker and is sent again.
DELIVERY_LEASE = timedelta(
    seconds=getattr(settings, "ALERT_DELIVERY_LEASE_SECONDS", max(60, 4 * settings.ALERT_WEBHOOK_TIMEOUT_SECONDS))
)
RETRY_BASE = timedelta(seconds=getattr(settings, "ALERT_RETRY_BASE_SECONDS", 15))
RETRY_MAX = timedelta(hours=1)
# Timestamps of the rows a drain batch loads, read as microseconds (see `bulkwrite.loaded_instances`).
RULE_TIMES = ("evaluated_until", "created_at")
ALERT_TIMES = ("opened_at", "updated_at", "acknowledged_at", "resolved_at", "last_observed_at", "unconfirmed_at")
ALERT_FIELDS = [
    "level", "peak_level", "state", "updated_at", "resolved_at", "last_value", "last_observed_at",
    "rate_of_rise", "next_level", "time_to_next_level", "time_to_next_level_uncertainty",
    "unconfirmed_at", "unconfirmed_from_level",
]  # fmt: skip


class AlertStateError(Exception):
    """The alert cannot make this transition (e.g. acknowledging a resolved alert)."""


def _chunks(values: list, size: int = IN_CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def of_stations(queryset, station_ids: list[int]):
    """`queryset` limited to rows of these stations, as querysets in chunks. On PostgreSQL one query
    with the ids as a single array parameter: the driver's client-side binding quotes every member
    of an IN list in Python, which cost more than the query."""
    if connection.vendor == "postgresql":
        return [filter_ids(queryset, "station_id", station_ids)]
    return [queryset.filter(station_id__in=chunk) for chunk in _chunks(station_ids)]


# --- level schemes ---------------------------------------------------------------------------


def level_scheme_activate(scheme: LevelScheme) -> LevelScheme:
    """Make `scheme` the one new alerts use; open alerts keep the words they were issued with."""
    with transaction.atomic():
        LevelScheme.objects.filter(is_active=True).exclude(pk=scheme.pk).update(is_active=False)
        LevelScheme.objects.filter(pk=scheme.pk).update(is_active=True)
    scheme.is_active = True
    return scheme


def _active_scheme() -> LevelScheme | None:
    definitions = list(LevelDefinition.objects.filter(scheme__is_active=True).select_related("scheme"))
    if not definitions:
        return LevelScheme.objects.filter(is_active=True).first()
    scheme = definitions[0].scheme
    scheme._prefetched_objects_cache = {"levels": sorted(definitions, key=lambda d: d.level)}
    return scheme


# --- default rules ---------------------------------------------------------------------------


def alert_rules_sync_for_station(station: Station, *, now: datetime | None = None) -> list[AlertRule]:
    """Create the default rules the station's thresholds and reporting interval imply; retire default
    rules they no longer imply (disabled, their open alerts resolved). Operator rules are left alone,
    and a default rule an operator disabled stays disabled."""
    now = now or timezone.now()
    with transaction.atomic():
        wanted = {rulebook.rule_key(rule): rule for rule in rulebook.default_rules(station, list(station.thresholds.all()))}
        existing = {
            rulebook.rule_key(rule): rule
            for rule in AlertRule.objects.select_for_update().filter(station=station, is_default=True)
        }
        AlertRule.objects.bulk_create(
            [rule for key, rule in wanted.items() if key not in existing], ignore_conflicts=True
        )
        retired = [rule for key, rule in existing.items() if key not in wanted and rule.is_enabled]
        if retired:
            AlertRule.objects.filter(pk__in=[rule.pk for rule in retired]).update(is_enabled=False)
            batch = _Transitions(now=now, scheme=None)
            for alert in Alert.objects.select_for_update().filter(rule__in=retired).exclude(state=Alert.State.RESOLVED):
                batch.resolve(alert, note="rule retired: the station's thresholds no longer imply it")
            batch.save()
    return list(station.alert_rules.filter(is_default=True).order_by("kind", "window"))


def _missing_default_rules(
    stations: dict[int, Station], thresholds: dict[int, list[Threshold]], rules: list[AlertRule], wanted: dict
) -> list[AlertRule]:
    """Default rules the stations' data implies and that do not exist. `wanted` caches the keys of
    each station's default rules (valid while the catalog stamp is), so a batch whose stations have
    all their rules builds no rule instances."""
    present: dict[int, set] = defaultdict(set)
    for rule in rules:
        if rule.is_default:
            present[rule.station_id].add(rulebook.rule_key(rule))
    missing = []
    for station in stations.values():
        keys = wanted.get(station.pk)
        if keys is None:
            keys = wanted[station.pk] = frozenset(
                rulebook.rule_key(rule) for rule in rulebook.default_rules(station, thresholds.get(station.pk, []))
            )
        if keys <= present[station.pk]:
            continue
        missing.extend(
            rule
            for rule in rulebook.default_rules(station, thresholds.get(station.pk, []))
            if rulebook.rule_key(rule) not in present[station.pk]
        )
    return missing


class _CatalogCache:
    """Per-process copies of what evaluation reads of the catalog (stations with their owner,
    thresholds with their revisions, default-rule keys), dropped whenever the catalog stamp changes
    (see `sensors.models.CatalogStamp`). Read only: evaluation never changes a station or threshold."""

    def __init__(self):
        self.stamp: int | None = None
        self.stations: dict[int, Station] = {}
        self.thresholds: dict[int, list[Threshold]] = {}
        self.default_keys: dict[int, frozenset] = {}
        self.ladders: dict[tuple, list] = {}  # see `_fixed_ladder`

    def current(self) -> "_CatalogCache":
        stamp = current_stamp()
        if stamp is None:
            return _CatalogCache()  # no stamp to trust: a fresh, unshared copy
        if stamp != self.stamp:
            self.stations, self.thresholds, self.default_keys, self.ladders, self.stamp = {}, {}, {}, {}, stamp
        return self

    def stations_of(self, station_ids: list[int]) -> dict[int, Station]:
        missing = [pk for pk in station_ids if pk not in self.stations]
        if missing:
            self.stations.update((station.pk, station) for station in _stations_of(missing))
        return {pk: self.stations[pk] for pk in station_ids if pk in self.stations}

    def thresholds_of(self, station_ids: list[int]) -> dict[int, list[Threshold]]:
        missing = [pk for pk in station_ids if pk not in self.thresholds]
        if missing:
            loaded: dict[int, list[Threshold]] = defaultdict(list)
            for chunk in _chunks(missing):
                for threshold in Threshold.objects.filter(station_id__in=chunk):
                    loaded[threshold.station_id].append(threshold)
            # Past values, for judging each reading by the threshold in force then; only edited ones have any.
            prefetch_related_objects([t for ts in loaded.values() for t in ts if t.valid_from], "revisions")
            for pk in missing:
                self.thresholds[pk] = loaded.get(pk, [])
        return {pk: self.thresholds[pk] for pk in station_ids}


_catalog_cache = _CatalogCache()
# Each process's copy of the readings evaluation looks back over (alerts.recent).
recent_readings = RecentReadings()


# --- transitions -----------------------------------------------------------------------------


@dataclass
class _Transitions:
    """Alert changes of one transaction, written in bulk by `save` (a fixed number of queries)."""

    now: datetime
    scheme: LevelScheme | None
    open_alerts: dict[int, Alert] = field(default_factory=dict)  # by rule id
    ladders: dict[tuple, list] = field(default_factory=dict)  # the catalog cache's (`_fixed_ladder`)
    new_alerts: list[Alert] = field(default_factory=list)
    changed: dict[int, Alert] = field(default_factory=dict)  # existing alerts, by id
    events: list[AlertEvent] = field(default_factory=list)

    def touch(self, alert: Alert) -> None:
        alert.updated_at = self.now
        if alert.pk is not None:
            self.changed[alert.pk] = alert

    def move(
        self,
        rule: AlertRule,
        level: int,
        *,
        value: float | None,
        observed_at: datetime | None,
        metrics: dict,
        note: str = "",
    ) -> None:
        """Take the rule's alert to `level` (0: resolved), opening one if none is open."""
        alert = self.open_alerts.get(rule.pk)
        current = alert.level if alert else 0
        if level == current:
            return
        if alert is None:
            alert = Alert(
                station_id=rule.station_id,
                rule=rule,
                level_scheme=self.scheme,
                level=level,
                peak_level=level,
                state=Alert.State.OPEN,
                opened_at=self.now,
                updated_at=self.now,
            )
            self.new_alerts.append(alert)
            self.open_alerts[rule.pk] = alert
            kind = AlertEvent.Kind.OPENED
        elif level == 0:
            self.resolve(alert, value=value, observed_at=observed_at, metrics=metrics, note=note)
            return
        else:
            kind = AlertEvent.Kind.ESCALATED if level > current else AlertEvent.Kind.DEESCALATED
            alert.level = level
            alert.peak_level = max(alert.peak_level, level)
        self.touch(alert)
        _apply_metrics(alert, value=value, observed_at=observed_at, metrics=metrics)
        self.events.append(
            AlertEvent(alert=alert, kind=kind, level=level, value=value, observed_at=observed_at, at=self.now,
                       note=note, metrics=metrics)
        )

    def resolve(
        self,
        alert: Alert,
        *,
        value: float | None = None,
        observed_at: datetime | None = None,
        metrics: dict | None = None,
        note: str = "",
        actor=None,
    ) -> AlertEvent:
        alert.state = Alert.State.RESOLVED
        alert.resolved_at = self.now
        alert.resolved_by = actor
        if value is not None:
            _apply_metrics(alert, value=value, observed_at=observed_at, metrics=metrics or {})
        self.touch(alert)
        self.open_alerts.pop(alert.rule_id, None)
        event = AlertEvent(
            alert=alert, kind=AlertEvent.Kind.RESOLVED, level=alert.level, value=value, observed_at=observed_at,
            actor=actor, at=self.now, note=note, metrics=metrics or {},
        )
        self.events.append(event)
        return event

    def save(self) -> list[AlertEvent]:
        # Existing alerts first: one resolved here frees its rule for a new alert inserted below.
        if self.changed:
            update_from_arrays(Alert, list(self.changed.values()), ALERT_FIELDS + ["resolved_by"])
        if self.new_alerts:
            Alert.objects.bulk_create(self.new_alerts)
        if self.events:
            AlertEvent.objects.bulk_create(self.events)
            if _deliveries_create(self.events, now=self.now):
                transaction.on_commit(_dispatch_soon, robust=True)
            alert_events_emit([event.pk for event in self.events])
        return self.events


def _apply_metrics(alert: Alert, *, value: float | None, observed_at: datetime | None, metrics: dict) -> None:
    alert.apply_metrics(value=value, observed_at=observed_at, metrics=metrics)


def _dispatch_soon() -> None:
    from .tasks import deliveries_dispatch_task

    deliveries_dispatch_task.delay()


ALERT_CHANGED = "alert.changed"


def alert_events_emit(event_ids: list[int]) -> None:
    """Alert transitions go into the change log with the transaction that made them; the live
    publisher (dashboard) sends them, sequenced, to everyone who may see the station."""
    emit(ALERT_CHANGED, {"events": list(event_ids)})


# --- evaluation of ingested readings ---------------------------------------------------------


@dataclass
class _History:
    """One station's recent readings, oldest first, with their quality flags."""

    micros: np.ndarray  # microseconds since the epoch, exact
    times: np.ndarray  # epoch seconds
    values: np.ndarray
    suspect: np.ndarray  # flagged on ingest: never moves an alert
    newest: datetime  # newest reading of the station (the changed state's)
    _jumps: dict = field(default_factory=dict)
    _usable: dict = field(default_factory=dict)
    _figures: dict = field(default_factory=dict)

    @classmethod
    def from_series(cls, series, newest: datetime) -> "_History":
        micros, values, suspect = series if series is not None else ([], [], [])
        micros = np.asarray(micros, dtype=np.int64)
        return cls(
            micros=micros,
            times=micros / 1e6,  # the same double as datetime.timestamp() gives
            values=np.asarray(values, dtype=float),
            suspect=np.asarray(suspect, dtype=bool),
            newest=newest,
        )

    def stamp(self, index: int) -> datetime:
        return from_micros(int(self.micros[index]))

    def jumps_and_spikes(self, limits) -> tuple[np.ndarray, np.ndarray]:
        """`jumps_and_spikes` of these readings, once per station and limits (a river's threshold and
        rate-of-rise rules judge the same readings by the same limits)."""
        found = self._jumps.get(limits)
        if found is None:
            found = self._jumps[limits] = jumps_and_spikes(self.times, self.values, limits)
        return found

    def usable(self, limits) -> "_Usable":
        """The readings rules judged by `limits` may use, once per station and limits like the jumps."""
        found = self._usable.get(limits)
        if found is None:
            jump, spike = self.jumps_and_spikes(limits)
            usable = ~spike & ~self.suspect
            found = self._usable[limits] = _Usable(
                jump=jump,
                usable=usable,
                stepped=~jump & ~self.suspect,
                times=self.times[usable],
                values=self.values[usable],
                prefix_end=np.cumsum(usable),
                positions=np.flatnonzero(usable),
                figures=self._figures.setdefault(limits, {}),
            )
        return found

    @property
    def stamps(self) -> list[datetime]:
        """Every reading's time (only the rare unconfirmed-alert path needs them all)."""
        return [from_micros(int(micros)) for micros in self.micros]


@dataclass
class _Usable:
    """A station's readings as the rules judged by one set of plausibility limits see them."""

    jump: np.ndarray  # jumped implausibly (`jumps_and_spikes`)
    usable: np.ndarray  # not a spike, not flagged: what measures are computed from
    stepped: np.ndarray  # not a jump, not flagged: a step of the level state machine
    times: np.ndarray  # of the usable readings
    values: np.ndarray
    prefix_end: np.ndarray  # usable readings up to and including each reading
    positions: np.ndarray  # of the usable readings among all
    # Rates and trend of a usable prefix, by its length: what `_metrics` reports beside a measure,
    # the same for every rule of the station (a river's threshold and rate-of-rise alerts both).
    figures: dict


def _fixed_ladder(ladders: dict, rule: AlertRule, thresholds: list[Threshold], *, reading: bool = False):
    """The rule's ladder (`reading`: the station's ladder on the reading itself, `reading_steps`) when
    none of the station's thresholds was ever edited, so the same at every time; None otherwise (each
    reading is judged by the values in force then). Kept in `ladders` (the catalog cache's, valid
    under one catalog stamp) by what `rule_steps` reads of the rule."""
    edited = ladders.get((rule.station_id, "edited"))
    if edited is None:
        edited = ladders[(rule.station_id, "edited")] = any(threshold.valid_from for threshold in thresholds)
    if edited:
        return None
    key = (rule.station_id, "reading") if reading else (rule.station_id, rule.kind, rule.window, rule.value, rule.level)
    steps = ladders.get(key)
    if steps is None:
        steps = ladders[key] = rulebook.reading_steps(thresholds) if reading else rulebook.rule_steps(rule, thresholds)
    return steps


def _stays_closed(rule: AlertRule, thresholds: list[Threshold], history: _History, first: int, ladders: dict) -> bool:
    """Whether stepping a threshold rule without an open alert through readings `first`... cannot open
    one: no reading reaches the lowest rung of the ladder in force when it was taken. `next_level` from
    level 0 needs the newest reading to meet a rung, so every step would stay at 0; spikes and flags
    only remove readings, so looking at all of them is safe. Most stations of a batch end here."""
    if rule.kind != Kind.THRESHOLD:
        return False
    sign = 1.0 if rule.direction == AlertRule.Direction.RISING else -1.0
    steps = _fixed_ladder(ladders, rule, thresholds)
    if steps is not None:
        return not steps or float((sign * history.values[first:]).max()) < min(sign * step.value for step in steps)
    for index in range(first, len(history.values)):
        steps = rulebook.rule_steps(rule, thresholds, at=history.stamp(index))
        if steps and sign * history.values[index] >= min(sign * step.value for step in steps):
            return False
    return True


def _never_meets(steps, hysteresis, usable_measure: np.ndarray, prefix_end: np.ndarray, first: int, stepped: np.ndarray) -> bool:
    """Whether no reading stepped from `first` on (`stepped`: not a jump, not flagged) has a measure at
    the lowest rung of `steps`. From level 0, `next_level` raises only on a newest measure that meets
    a rung, so every such step stays at 0: the loop over them can be skipped (a rate-of-rise rule in
    calm water, a threshold rule whose ladder `_stays_closed` could not rule out by values alone)."""
    if not steps:
        return True
    at = prefix_end[first:][stepped[first:]] - 1
    if not len(at):
        return True
    sign = 1.0 if hysteresis.rising else -1.0
    lowest = min(sign * step.value for step in steps)
    with np.errstate(invalid="ignore"):
        return not bool((sign * usable_measure[at] >= lowest).any())


def _rain_totals(times: np.ndarray, values: np.ndarray) -> dict[str, float]:
    totals = {}
    for window in rulebook.RAIN_REPORT_WINDOWS:
        minutes = int(window.total_seconds() // 60)
        label = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}min"
        totals[label] = round(float(window_sums(times, values, window)[-1]), 2)
    return totals


def _metrics(
    rule: AlertRule, station: Station, thresholds: list[Threshold], times: np.ndarray, values: np.ndarray,
    measure: float, level: int, *, at: datetime, ladders: dict, figures: dict | None = None,
) -> dict:
    """What an alert reports beside its measure: rates of rise and time to the next level, or rain totals.
    `figures`: rates and trends already computed for prefixes of the same readings, by length (`_Usable`)."""
    metrics: dict = {"reading": float(values[-1]), "measure": _finite(measure)}
    if station.kind == StationKind.RAIN:
        metrics["rain"] = _rain_totals(times, values)
        return metrics
    found = None if figures is None else figures.get(len(times))
    if found is None:
        found = (
            {int(w.total_seconds() // 60): _finite(rate_of_rise_now(times, values, w)) for w in RATE_WINDOWS},
            linear_trend(times, values),
        )
        if figures is not None:
            figures[len(times)] = found
    rates, trend = found
    metrics["rates_per_hour"] = {str(minutes): rate for minutes, rate in rates.items()}
    metrics["rate_of_rise_per_hour"] = rates[30]
    threshold_rule = rule.kind == Kind.THRESHOLD
    steps = _fixed_ladder(ladders, rule, thresholds, reading=not threshold_rule)
    if threshold_rule:
        steps = rulebook.rule_steps(rule, thresholds, at=at) if steps is None else steps
        rising = rule.direction == AlertRule.Direction.RISING
        current = level
    else:
        steps = rulebook.reading_steps(thresholds, at=at) if steps is None else steps
        rising = True
        current = max((step.level for step in steps if values[-1] >= step.value), default=0)
    forecast = time_to_next(trend, steps, current_level=current, rising=rising)
    metrics["forecast"] = (
        {
            "level": forecast.level,
            "threshold": forecast.threshold,
            "eta_seconds": int(forecast.eta.total_seconds()),
            "uncertainty_seconds": int(forecast.uncertainty.total_seconds()),
        }
        if forecast
        else None
    )
    return metrics


def _finite(value) -> float | None:
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def _evaluate_rule(
    batch: _Transitions, rule: AlertRule, station: Station, thresholds: list[Threshold], history: _History
) -> None:
    """Step the rule through the readings it has not seen yet, in time order.

    Quality-flagged readings are left out of every measure and are never a step. The spike check runs
    over all readings, flagged or not, so a jump that ingestion already flagged and the next reading
    confirmed is not held back a second time.
    """
    _settle_unconfirmed(batch, rule, history)  # QC: see "unconfirmed alerts" below
    last = len(history.micros) - 1
    newest_is_new = last >= 0 and (rule.evaluated_until is None or history.stamp(last) > rule.evaluated_until)
    if rule.evaluated_until is None:
        # A new rule judges the present, not the history that happens to be loaded.
        stepped_after = history.newest - timedelta(microseconds=1)
    else:
        stepped_after = max(rule.evaluated_until, history.newest - CATCH_UP)
    first = int(np.searchsorted(history.micros, to_micros(stepped_after), side="right"))
    if rule.pk not in batch.open_alerts and (first == len(history.micros) or _stays_closed(rule, thresholds, history, first, batch.ladders)):
        rule.evaluated_until = max(history.newest, rule.evaluated_until or history.newest)
        return
    hysteresis = rulebook.rule_hysteresis(rule)
    seen = history.usable(rulebook.rule_plausibility(rule, station))
    jump, usable, prefix_end = seen.jump, seen.usable, seen.prefix_end
    # A reading that is stepped is itself usable (a spike is a jump; flagged ones are skipped), so the
    # readings judged at step k are a prefix of the usable ones, and every measure is causal (a value
    # depends on earlier readings only): the measure is computed once, not once per reading.
    usable_times, usable_values = seen.times, seen.values
    usable_measure = rulebook.rule_measure(rule, usable_times, usable_values)
    # Thresholds never edited have one ladder whatever the time: looked up once, not per reading.
    fixed_steps = _fixed_ladder(batch.ladders, rule, thresholds)
    if fixed_steps is not None and rule.pk not in batch.open_alerts and _never_meets(
        fixed_steps, hysteresis, usable_measure, prefix_end, first, seen.stepped
    ):
        first = len(history.micros)  # no step can open an alert: nothing to step through
    # Flagged readings and jumps not yet confirmed or refuted by the next reading are not steps.
    steps_at = np.flatnonzero(seen.stepped[first:]) + first
    stepper = (
        LevelSteps(usable_times, usable_measure, hysteresis, first_end=int(prefix_end[steps_at[0]]))
        if len(steps_at)
        else None
    )

    def move(k: int, level: int, stamp: datetime) -> None:
        end = int(prefix_end[k])
        times, values, measure = usable_times[:end], usable_values[:end], usable_measure[:end]
        batch.move(
            rule, level, value=_finite(measure[-1]), observed_at=stamp,
            metrics=_metrics(
                rule, station, thresholds, times, values, measure[-1], level, at=stamp, ladders=batch.ladders,
                figures=seen.figures,
            ),
        )

    def current_level() -> int:
        alert = batch.open_alerts.get(rule.pk)
        return alert.level if alert else 0

    if stepper is not None and fixed_steps is not None:
        # One ladder for every step: the steps up to the next transition are judged at once.
        ends = prefix_end[steps_at]
        at = 0
        while at < len(steps_at):
            current = current_level()
            answers = stepper.levels(ends[at:], fixed_steps, current=current)
            moved = np.flatnonzero(answers != current)
            if not len(moved):
                break
            at += int(moved[0])
            k = int(steps_at[at])
            move(k, int(answers[moved[0]]), history.stamp(k))
            at += 1
    elif stepper is not None:
        for k in steps_at.tolist():
            current = current_level()
            # Each reading is judged by the thresholds in force when it was taken.
            stamp = history.stamp(k)
            level = stepper.level(int(prefix_end[k]), rulebook.rule_steps(rule, thresholds, at=stamp), current=current)
            if level != current:
                move(k, level, stamp)
    rule.evaluated_until = max(history.newest, rule.evaluated_until or history.newest)

    alert = batch.open_alerts.get(rule.pk)
    if alert is not None and len(history.times):
        # Keep the open alert's figures current even when its level does not move, from the usable
        # readings without a newest one that jumped (measures are causal: a prefix's measure is the
        # prefix of the measure).
        kept = len(usable_times) - int(bool(usable[-1] and jump[-1]))
        if kept:
            observed_at = history.stamp(int(seen.positions[kept - 1]))
            if observed_at != alert.last_observed_at:
                times, values, measure = usable_times[:kept], usable_values[:kept], usable_measure[:kept]
                _apply_metrics(
                    alert, value=_finite(measure[-1]), observed_at=observed_at,
                    metrics=_metrics(
                        rule, station, thresholds, times, values, measure[-1], alert.level, at=observed_at,
                        ladders=batch.ladders, figures=seen.figures,
                    ),
                )
                batch.touch(alert)
    if newest_is_new and (jump[-1] or history.suspect[-1]):
        _raise_unconfirmed(batch, rule, thresholds, history)


# --- unconfirmed alerts: QC flags, never silences ---------------------------------------------
#
# A jump is not acted on while it is the newest reading (see alerts.evaluation). But a jump above a
# high threshold may be a flash flood: it raises the level at once for HQ, marked unconfirmed
# (Alert.unconfirmed_at), never shown to the public; the next reading confirms it (the mark is
# cleared and the level goes on by the ordinary rules) or withdraws it (the alert goes back to the
# level before, or resolves). Kept apart from the reading loop above on purpose.

# The lowest level a suspect reading raises unconfirmed: 警戒レベル3相当 and up.
UNCONFIRMED_MIN_LEVEL = 3
UNCONFIRMED_NOTE = "unconfirmed: an implausible jump, raised at once for HQ until the next reading"
CONFIRMED_NOTE = "confirmed by the next reading"
WITHDRAWN_NOTE = "withdrawn: the next reading came back, the jump was a spike"


def _raise_unconfirmed(batch: _Transitions, rule: AlertRule, thresholds: list[Threshold], history: _History) -> None:
    """The newest reading, new in this batch, was held back as a jump: raise the level it reaches,
    if high, unconfirmed."""
    if rule.kind != Kind.THRESHOLD or rule.direction != AlertRule.Direction.RISING:
        return
    alert = batch.open_alerts.get(rule.pk)
    if alert is not None and alert.unconfirmed_at is not None:
        return  # one unconfirmed raise at a time; the next reading settles it first
    value, observed_at = float(history.values[-1]), history.stamps[-1]
    steps = rulebook.rule_steps(rule, thresholds, at=observed_at)
    level = max((step.level for step in steps if value >= step.value), default=0)
    current = alert.level if alert else 0
    if level < UNCONFIRMED_MIN_LEVEL or level <= current:
        return
    batch.move(rule, level, value=_finite(value), observed_at=observed_at, metrics={"unconfirmed": True},
               note=UNCONFIRMED_NOTE)
    raised = batch.open_alerts[rule.pk]
    raised.unconfirmed_at, raised.unconfirmed_from_level = observed_at, current


def _settle_unconfirmed(batch: _Transitions, rule: AlertRule, history: _History) -> None:
    """A reading after the unconfirmed one has come: confirm the raise, or withdraw it when the next
    reading is nearer the value before the jump than the jump itself (it came back: a spike)."""
    alert = batch.open_alerts.get(rule.pk)
    if alert is None or alert.unconfirmed_at is None:
        return
    at = next((i for i, stamp in enumerate(history.stamps) if stamp == alert.unconfirmed_at), None)
    if at is not None and at + 1 >= len(history.stamps):
        return  # still the newest reading
    came_back = at is not None and at > 0 and (
        abs(history.values[at + 1] - history.values[at - 1]) < abs(history.values[at + 1] - history.values[at])
    )
    before = alert.unconfirmed_from_level or 0
    if not (came_back and before == 0):
        # An alert that only ever was a spike keeps its mark when resolved: never confirmed, never public.
        alert.unconfirmed_at, alert.unconfirmed_from_level = None, None
    batch.touch(alert)
    next_stamp = history.stamps[at + 1] if at is not None else history.newest
    next_value = _finite(history.values[at + 1]) if at is not None else None
    if came_back:
        batch.move(rule, before, value=next_value, observed_at=next_stamp, metrics={"withdrawn": True},
                   note=WITHDRAWN_NOTE)
    else:
        batch.events.append(
            AlertEvent(alert=alert, kind=AlertEvent.Kind.NOTE, level=alert.level, value=next_value,
                       observed_at=next_stamp, at=batch.now, note=CONFIRMED_NOTE)
        )


def evaluate_station_changes(states: list[StationState]) -> list[AlertEvent]:
    """Apply every rule of the changed stations to their new readings (see `evaluate_stations`)."""
    return evaluate_stations([state.station_id for state in states])


def evaluate_stations(station_ids) -> list[AlertEvent]:
    """Apply every rule of these stations to the readings it has not judged yet.

    Loads stations, thresholds, rules (locked, so concurrent batches for a station queue up), open
    alerts and the recent history of all the stations in a fixed number of queries, then writes the
    transitions, their events and deliveries in one transaction. Notifications go out after commit.
    Each station's newest reading is read after its rules are locked: an evaluator that waited for
    another one's locks judges what that one committed, never an older newest reading (which would
    set an open alert's figures back)."""
    station_ids = sorted(set(station_ids))
    if not station_ids:
        return []
    now = timezone.now()
    with transaction.atomic():
        catalog = _catalog_cache.current()
        stations = catalog.stations_of(station_ids)
        thresholds = catalog.thresholds_of(station_ids)
        rules = _locked_rules(station_ids)
        newest, marks = _newest_readings(station_ids)
        missing = _missing_default_rules(
            {pk: station for pk, station in stations.items() if pk in newest}, thresholds, rules, catalog.default_keys
        )
        if missing:
            AlertRule.objects.bulk_create(missing, ignore_conflicts=True)
            rules = _locked_rules(station_ids)
            newest, marks = _newest_readings(station_ids)
        rules = [rule for rule in rules if rule.station_id in newest]
        station_ids = sorted(newest)
        batch = _Transitions(now=now, scheme=_active_scheme(), ladders=catalog.ladders)
        batch.open_alerts = {
            alert.rule_id: alert
            for queryset in of_stations(
                Alert.objects.select_for_update(of=("self",)).exclude(state=Alert.State.RESOLVED).order_by("pk"),
                station_ids,
            )
            for alert in loaded_instances(queryset, micros=ALERT_TIMES)
        }
        rules_by_station: dict[int, list[AlertRule]] = defaultdict(list)
        for rule in rules:
            # Not `rule.station = …`: the descriptor's checks per rule cost more than the lookups below.
            rules_by_station[rule.station_id].append(rule)

        ranges = {}
        for station_id, station_rules in rules_by_station.items():
            station = stations[station_id]
            stepping = [rule for rule in station_rules if rule.is_enabled and rule.kind != Kind.STALE]
            if not stepping:
                continue
            oldest_cursor = min(
                (rule.evaluated_until or newest[station_id]) for rule in stepping
            )
            start = max(oldest_cursor, newest[station_id] - CATCH_UP)
            lookback = max(rulebook.rule_lookback(rule, station) for rule in stepping)
            ranges[station_id] = (start - lookback, newest[station_id])
        history_rows = recent_readings.series(ranges, marks, catalog.stamp)

        stepped: list[AlertRule] = []
        histories: dict[int, _History] = {}
        for rule in rules:
            station = stations[rule.station_id]
            alert = batch.open_alerts.get(rule.pk)
            if not rule.is_enabled:
                if alert is not None:
                    batch.resolve(alert, note="rule disabled")
                continue
            if rule.kind == Kind.STALE:
                limit = rulebook.station_interval(station) * rule.stale_factor
                if alert is not None and now - newest[station.pk] <= limit:
                    batch.resolve(alert, observed_at=newest[station.pk], note="reporting again")
                continue
            history = histories.get(station.pk)
            if history is None:  # built once per station, read by each of its rules
                history = histories[station.pk] = _History.from_series(history_rows.get(station.pk), newest[station.pk])
            _evaluate_rule(batch, rule, station, thresholds[station.pk], history)
            stepped.append(rule)
        _cursors_save(stepped)
        return batch.save()


def _cursors_save(rules: list[AlertRule]) -> None:
    """Store how far each rule has stepped, without a CASE per row: arrays of ids and microseconds
    on PostgreSQL (integers join at C speed); elsewhere one UPDATE per distinct time (a gateway tick
    moves every station to the same time)."""
    if connection.vendor == "postgresql":
        if rules:
            quote = connection.ops.quote_name
            table, column = quote(AlertRule._meta.db_table), quote(AlertRule._meta.get_field("evaluated_until").column)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} AS t SET {column} = {FROM_MICROS_SQL.format('s.micros')} "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS s(id, micros) WHERE t.id = s.id",
                    [pg_array([rule.pk for rule in rules]), pg_array([to_micros(rule.evaluated_until) for rule in rules])],
                )
        return
    by_time: dict[datetime, list[int]] = defaultdict(list)
    for rule in rules:
        by_time[rule.evaluated_until].append(rule.pk)
    for until, ids in by_time.items():
        for chunk in _chunks(ids):
            AlertRule.objects.filter(pk__in=chunk).update(evaluated_until=until)


def _newest_readings(station_ids: list[int]) -> tuple[dict[int, datetime], dict[int, int]]:
    """{station id: its newest reading's time} and {station id: its history mark} (alerts.recent),
    for the stations that have a reading."""
    newest: dict[int, datetime] = {}
    marks: dict[int, int] = {}
    states = StationState.objects.filter(observed_at__isnull=False)
    if connection.vendor == "postgresql":
        # As microseconds: no timestamp parsed in Python (see `bulkwrite.loaded_instances`).
        micros = TO_MICROS_SQL.format(f"{connection.ops.quote_name(StationState._meta.db_table)}.observed_at")
        for queryset in of_stations(states.extra(select={"_micros": micros}), station_ids):
            for station_id, at, mark in queryset.values_list("station_id", "_micros", "history_mark"):
                newest[station_id], marks[station_id] = from_micros(at), mark
        return newest, marks
    for queryset in of_stations(states.values_list("station_id", "observed_at", "history_mark"), station_ids):
        for station_id, observed_at, mark in queryset:
            newest[station_id], marks[station_id] = observed_at, mark
    return newest, marks


def _locked_rules(station_ids: list[int]) -> list[AlertRule]:
    rules: list[AlertRule] = []
    for queryset in of_stations(AlertRule.objects.select_for_update().order_by("station_id", "pk"), station_ids):
        rules.extend(loaded_instances(queryset, micros=RULE_TIMES))
    return rules


def _stations_of(station_ids: list[int]) -> list[Station]:
    if connection.vendor == "postgresql":
        return list(filter_ids(Station.objects.select_related("municipality"), "id", station_ids))
    return [station for chunk in _chunks(station_ids) for station in Station.objects.select_related("municipality").filter(pk__in=chunk)]


# --- stale sensors ---------------------------------------------------------------------------


def stale_sensors_check(*, now: datetime | None = None) -> list[AlertEvent]:
    """Open an alert for every station silent for longer than its expected interval × the rule's
    factor, and resolve those that report again. Runs periodically (`check_stale_sensors`, beat)."""
    now = now or timezone.now()
    with transaction.atomic():
        unmonitored = list(
            Station.objects.filter(is_active=True, expected_interval__isnull=False).exclude(
                Exists(AlertRule.objects.filter(station=OuterRef("pk"), kind=Kind.STALE, is_default=True))
            )
        )
        if unmonitored:
            AlertRule.objects.bulk_create(
                [rule for station in unmonitored for rule in rulebook.default_rules(station, []) if rule.kind == Kind.STALE],
                ignore_conflicts=True,
            )
        rules = list(
            AlertRule.objects.select_for_update(of=("self",))
            .filter(kind=Kind.STALE)
            .select_related("station", "station__municipality", "station__state")
            .order_by("station_id", "pk")
        )
        batch = _Transitions(now=now, scheme=_active_scheme())
        batch.open_alerts = {
            alert.rule_id: alert
            for alert in Alert.objects.select_for_update(of=("self",))
            .filter(rule__kind=Kind.STALE)
            .exclude(state=Alert.State.RESOLVED)
            .order_by("pk")
        }
        for rule in rules:
            station = rule.station
            alert = batch.open_alerts.get(rule.pk)
            if not (rule.is_enabled and station.is_active and station.expected_interval):
                if alert is not None:
                    batch.resolve(alert, note="not monitored any more")
                continue
            try:
                last = station.state.observed_at
            except StationState.DoesNotExist:
                last = None
            silent = now - (last or station.created_at)
            limit = station.expected_interval * rule.stale_factor
            minutes = round(silent.total_seconds() / 60, 1)
            metrics = {"silent_minutes": minutes, "last_reading_at": local_iso(last)}
            if silent > limit:
                if alert is None:
                    batch.move(rule, rule.level or rulebook.DEFAULT_STALE_LEVEL, value=minutes, observed_at=last, metrics=metrics)
                else:
                    alert.last_value = minutes
                    batch.touch(alert)
            elif alert is not None:
                batch.resolve(alert, value=minutes, observed_at=last, metrics=metrics, note="reporting again")
        return batch.save()


# --- people ----------------------------------------------------------------------------------


def alert_acknowledge(alert: Alert, user, *, now: datetime | None = None, note: str = "") -> AlertEvent | None:
    """Record that `user` has seen the alert, with an optional note (what they are doing about it),
    kept on the acknowledgement and in the audit log. Idempotent per user: a second acknowledgement
    by the same user records nothing and returns None (a later note is `alert_note_add`); other
    operators' acknowledgements are each recorded once. The alert stays acknowledged through later
    level changes (which are notified anyway)."""
    text = note_text(note)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if locked.state == Alert.State.RESOLVED:
            raise AlertStateError("The alert is already resolved.")
        if AlertEvent.objects.filter(alert=locked, kind=AlertEvent.Kind.ACKNOWLEDGED, actor=user).exists():
            return None
        try:
            # The unique constraint is the last word if the row lock was not (another process,
            # a database without row locks): the loser records nothing.
            with transaction.atomic():
                event = AlertEvent.objects.create(
                    alert=locked, kind=AlertEvent.Kind.ACKNOWLEDGED, level=locked.level, value=locked.last_value,
                    actor=user, at=now, note=text,
                )
        except IntegrityError:
            return None
        if locked.state == Alert.State.OPEN:
            locked.state = Alert.State.ACKNOWLEDGED
            locked.acknowledged_at = now
            locked.acknowledged_by = user
        locked.updated_at = now
        locked.save(update_fields=["state", "acknowledged_at", "acknowledged_by", "updated_at"])
        audit_record(
            action=AuditEvent.Action.ALERT_ACKNOWLEDGED, actor=user, municipality=locked.station.municipality_id,
            target=f"alert {locked.pk} {locked.station.code}",
            detail={"level": locked.level, **({"note": text} if text else {})},
        )
        alert_events_emit([event.pk])
    _refresh(alert, locked)
    return event


def alert_resolve(alert: Alert, user, *, now: datetime | None = None, note: str = "") -> AlertEvent | None:
    """Close the alert by hand. Resolving a resolved alert does nothing and returns None. If the
    readings still meet the rule, the next reading opens a new alert: to silence a broken gauge,
    disable its rule."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if locked.state == Alert.State.RESOLVED:
            return None
        batch = _Transitions(now=now, scheme=None)
        event = batch.resolve(locked, note=note or "resolved by hand", actor=user)
        batch.save()
        audit_record(
            action=AuditEvent.Action.ALERT_RESOLVED, actor=user, municipality=locked.station.municipality_id,
            target=f"alert {locked.pk} {locked.station.code}", detail={"level": locked.level},
        )
    _refresh(alert, locked)
    return event


NOTE_MAX_LENGTH = AlertEvent._meta.get_field("note").max_length


class AlertNoteError(ValueError):
    pass


def note_text(note) -> str:
    """A person's note on an alert, normalised; raises AlertNoteError saying what is wrong. Empty
    stays empty (an acknowledgement may come without one)."""
    text = unicodedata.normalize("NFKC", note if isinstance(note, str) else "").strip()
    if len(text) > NOTE_MAX_LENGTH:
        raise AlertNoteError(f"note: at most {NOTE_MAX_LENGTH} characters / {NOTE_MAX_LENGTH}文字以内")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise AlertNoteError("note: control characters are not allowed / 制御文字は使えません")
    return text


def alert_note_add(alert: Alert, user, note: str, *, now: datetime | None = None) -> AlertEvent:
    """Add a note to the alert's trail (e.g. a downstream town telling the owner what it sees), in the
    owner town's audit log. Who may is the caller's question (tenancy.permissions, Action.ADD_NOTE)."""
    text = note_text(note)
    if not text:
        raise AlertNoteError("note: write a few words / メモを入力してください")
    now = now or timezone.now()
    with transaction.atomic():
        event = AlertEvent.objects.create(
            alert=alert, kind=AlertEvent.Kind.NOTE, level=alert.level, value=alert.last_value, actor=user, at=now,
            note=text,
        )
        audit_record(
            action=AuditEvent.Action.ALERT_NOTE_ADDED, actor=user, municipality=alert.station.municipality_id,
            target=f"alert {alert.pk} {alert.station.code}", detail={"level": alert.level, "note": text},
        )
        alert_events_emit([event.pk])
    return event


def _refresh(alert: Alert, saved: Alert) -> None:
    for name in ("state", "acknowledged_at", "acknowledged_by_id", "resolved_at", "resolved_by_id", "updated_at"):
        setattr(alert, name, getattr(saved, name))


# --- notification --------------------------------------------------------------------------------


def _deliveries_create(events: list[AlertEvent], *, now: datetime) -> int:
    """Queue the notified events for every enabled channel of every town that may see the station,
    as far as the channel's scope asks for it (all it may see, its own, or own plus subscribed)."""
    notified = [event for event in events if event.kind in AlertEvent.NOTIFIED_KINDS]
    if not notified:
        return 0
    channels = list(NotificationChannel.objects.filter(enabled=True))
    if not channels:
        return 0
    station_ids = {event.alert.station_id for event in notified}
    audiences = station_audiences(station_ids, {channel.municipality_id for channel in channels})
    owners = dict(Station.objects.filter(pk__in=station_ids).values_list("pk", "municipality_id"))
    subscribed: dict[int, set[int]] = defaultdict(set)
    for channel_id, station_id in NotificationChannel.stations.through.objects.filter(
        notificationchannel_id__in=[c.pk for c in channels if c.scope == NotificationChannel.Scope.SUBSCRIBED],
        station_id__in=station_ids,
    ).values_list("notificationchannel_id", "station_id"):
        subscribed[channel_id].add(station_id)

    def wants(channel: NotificationChannel, station_id: int) -> bool:
        if channel.municipality_id not in audiences.get(station_id, ()):
            return False  # the town may not (or no longer) see the station
        if channel.scope == NotificationChannel.Scope.VISIBLE or owners.get(station_id) == channel.municipality_id:
            return True
        return channel.scope == NotificationChannel.Scope.SUBSCRIBED and station_id in subscribed[channel.pk]

    pairs = [
        (event, channel)
        for event in sorted(notified, key=lambda event: (event.at, event.pk))
        for channel in channels
        if wants(channel, event.alert.station_id)
    ]
    limiter = _DigestLimiter(now=now, pairs=pairs)
    deliveries = []
    for event, channel in pairs:
        digest_at = limiter.digest_at(event, channel)
        deliveries.append(
            Delivery(event=event, channel=channel, next_attempt_at=digest_at or now, created_at=now, digest_at=digest_at)
        )
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    return len(deliveries)


def digest_window(channel: NotificationChannel) -> timedelta:
    if channel.digest_window is not None:
        return channel.digest_window
    return timedelta(seconds=settings.ALERT_DIGEST_WINDOW_SECONDS)


class _DigestLimiter:
    """A channel's rate limit per station, so a storm does not send 25 mails in 7 minutes for one
    gauge. An update goes at once when nothing was told to the channel about the station within its
    window, or when its level is above every level told (or queued) within it: the first alert and
    every escalation are never delayed. Other updates (same or lower level, ends) join the station's
    digest, sent one window after the last message; one digest gathers all of them.

    State comes from the channel's recent deliveries (read once per batch), so the limit holds
    across change-log batches and processes."""

    def __init__(self, *, now: datetime, pairs: list[tuple[AlertEvent, NotificationChannel]]):
        self.now = now
        self.windows = {channel.pk: digest_window(channel) for _, channel in pairs}
        # (channel, station) -> [last message time, highest level told or queued, pending digest time]
        self.state: dict[tuple[int, int], list] = {}
        longest = max(self.windows.values(), default=timedelta(0))
        if longest <= timedelta(0):
            return
        recent = Delivery.objects.filter(
            channel_id__in=[pk for pk, window in self.windows.items() if window > timedelta(0)],
            event__alert__station_id__in={event.alert.station_id for event, _ in pairs},
        ).filter(Q(created_at__gte=now - longest) | Q(digest_at__gte=now - longest))
        for channel_id, station_id, level, created_at, digest_at in recent.values_list(
            "channel_id", "event__alert__station_id", "event__level", "created_at", "digest_at"
        ).order_by("created_at", "pk"):
            window = self.windows[channel_id]
            sent_at = digest_at or created_at
            if sent_at < now - window:
                continue
            last, told, pending = self.state.setdefault((channel_id, station_id), [None, 0, None])
            if digest_at is not None and digest_at > now:
                pending = digest_at
            else:
                last = sent_at if last is None else max(last, sent_at)
            self.state[(channel_id, station_id)] = [last, max(told, level), pending]

    def digest_at(self, event: AlertEvent, channel: NotificationChannel) -> datetime | None:
        """None: send at once; else the time of the digest this update joins."""
        window = self.windows[channel.pk]
        if window <= timedelta(0):
            return None
        key = (channel.pk, event.alert.station_id)
        last, told, pending = self.state.get(key, [None, 0, None])
        if (last is None and pending is None) or event.level > told:
            self.state[key] = [self.now, max(told, event.level), pending]
            return None
        if pending is None:
            pending = max((last or self.now) + window, self.now)
        self.state[key] = [last, told, pending]
        return pending


def release_deliveries_create(transition_ids, *, now: datetime | None = None) -> int:
    """Queue dam release notice transitions (releases.ReleaseTransition) for every enabled channel of
    the towns downstream of the release (the dam's own town included). A notice is addressed to
    towns, not to a station: every channel of such a town gets it, whatever its scope. Once per
    transition and channel (the unique constraint), so a repeated change-log batch queues nothing new."""
    now = now or timezone.now()
    transitions = list(ReleaseTransition.objects.filter(pk__in=list(transition_ids)).select_related("release"))
    if not transitions:
        return 0
    towns_of = defaultdict(set)
    for release_id, town_id in DamRelease.downstream.through.objects.filter(
        damrelease_id__in={t.release_id for t in transitions}
    ).values_list("damrelease_id", "municipality_id"):
        towns_of[release_id].add(town_id)
    channels = list(NotificationChannel.objects.filter(enabled=True, municipality_id__in=set().union(*towns_of.values())))
    deliveries = [
        Delivery(release_transition=transition, channel=channel, next_attempt_at=now, created_at=now)
        for transition in transitions
        for channel in channels
        if channel.municipality_id in towns_of[transition.release_id]
    ]
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    if deliveries:
        transaction.on_commit(_dispatch_soon, robust=True)
    return len(deliveries)


def order_deliveries_create(order_event_ids, *, now: datetime | None = None) -> int:
    """Queue the steps of evacuation orders (orders.OrderEvent: issued, raised, lowered, districts
    changed, lifted) for every enabled channel of the issuing town, whatever its scope: an order is
    the town's own decision, addressed to its people, not to a station. Once per step and channel
    (the unique constraint), so a repeated change-log batch queues nothing new."""
    now = now or timezone.now()
    town_of = dict(
        OrderEvent.objects.filter(pk__in=list(order_event_ids)).values_list("pk", "order__municipality_id")
    )
    if not town_of:
        return 0
    channels = list(NotificationChannel.objects.filter(enabled=True, municipality_id__in=set(town_of.values())))
    deliveries = [
        Delivery(order_event_id=event_id, channel=channel, next_attempt_at=now, created_at=now)
        for event_id, town_id in sorted(town_of.items())
        for channel in channels
        if channel.municipality_id == town_id
    ]
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    if deliveries:
        transaction.on_commit(_dispatch_soon, robust=True)
    return len(deliveries)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def deliveries_dispatch(*, worker_id: str | None = None, now: datetime | None = None, limit: int = 100) -> DispatchReport:
    """Claim due deliveries, send them, and record the outcome. Safe to run in several processes.

    A claim is atomic (SKIP LOCKED where the database has it, otherwise a conditional UPDATE whose
    row count says who won), so two workers never hold the same delivery. A worker that dies while
    sending leaves the row in "sending"; after DELIVERY_LEASE another worker claims it again
    (at least once). A sent delivery is never claimed again.
    """
    worker_id = worker_id or default_worker_id()
    now = now or timezone.now()
    report = DispatchReport()
    claimed_ids = _deliveries_claim(worker_id=worker_id, now=now, limit=limit)
    report.claimed = len(claimed_ids)
    if not claimed_ids:
        return report
    deliveries = list(
        Delivery.objects.filter(pk__in=claimed_ids, claimed_by=worker_id, state=Delivery.State.SENDING)
        .select_related("channel")
        .order_by("pk")
    )
    documents = {event.pk: notification_document(event) for event in events_for_notification({d.event_id for d in deliveries})}
    release_documents = release_notification_documents(
        {d.release_transition_id for d in deliveries if d.release_transition_id}
    )
    order_documents = order_notification_documents({d.order_event_id for d in deliveries if d.order_event_id})
    for batch in _messages(deliveries, documents):
        first = batch[0]
        if first.release_transition_id:
            document = release_documents[first.release_transition_id]
        elif first.order_event_id:
            document = order_documents[first.order_event_id]
        elif len(batch) == 1:
            document = documents[first.event_id]
        else:
            document = digest_document([documents[delivery.event_id] for delivery in batch])
        try:
            sender_for(first.channel.kind)(first.channel, document)
        except TransportError as exc:
            outcomes = [
                _delivery_failed(delivery, worker_id=worker_id, now=now, error=str(exc), permanent=exc.permanent)
                for delivery in batch
            ]
        except Exception as exc:  # a bug in a transport must not stop the other deliveries
            logger.exception("deliveries %s crashed", [delivery.pk for delivery in batch])
            outcomes = [
                _delivery_failed(delivery, worker_id=worker_id, now=now, error=repr(exc), permanent=False)
                for delivery in batch
            ]
        else:
            outcomes = [_delivery_sent(delivery, now=now) for delivery in batch]
        for outcome in outcomes:
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _messages(deliveries: list[Delivery], documents: dict[int, dict]) -> list[list[Delivery]]:
    """The claimed deliveries as messages: one each, except the updates batched into one station's
    digest for one channel (same `digest_at`), which go together, oldest first."""
    messages: list[list[Delivery]] = []
    digests: dict[tuple, list[Delivery]] = {}
    for delivery in deliveries:
        if delivery.digest_at is None or not delivery.event_id:
            messages.append([delivery])
            continue
        station = documents[delivery.event_id]["alert"]["station"]["code"]
        key = (delivery.channel_id, delivery.digest_at, station)
        if key not in digests:
            digests[key] = []
            messages.append(digests[key])
        digests[key].append(delivery)
    for batch in digests.values():
        batch.sort(key=lambda delivery: (documents[delivery.event_id]["event"]["at"] or "", delivery.event_id))
    return messages


def _deliveries_claim(*, worker_id: str, now: datetime, limit: int) -> list[int]:
    due = Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Delivery.State.SENDING, claimed_at__lt=now - DELIVERY_LEASE
    )
    claim = dict(state=Delivery.State.SENDING, claimed_by=worker_id, claimed_at=now, attempts=F("attempts") + 1)
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            ids = list(
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(due)
                .order_by("next_attempt_at", "pk")
                .values_list("pk", flat=True)[:limit]
            )
            if ids:
                Delivery.objects.filter(pk__in=ids).update(**claim)
        return ids
    claimed: list[int] = []
    tried: set[int] = set()
    while len(claimed) < limit:
        # Another worker may win every row we looked at; then look further rather than report "idle".
        candidates = list(
            Delivery.objects.filter(due)
            .exclude(pk__in=tried)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", "state", "claimed_by", "claimed_at")[:limit]
        )
        if not candidates:
            break
        for pk, state, claimed_by, claimed_at in candidates:
            tried.add(pk)
            if state == Delivery.State.PENDING:
                guard = Q(state=Delivery.State.PENDING, claimed_by__isnull=True)
            else:  # reclaiming an expired lease: only if nobody reclaimed it since we looked
                guard = Q(state=Delivery.State.SENDING, claimed_by=claimed_by, claimed_at=claimed_at)
            if Delivery.objects.filter(guard, pk=pk).update(**claim) == 1:
                claimed.append(pk)
                if len(claimed) == limit:
                    break
    return claimed


def _delivery_sent(delivery: Delivery, *, now: datetime) -> str:
    # Whoever holds the claim now, the message is out: mark it so nobody sends it again.
    Delivery.objects.filter(pk=delivery.pk).exclude(state=Delivery.State.SENT).update(
        state=Delivery.State.SENT, sent_at=now, last_error=""
    )
    channel = delivery.channel
    if channel.failing_since is not None or channel.last_error:
        NotificationChannel.objects.filter(pk=channel.pk).update(failing_since=None, last_error="")
    return "sent"


def _delivery_failed(delivery: Delivery, *, worker_id: str, now: datetime, error: str, permanent: bool) -> str:
    error = error[:500]
    mine = Delivery.objects.filter(pk=delivery.pk, claimed_by=worker_id, state=Delivery.State.SENDING)
    if permanent or delivery.attempts >= settings.ALERT_WEBHOOK_MAX_ATTEMPTS:
        mine.update(state=Delivery.State.FAILED, last_error=error)
        NotificationChannel.objects.filter(pk=delivery.channel_id, failing_since__isnull=True).update(failing_since=now)
        NotificationChannel.objects.filter(pk=delivery.channel_id).update(last_error=error)
        logger.warning("delivery %s to channel %s failed for good: %s", delivery.pk, delivery.channel_id, error)
        return "failed"
    backoff = min(RETRY_BASE * 2 ** max(delivery.attempts - 1, 0), RETRY_MAX)
    mine.update(
        state=Delivery.State.PENDING, claimed_by=None, claimed_at=None, next_attempt_at=now + backoff, last_error=error
    )
    return "retrying"


def notification_channel_save(
    *, municipality, kind: str, target: str, secret: str = "", scope: str = NotificationChannel.Scope.VISIBLE,
    stations=(), channel: NotificationChannel | None = None, enabled: bool = True,
    digest_window: timedelta | None = None,
) -> NotificationChannel:
    """Create or change a town's channel; raises django ValidationError with what is wrong.
    `digest_window` None: the platform's default rate limit (ALERT_DIGEST_WINDOW_SECONDS)."""
    channel = channel or NotificationChannel(municipality=municipality)
    channel.kind, channel.target, channel.scope, channel.enabled = kind, target.strip(), scope, enabled
    channel.digest_window = digest_window
    if secret:
        channel.secret = secret
    channel.full_clean()
    with transaction.atomic():
        channel.save()
        channel.stations.set(list(stations) if scope == NotificationChannel.Scope.SUBSCRIBED else [])
    return channel
