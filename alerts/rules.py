"""What a rule means: its steps, its measure, how much history it needs, and the default rules of a station.

Pure functions over model instances already loaded; `alerts.services` does the loading and writing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from sensors.models import Station, StationKind, Threshold
from sensors.plausibility import Plausibility, station_plausibility
from sensors.rain import HOUR, rain_intensity

from .evaluation import TREND_WINDOW, Hysteresis, Step, event_totals, rates_of_rise, window_sums
from .models import AlertRule

Kind = AlertRule.Kind

# Default margins to leave a level: about the noise and wave of a gauge, so a level does not flap.
# Used for a threshold with no margin of its own and no threshold below it to take a margin from.
# A tide gauge's margin is wider than a river's: swell moves the sea surface by decimetres.
DEFAULT_HYSTERESIS = {StationKind.RIVER: 0.1, StationKind.RESERVOIR: 1.0, StationKind.RAIN: 2.0, StationKind.TIDE: 0.2}
# A threshold without its own margin is left only a quarter of the way down to the threshold below
# it: wide enough to swallow a gauge's wave, never so wide that it reaches the level below.
DEFAULT_MARGIN_SHARE_OF_GAP = 0.25
# How default level rules move, whatever the kind: a level is raised when two readings in a row meet
# it (a lone reading can be a glitch), except level 4 equivalent and up, which is raised by the first
# reading (danger is not delayed for confirmation); it is lowered only after the value has stayed
# below threshold − margin for half an hour, so a river hovering at a threshold makes one alert.
DEFAULT_LEVEL_SETTINGS = dict(
    min_readings=2, min_duration=timedelta(0), clear_hold=timedelta(minutes=30), immediate_level=4
)
# Rivers also get a rate-of-rise rule: a rise this fast over the window is worth a call to HQ even
# below the first threshold (flash floods on small rivers give little time between levels).
DEFAULT_RATE_OF_RISE = dict(
    value=0.5, level=1, window=timedelta(minutes=30), hysteresis=0.2,
    min_readings=2, min_duration=timedelta(0), clear_hold=timedelta(minutes=30),
)
DEFAULT_STALE_LEVEL = 1
DEFAULT_STALE_FACTOR = 3.0
# A station that has never reported and has no interval is assumed to report this often.
FALLBACK_INTERVAL = timedelta(minutes=10)
# Rain totals shown with every rain alert, whatever the rule's window.
RAIN_REPORT_WINDOWS = (timedelta(minutes=10), timedelta(hours=1), timedelta(hours=3), timedelta(hours=24))
# How far back an event total can reach; a storm longer than this is counted over its last 72 hours.
EVENT_LOOKBACK = timedelta(hours=72)


def leveled(thresholds: list[Threshold]) -> list[Threshold]:
    return [t for t in thresholds if t.level is not None and 1 <= t.level <= 5]


def rule_steps(rule: AlertRule, thresholds: list[Threshold], *, at: datetime | None = None) -> list[Step]:
    """The rule's ladder at time `at` (None: now): its own value and level, or the values of the
    station's thresholds for the same measure that were in force then."""
    if rule.value is not None and rule.level is not None:
        return [Step(rule.level, rule.value)]
    if rule.kind == Kind.THRESHOLD:
        return reading_steps(thresholds, at=at)
    if rule.kind == Kind.RAIN_ACCUMULATION and rule.window is not None:
        return _ladder(thresholds, rule.window, at)
    return []


def reading_steps(thresholds: list[Threshold], *, at: datetime | None = None) -> list[Step]:
    """The station's ladder on the reading itself at time `at`: what "time to the next level" aims at."""
    return _ladder(thresholds, None, at)


