"""Trigger rules evaluated from the change log: a changed gauge that reaches a rule's threshold (or
whose forecast — the gauge's learned model, or the trend fallback where the model says so — warns
of it within the rule's minutes, by the same warning rule as the board's pre-alerts) recommends the rule's level for its districts
to the rule's town. A rule fires once per crossing: it is re-armed when the gauge is back below.

A rule on a JMA warning (jma/) fires when the agency has that warning (or its 特別警報) in force for
the rule's town, and is re-armed when the warning is no longer in force.

A recommendation is not raised when an order in force, or an open recommendation, of that town
already covers every district of the rule at the rule's level or above.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from bulkwrite import filter_ids
from forecasts.predict import crossing_text
from forecasts.selectors import forecast_warning, prealert_setting, reach_crossing
from forecasts.services import forecast_current
from jma.selectors import ATTRIBUTION_EN, ATTRIBUTION_JA, jma_warning_matching, jma_warnings_in_force
from sensors.models import Station
from sensors.selectors import local_iso, station_list
from sensors.services import changed_station_ids
from sensors.trends import station_trend
from tenancy.selectors import Viewer

from .models import Order, Recommendation, TriggerRule
from .services import recommendation_open

PLATFORM = Viewer(is_platform_admin=True)


def station_evidence(station: Station, threshold, *, fired_by: str, forecast: dict | None = None) -> dict:
    """What an HQ is shown with a recommendation: gauge, reading, threshold, trend, forecast, time."""
    state = getattr(station, "state", None)
    return {
        "fired_by": fired_by,
        "station": station.code,
        "station_name_ja": station.name_ja,
        "station_name_en": station.name_en,
        "station_municipality": station.municipality.slug,
        "value": state.value if state else None,
        "unit": station.unit,
        "observed_at": local_iso(state.observed_at) if state else None,
        "threshold": threshold.name,
        "threshold_label_ja": threshold.label_ja,
        "threshold_label_en": threshold.label_en,
        "threshold_value": threshold.value,
        "trend": station_trend(station),
        "forecast": forecast,
    }


def _forecast(station: Station, threshold, minutes: int | None, municipality_id: int) -> dict | None:
    """The gauge's forecast when the warning rule (forecasts.selectors.forecast_warning, as on the
    board, at the rule's town's probability) warns of `threshold` within `minutes`: the evidence of
    a forecast-fired recommendation."""
    if not minutes or threshold.level is None:
        return None
    forecast = forecast_current(station)
    if forecast is None:
        return None
    min_probability = prealert_setting(municipality_id)["min_probability"]
    reach = forecast_warning(forecast, threshold.value, within_seconds=minutes * 60, min_probability=min_probability)
    if reach is None:
        return None
    zone = timezone.get_current_timezone()
    crossing = reach_crossing(
        {"name": threshold.name, "label_ja": threshold.label_ja, "label_en": threshold.label_en,
         "level": threshold.level, "value": threshold.value},
        reach,
    )

    def minutes_from_now(at):
        return None if at is None else round((at - reach.based_on) / 60)

    earliest, latest = minutes_from_now(reach.earliest), minutes_from_now(reach.latest)
    return {
        "level": threshold.level,
        "method": reach.method,
        "eta_minutes": minutes_from_now(reach.at),
        "earliest_minutes": earliest,
        "latest_minutes": latest,
        # Half the band's width in time; None when its lower bound stays below within the horizon.
        "uncertainty_minutes": None if latest is None else round((latest - earliest) / 2),
        "probability": reach.probability,
        "sustained_probability": reach.sustained,
        "based_on": local_iso(forecast.based_on),
        "text_ja": crossing_text(crossing, english=False, zone=zone),
        "text_en": crossing_text(crossing, english=True, zone=zone),
    }


def _already_covered(rule: TriggerRule) -> bool:
    """An order in force, or an open recommendation, of the rule's town already names every district
    of the rule at its level or above: the board needs nothing new (a level-4 crossing does not
    also recommend level 3)."""
    wanted = {d.pk for d in rule.districts.all()}
    covered: set[int] = set()
    town, level = rule.municipality_id, rule.level
    for order in Order.objects.filter(municipality_id=town, lifted_at=None, level__gte=level):
        covered.update(order.districts.values_list("pk", flat=True))
    for open_one in Recommendation.objects.filter(municipality_id=town, state=Recommendation.State.OPEN, level__gte=level):
        covered.update(open_one.districts.values_list("pk", flat=True))
    return wanted <= covered


def rules_evaluate(station_ids: list[int]) -> list[Recommendation]:
    """Evaluate the active rules on these gauges, as committed now; returns the recommendations raised."""
    # Highest level first, so a crossing of several thresholds at once recommends the highest.
    rules = list(
        filter_ids(TriggerRule.objects.filter(is_active=True), "station_id", station_ids)
        .prefetch_related("districts")
        .order_by("-level", "pk")
    )
    if not rules:
        return []
    stations = {s.pk: s for s in station_list(viewer=PLATFORM).filter(pk__in={r.station_id for r in rules})}
    raised = []
    for rule in rules:
        station = stations.get(rule.station_id)
        state = getattr(station, "state", None) if station else None
        threshold = next((t for t in station.thresholds.all() if t.name == rule.threshold), None) if station else None
        if station is None or threshold is None or state is None or state.value is None:
            continue
        reached = state.value >= threshold.value
        forecast = None if reached else _forecast(station, threshold, rule.forecast_minutes, rule.municipality_id)
        fired = _fire_or_rearm(
            rule, reached or forecast is not None,
            lambda: station_evidence(station, threshold, fired_by="reading" if reached else "forecast", forecast=forecast),
        )
        if fired is not None:
            raised.append(fired)
    return raised


def _fire_or_rearm(rule: TriggerRule, met: bool, evidence) -> Recommendation | None:
    """One rule, its condition `met` or not: fire once per crossing, re-arm when it is no longer met."""
    with transaction.atomic():
        locked = TriggerRule.objects.select_for_update().get(pk=rule.pk)
        if not met:
            if locked.fired_at is not None:
                locked.fired_at = None  # back below / lifted: armed for the next time
                locked.save(update_fields=["fired_at"])
            return None
        if locked.fired_at is not None or _already_covered(rule):
            return None
        locked.fired_at = timezone.now()
        locked.save(update_fields=["fired_at"])
        return recommendation_open(
            municipality_id=rule.municipality_id, level=rule.level, districts=list(rule.districts.all()),
            evidence=evidence(), rule=rule,
        )


def jma_evidence(warning) -> dict:
    """What an HQ is shown for a rule fired by the weather agency: its words, report and attribution."""
    return {
        "fired_by": "jma",
        "jma_warning": warning.name,
        "jma_status": warning.status,
        "jma_area": warning.area_name,
        "jma_report_title": warning.report_title,
        "jma_office": warning.office,
        "reported_at": local_iso(warning.reported_at),
        "attribution_ja": ATTRIBUTION_JA,
        "attribution_en": ATTRIBUTION_EN,
    }


def jma_rules_evaluate(municipality_ids: list[int]) -> list[Recommendation]:
    """Evaluate the active JMA-warning rules of these towns against the warnings in force now."""
    rules = list(
        TriggerRule.objects.filter(municipality_id__in=municipality_ids, station=None, is_active=True)
        .prefetch_related("districts")
        .order_by("-level", "pk")
    )
    if not rules:
        return []
    in_force = jma_warnings_in_force({rule.municipality_id for rule in rules})
    raised = []
    for rule in rules:
        warning = jma_warning_matching(in_force.get(rule.municipality_id, {}), rule.jma_warning)
        fired = _fire_or_rearm(rule, warning is not None, lambda warning=warning: jma_evidence(warning))
        if fired is not None:
            raised.append(fired)
    return raised


def station_changes_recommend(events: list[tuple[str, dict]]) -> None:
    """The change-log handler (OrdersConfig.ready): every gauge changed in the batch, once."""
    rules_evaluate(changed_station_ids(events))


def jma_changes_recommend(events: list[tuple[str, dict]]) -> None:
    """The change-log handler for replaced JMA warnings (OrdersConfig.ready): every town named, once."""
    towns = sorted({pk for _, payload in events for pk in payload.get("municipalities", [])})
    if towns:
        jma_rules_evaluate(towns)
