"""From a trained model (or the trend fallback) and the readings known at an issue time to a
forecast: (time, median, lower, upper) per step, the next threshold's crossing with an interval,
and the probability of reaching 氾濫危険水位 within an hour. Pure: no database."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from alerts.evaluation import linear_trend

from . import learn
from .models import Method

# 氾濫危険水位 is the level-4 threshold of a river gauge (DESIGN.md); its probability is reported.
DANGER_LEVEL = 4
DANGER_WINDOW_SECONDS = 3600
PREALERT_LEADS = learn.PREALERT_LEADS
# The trend fallback extrapolates the straight line of the last hour this far, no further.
TREND_HORIZON_SECONDS = 3600
Z_80 = 1.2815515655446004  # the normal quantile of 90 %: an 80 % interval is +-Z_80 sigma


@dataclass(frozen=True)
class ThresholdLine:
    name: str
    label_ja: str
    label_en: str
    level: int | None
    value: float


@dataclass
class Result:
    method: str
    based_on: float  # epoch seconds of the reading the forecast starts from
    level_now: float
    points: list[list[float]] = field(default_factory=list)  # [t, median, lower, upper]
    crossing: dict | None = None
    danger_probability_1h: float | None = None
    forecast_rain: bool = False  # the learned model that also reads forecast rain made it
    # Per levelled threshold above the current value: P(reached within N minutes) for PREALERT_LEADS.
    exceedance_by_threshold: list[dict] = field(default_factory=list)
    # P(level at lead index i >= value), from the method's own error distribution.
    exceedance: Callable[[int, float], float] | None = field(default=None, repr=False)


def model_forecast(model: learn.ArxModel, inputs: learn.Inputs, at: float, leads: int) -> Result | None:
    """The learned model's forecast issued at `at` (a reading time of the gauge), from readings at or
    before `at` only; None when an input it needs is missing at that time."""
    x = model.features(inputs, np.array([at]))
    if not np.isfinite(x).all():
        return None
    change, sigma = model.predict(x)
    level = float(x[0, 0])
    result = Result(method=Method.ARX, based_on=at, level_now=level, forecast_rain=model.forecast_rain)
    for lead in range(min(leads, model.leads)):
        centre = level + float(change[0, lead])
        s = float(sigma[0, lead])
        result.points.append(
            [
                at + (lead + 1) * model.step,
                centre + s * model.quantile(lead, 0.5, s),
                centre + s * model.quantile(lead, learn.LOWER_Q, s),
                centre + s * model.quantile(lead, learn.UPPER_Q, s),
            ]
        )
    result.exceedance = lambda lead, value: model.exceedance(
        lead, level + float(change[0, lead]), float(sigma[0, lead]), value
    )
    return result


def band_exceedance(point, value: float) -> float:
    """P(level >= value) at a point [t, median, lower, upper], reading its 80 % band as a normal one."""
    _, median, lower, upper = point
    sigma = max((upper - lower) / (2 * Z_80), 1e-9)
    return 0.5 * math.erfc((value - median) / (sigma * math.sqrt(2)))


def trend_forecast(own: learn.Series, at: float, step: float) -> Result | None:
    """The fallback: the straight line through the last hour's readings (alerts.evaluation's fit),
    with its standard errors as the interval."""
    known = own.until(at)
    trend = linear_trend(known.times, known.values)
    if trend is None:
        return None
    result = Result(method=Method.TREND, based_on=at, level_now=float(known.values[-1]))
    leads = max(1, int(TREND_HORIZON_SECONDS // step))
    for lead in range(1, leads + 1):
        hours = lead * step / 3600
        median = trend.fitted_now + trend.slope_per_hour * hours
        spread = Z_80 * math.hypot(trend.fitted_now_se, trend.slope_se_per_hour * hours)
        result.points.append([at + lead * step, median, median - spread, median + spread])

    result.exceedance = lambda lead, value: band_exceedance(result.points[lead], value)
    return result


def first_crossing(times: list[float], values: list[float], start_t: float, start_v: float, value: float):
    """When the line from (start_t, start_v) through (times, values) first reaches `value`; None if it doesn't."""
    previous_t, previous_v = start_t, start_v
    for t, v in zip(times, values):
        if v >= value:
            if previous_v >= value or v == previous_v:
                return t
            return previous_t + (t - previous_t) * (value - previous_v) / (v - previous_v)
        previous_t, previous_v = t, v
    return None