def _ladder(thresholds: list[Threshold], window: timedelta | None, at: datetime | None) -> list[Step]:
    """Steps of the leveled thresholds on one measure, with the values in force at `at` and each
    one's margin (see `threshold_margin`)."""
    measure = [t for t in thresholds if t.window == window]
    values = [t.value_at(at) for t in measure]
    return [
        Step(t.level, value, threshold_margin(t, value, values))
        for t, value in zip(measure, values, strict=True)
        if t.level is not None and 1 <= t.level <= 5
    ]


def threshold_margin(threshold: Threshold, value: float, ladder_values: list[float]) -> float | None:
    """How far below `value` the measure must fall to leave the threshold's level: its own margin,
    else a share of the gap to the next threshold below on the same measure (leveled or not, e.g.
    水防団待機水位), else None (the rule's hysteresis)."""
    if threshold.margin is not None:
        return threshold.margin
    below = [other for other in ladder_values if other < value]
    if not below:
        return None
    return round((value - max(below)) * DEFAULT_MARGIN_SHARE_OF_GAP, 6)


def rule_hysteresis(rule: AlertRule) -> Hysteresis:
    return Hysteresis(
        rising=rule.direction == AlertRule.Direction.RISING,
        margin=rule.hysteresis,
        min_duration=rule.min_duration,
        min_readings=rule.min_readings,
        hold=rule.clear_hold,
        immediate_level=rule.immediate_level,
    )


def rule_plausibility(rule: AlertRule, station: Station) -> Plausibility | None:
    """The station's plausibility limits for the rule's spike check (None: readings are not judged)."""
    if rule.kind in (Kind.RAIN_ACCUMULATION, Kind.STALE) or station.kind == StationKind.RAIN:
        return None
    return station_plausibility(station)


def rule_measure(rule: AlertRule, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The quantity the rule compares, at every reading."""
    if rule.kind == Kind.RAIN_ACCUMULATION:
        if rule.window is None:
            return event_totals(times, values)
        return window_sums(times, values, rule.window)
    if rule.kind == Kind.RATE_OF_RISE:
        return rates_of_rise(times, values, rule.window)
    return values


READING_LABELS = {
    StationKind.RIVER: ("水位", "Water level"),
    StationKind.RAIN: ("雨量", "Rainfall"),
    StationKind.RESERVOIR: ("貯水率", "Storage rate"),
    StationKind.TIDE: ("潮位", "Tide level"),
}


def _duration_label(window: timedelta, ja: bool) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60}時間" if ja else f"{minutes // 60} h"
    return f"{minutes}分" if ja else f"{minutes} min"


def measure_label(rule: AlertRule, station: Station, *, ja: bool) -> str:
    """What the rule's value is, in words for people (CAP descriptions, e-mail)."""
    if rule.kind == Kind.RAIN_ACCUMULATION:
        if rule.window is None:
            return "累加雨量" if ja else "Storm total rainfall"
        return f"{_duration_label(rule.window, ja)}雨量" if ja else f"Rainfall over {_duration_label(rule.window, ja)}"
    if rule.kind == Kind.RATE_OF_RISE:
        window = _duration_label(rule.window, ja)
        return f"上昇速度({window})" if ja else f"Rate of rise over {window}"
    if rule.kind == Kind.STALE:
        return "欠測時間" if ja else "Silent for"
    label_ja, label_en = READING_LABELS[StationKind(station.kind)]
    return label_ja if ja else label_en


def rule_unit(rule: AlertRule, station: Station) -> str:
    if rule.kind == Kind.RAIN_ACCUMULATION:
        return "mm"
    if rule.kind == Kind.RATE_OF_RISE:
        return f"{station.unit}/h"
    if rule.kind == Kind.STALE:
        return "min"
    return station.unit


# Units whose values read best with one decimal (rain totals, minutes, storage rate); metres take two.
ONE_DECIMAL_UNITS = ("mm", "min", "%")


def rule_concern(rule: AlertRule) -> str:
    """What an alert is about at its station, for one row per station and concern on the board: the
    level of the measure (the reading or any rain window: a gauge's 1 h and 24 h rules are one
    concern), its rise, or its silence."""
    if rule.kind == Kind.RATE_OF_RISE:
        return "rise"
    if rule.kind == Kind.STALE:
        return "silence"
    return "level"


def fired_words(rule: AlertRule, station: Station, value: float | None) -> tuple[str, str]:
    """The rule that fired, in plain words with its unit, ja and en: 「1時間雨量 52.0 mm(非常に激しい雨)」."""
    unit = rule_unit(rule, station)
    if value is None:
        amount = "—"
    else:
        amount = f"{value:.1f}" if unit in ONE_DECIMAL_UNITS else f"{value:.2f}"
        amount = f"{amount} {unit}".rstrip()
    ja = f"{measure_label(rule, station, ja=True)} {amount}"
    en = f"{measure_label(rule, station, ja=False)} {amount}"
    # An hourly total is judged as the weather agency judges rain (sensors.rain).
    if rule.kind == Kind.RAIN_ACCUMULATION and rule.window == HOUR:
        intensity = rain_intensity(value)
        if intensity is not None:
            ja, en = f"{ja}({intensity.name_ja})", f"{en} ({intensity.name_en})"
    return ja, en


def station_interval(station: Station) -> timedelta:
    return station.expected_interval or FALLBACK_INTERVAL


def rule_lookback(rule: AlertRule, station: Station) -> timedelta:
    """History a rule needs before the first reading it steps through."""
    interval = station_interval(station)
    persistence = max(rule.min_duration, interval * rule.min_readings, rule.clear_hold) + 2 * interval
    if rule.kind == Kind.RAIN_ACCUMULATION:
        reach = EVENT_LOOKBACK if rule.window is None else rule.window
        return max(reach, max(RAIN_REPORT_WINDOWS)) + persistence
    if rule.kind == Kind.RATE_OF_RISE:
        return max(rule.window, TREND_WINDOW) + persistence
    if station.kind == StationKind.RAIN:
        return max(RAIN_REPORT_WINDOWS) + persistence
    return TREND_WINDOW + persistence


def default_rules(station: Station, thresholds: list[Threshold]) -> list[AlertRule]:
    """The rules a station's own data implies (unsaved): one per threshold ladder, and a stale check.

    A rule per measure, not per threshold, so rising through the levels escalates one alert.
    """
    kind = StationKind(station.kind)
    common = dict(station=station, is_default=True)
    leveled_common = dict(common, hysteresis=DEFAULT_HYSTERESIS[kind], **DEFAULT_LEVEL_SETTINGS)
    rules: list[AlertRule] = []
    ladder = leveled(thresholds)
    if any(t.window is None for t in ladder):
        rules.append(AlertRule(kind=Kind.THRESHOLD, name="Thresholds (reading)", window=None, **leveled_common))
    for window in sorted({t.window for t in ladder if t.window is not None}):
        minutes = int(window.total_seconds() // 60)
        label = f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
        rules.append(
            AlertRule(kind=Kind.RAIN_ACCUMULATION, name=f"Rain over {label}", window=window, **leveled_common)
        )
    # Not for tide gauges: the tide itself rises a metre in a few hours twice a day.
    if kind == StationKind.RIVER:
        rules.append(AlertRule(kind=Kind.RATE_OF_RISE, name="Rapid rise", **common, **DEFAULT_RATE_OF_RISE))
    if station.expected_interval:
        rules.append(
            AlertRule(
                kind=Kind.STALE,
                name="Gauge not reporting",
                level=DEFAULT_STALE_LEVEL,
                stale_factor=DEFAULT_STALE_FACTOR,
                hysteresis=DEFAULT_HYSTERESIS[kind],
                **common,
            )
        )
    return rules


def rule_key(rule: AlertRule) -> tuple[str, timedelta | None]:
    """What makes a default rule unique at its station (see the model's constraints)."""
    return rule.kind, rule.window