def annotate(result: Result, thresholds: list[ThresholdLine]) -> Result:
    """Add the next threshold's crossing (median; earliest from the upper bound, latest from the
    lower one, None when the lower bound stays below it within the horizon) and P(氾濫危険水位 in 1 h)."""
    if not result.points:
        return result
    times = [p[0] for p in result.points]
    ahead = sorted((t for t in thresholds if t.level is not None and t.value > result.level_now), key=lambda t: t.value)
    for threshold in ahead[:1]:
        at = first_crossing(times, [p[1] for p in result.points], result.based_on, result.level_now, threshold.value)
        earliest = first_crossing(times, [p[3] for p in result.points], result.based_on, result.level_now, threshold.value)
        if at is None and earliest is None:
            break
        latest = first_crossing(times, [p[2] for p in result.points], result.based_on, result.level_now, threshold.value)
        result.crossing = {
            "name": threshold.name,
            "label_ja": threshold.label_ja,
            "label_en": threshold.label_en,
            "level": threshold.level,
            "value": threshold.value,
            "at": at,
            "earliest": earliest,
            "latest": latest,
        }
    for threshold in ahead:
        # P(reached by each step), then the largest up to each pre-alert lead.
        by_step = [result.exceedance(i, threshold.value) for i in range(len(times))]
        probabilities = {}
        for minutes in PREALERT_LEADS:
            within = [p for t, p in zip(times, by_step) if t - result.based_on <= minutes * 60]
            if within:
                probabilities[str(minutes)] = round(max(within), 3)
        result.exceedance_by_threshold.append(
            {"name": threshold.name, "label_ja": threshold.label_ja, "label_en": threshold.label_en,
             "level": threshold.level, "value": threshold.value, "within": probabilities,
             # Per step, so a trigger rule's own minutes are answered from the same distribution.
             "by_step": [round(p, 3) for p in by_step]}
        )
    danger = next((t for t in thresholds if t.level == DANGER_LEVEL), None)
    if danger is not None:
        if result.level_now >= danger.value:
            result.danger_probability_1h = 1.0
        else:
            leads = [i for i, t in enumerate(times) if t - result.based_on <= DANGER_WINDOW_SECONDS]
            probability = max((result.exceedance(i, danger.value) for i in leads), default=None)
            result.danger_probability_1h = None if probability is None else round(probability, 3)
    return result


@dataclass(frozen=True)
class Reach:
    """When a gauge is forecast to reach a value: the median's time with the band's earliest and
    latest (None where that bound stays below within the horizon), and the probability of reaching
    it within the window asked for. `method` says whether the learned model or the labelled trend
    fallback answered."""

    value: float
    method: str
    based_on: float
    at: float | None
    earliest: float | None
    latest: float | None
    probability: float
    horizon_seconds: float  # how far the forecast reaches: a window beyond it is answered only up to it

    def within(self, seconds: float) -> bool:
        """The median reaches the value within `seconds` of the reading the forecast starts from."""
        return self.at is not None and self.at - self.based_on <= seconds


def reach(*, method: str, based_on: float, level_now: float | None, points: list, exceedance: list,
          value: float, within_seconds: float) -> Reach | None:
    """The one answer to "when is this gauge forecast to reach `value`, with what band, and how
    likely within `within_seconds`": read from a stored forecast (its points and, for thresholds it
    was issued for, the method's own per-step probabilities; otherwise a normal reading of the 80 %
    band). None without points."""
    if not points:
        return None
    times = [p[0] for p in points]
    horizon = times[-1] - based_on
    start = points[0][1] if level_now is None else level_now
    if start >= value:
        return Reach(value, method, based_on, based_on, based_on, based_on, 1.0, horizon)
    stored = next((e for e in exceedance if e.get("by_step") and abs(e["value"] - value) < 1e-9), None)
    if stored is not None and len(stored["by_step"]) == len(points):
        by_step = stored["by_step"]
    else:
        by_step = [band_exceedance(point, value) for point in points]
    probability = max((p for t, p in zip(times, by_step) if t - based_on <= within_seconds), default=0.0)
    return Reach(
        value=value,
        method=method,
        based_on=based_on,
        at=first_crossing(times, [p[1] for p in points], based_on, start, value),
        earliest=first_crossing(times, [p[3] for p in points], based_on, start, value),
        latest=first_crossing(times, [p[2] for p in points], based_on, start, value),
        probability=round(float(probability), 3),
        horizon_seconds=horizon,
    )


def crossing_text(crossing: dict | None, *, english: bool, zone) -> str:
    """「氾濫危険水位到達予測 14:20頃（14:05〜14:40）」 / "Flood danger level expected around 14:20 (14:05–14:40)"."""
    from datetime import UTC, datetime

    if not crossing or crossing.get("at") is None:
        return ""

    def clock(seconds):
        return datetime.fromtimestamp(seconds, UTC).astimezone(zone).strftime("%H:%M") if seconds is not None else ""

    at, earliest, latest = clock(crossing["at"]), clock(crossing["earliest"]), clock(crossing["latest"])
    if english:
        span = f"{earliest}–{latest}" if latest else f"{earliest} or later"
        return f"{crossing['label_en']} level expected around {at} ({span})"
    return f"{crossing['label_ja']}到達予測 {at}頃（{earliest}〜{latest}）"


def step_of(station, own: learn.Series) -> float:
    """The gauge's own interval: its expected one, or the median gap of its readings, or 10 minutes."""
    if station.expected_interval:
        return station.expected_interval.total_seconds()
    if len(own.times) > 2:
        return float(np.median(np.diff(own.times)))
    return timedelta(minutes=10).total_seconds()
