"""From a trained model (or the trend fallback) and the readings known at an issue time to a
forecast: (time, median, lower, upper) per step, the next threshold's crossing with an interval,
and the probability of reaching 氾濫危険水位 within an hour. Pure: no database."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

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


# --- the warning rule ---------------------------------------------------------------------------------
# (its parameters: learn.WARNING_PERSISTENCE, WARNING_PROBABILITY, WARNING_MINUTES)
WARNING_PERSISTENCE = learn.WARNING_PERSISTENCE
WARNING_PROBABILITY = learn.WARNING_PROBABILITY
WARNING_MINUTES = learn.WARNING_MINUTES


def steps_within(step: float, seconds: float) -> int:
    """How many of a forecast's steps lie within `seconds` of its start."""
    return max(0, int(seconds // step + 1e-9))


def points_within(times, based_on: float, seconds: float) -> int:
    """How many of a forecast's points (their times, ascending) lie within `seconds` of its start:
    its shown leads, which may skip a lead no model won (learn.served_variants)."""
    return int(np.searchsorted(np.asarray(times, dtype=float) - based_on, seconds + 1e-6, side="right"))


def consecutive_readings(times: np.ndarray, step: float) -> np.ndarray:
    """Per reading: it follows the one before it by about one step (the first one: False)."""
    gaps = np.diff(np.asarray(times, dtype=float), prepend=-np.inf)
    return gaps <= step * 1.5


def reached_by_step(by_step: np.ndarray) -> np.ndarray:
    """P(level >= value at step k), rows of forecasts x steps, to P(reached by step k), read as the
    largest up to k (a lower bound on the chance of reaching it at any of those steps)."""
    return np.maximum.accumulate(np.nan_to_num(np.asarray(by_step, dtype=float), nan=0.0), axis=-1)


def sustained_reach(by_step: np.ndarray, consecutive: np.ndarray, persistence: int = WARNING_PERSISTENCE) -> np.ndarray:
    """Forecasts issued at a gauge's readings (rows, oldest first; `consecutive` as from
    consecutive_readings) to, per row and step k, the smallest P(reached by step k) over that forecast
    and the `persistence - 1` before it; 0 where those were not all made on consecutive readings."""
    reached = reached_by_step(by_step)
    n = len(reached)
    sustained = reached.copy()
    linked = np.ones(n, dtype=bool)
    for back in range(1, persistence):
        earlier = np.zeros_like(reached)
        earlier[back:] = reached[: n - back]
        sustained = np.minimum(sustained, earlier)
        follows = np.zeros(n, dtype=bool)
        follows[back:] = np.asarray(consecutive, dtype=bool)[1 : n - back + 1]
        linked &= follows
    return np.where(linked[:, None], sustained, 0.0) if n else sustained


def warning(sustained_within, level_now, value: float, min_probability: float):
    """THE warning rule (scalars or arrays): below `value` now, and the sustained probability of
    reaching it within the window asked for (sustained_reach at that window's last step) at least
    `min_probability`."""
    return (np.asarray(level_now) < value) & (np.asarray(sustained_within) >= min_probability)


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
    # value -> P(level at step k >= value) for this forecast and the WARNING_PERSISTENCE - 1 made at
    # the readings before it (rows, oldest first; zeros where none could be made), by the method's
    # own error distribution; `consecutive` as from consecutive_readings for those readings.
    exceedance: Callable[[float], np.ndarray] | None = field(default=None, repr=False)
    consecutive: np.ndarray | None = field(default=None, repr=False)


def recent_issues(own: learn.Series, at: float, count: int = WARNING_PERSISTENCE) -> np.ndarray:
    """The times of the gauge's last `count` readings at or before `at` (oldest first)."""
    return own.until(at).times[-count:]


@dataclass
class ModelRun:
    """A learned model's forecasts issued at many times, as served: each lead of each time by the
    variant learn.served_variants gives it (the model that also reads forecast rain where training
    chose it and a current issue lets it, the model of readings otherwise); NaN where no model
    could forecast (an input missing) and at the leads not shown."""

    models: list[learn.ArxModel]  # indexed by learn.READINGS, learn.WITH_FORECAST_RAIN
    times: np.ndarray
    level: np.ndarray  # the reading each forecast starts from
    centre: np.ndarray  # times x leads: level + change
    sigma: np.ndarray
    chosen: np.ndarray  # times x leads: index into models; -1: not served

    def served(self, row: int = -1) -> np.ndarray:
        """The indices of the leads the forecast at this row serves."""
        return np.flatnonzero(self.chosen[row] >= 0)

    def _per_variant(self, compute, fill: float) -> np.ndarray:
        """`compute(model, centre, sigma)` over the rows and first leads a variant serves, kept
        where that variant serves; `fill` elsewhere."""
        result = np.full_like(self.centre, fill)
        for index, model in enumerate(self.models):
            mine = self.chosen == index
            rows = mine.any(axis=1)
            if not rows.any():
                continue
            leads = int(np.flatnonzero(mine.any(axis=0)).max()) + 1
            sigma = np.where(mine[rows, :leads], self.sigma[rows, :leads], 1.0)  # another variant's leads: a placeholder
            values = compute(model, self.centre[rows, :leads], sigma)
            block = result[rows, :leads]
            result[rows, :leads] = np.where(mine[rows, :leads], values, block)
        return result

    def quantile(self, q: float) -> np.ndarray:
        return self._per_variant(lambda model, centre, sigma: centre + sigma * model.quantile_matrix(q, sigma), np.nan)

    def exceedance(self, value: float) -> np.ndarray:
        """P(level at step k >= value) per time and step; 0 where no forecast was made."""
        return self._per_variant(lambda model, centre, sigma: model.exceedance_matrix(centre, sigma, value), 0.0)


def model_run(model: learn.ArxModel, inputs: learn.Inputs, times: np.ndarray) -> ModelRun:
    """The model's forecasts issued at `times`, each from readings at or before its time only."""
    times = np.asarray(times, dtype=float)
    models = [model] + ([model.forecast_rain_model] if model.forecast_rain_model is not None else [])
    n, leads = len(times), model.leads
    run = ModelRun(models, times, np.full(n, np.nan), np.full((n, leads), np.nan), np.full((n, leads), np.nan),
                   np.full((n, leads), -1))
    plain = learn.served_variants(model.skill, forecast_rain=False)
    with_rain = learn.served_variants(model.skill, forecast_rain=True) if len(models) > 1 else plain
    if not n or all(variant == learn.NOT_SHOWN for variant in with_rain):
        return run
    x = model.features(inputs, times)
    rows = np.isfinite(x).all(axis=1)
    if not rows.any():
        return run
    change, sigma = model.predict(x[rows])
    run.level[rows] = x[rows, 0]
    run.centre[rows] = x[rows, :1] + change
    run.sigma[rows] = sigma
    run.chosen[rows] = plain
    if learn.WITH_FORECAST_RAIN in with_rain:
        rain_model = models[learn.WITH_FORECAST_RAIN]
        x_rain = rain_model.features(inputs, times)
        # A current issue covers its windows. However much rain it forecasts, its model is read:
        # its rain-response never lowers a forecast as rain grows (learn._ridge).
        current = rows & np.isfinite(x_rain).all(axis=1)
        if current.any():
            variants = np.asarray(with_rain)
            from_rain = np.flatnonzero(variants == learn.WITH_FORECAST_RAIN)
            rain_change, rain_sigma = rain_model.predict(x_rain[current])
            run.centre[np.ix_(current, from_rain)] = x_rain[current, :1] + rain_change[:, from_rain]
            run.sigma[np.ix_(current, from_rain)] = rain_sigma[:, from_rain]
            run.chosen[current] = variants
    run.centre[run.chosen < 0] = np.nan
    run.sigma[run.chosen < 0] = np.nan
    return run


def model_forecast(model: learn.ArxModel, inputs: learn.Inputs, at: float, leads: int | None = None) -> Result | None:
    """The learned model's forecast issued at `at` (a reading time of the gauge), from readings at or
    before `at` only, at its served leads (the first `leads` at most); None when no lead is served or
    an input it needs is missing at that time."""
    times = recent_issues(inputs.own, at)
    if not len(times) or times[-1] != at:
        times = np.append(times, at)[-WARNING_PERSISTENCE:]
    run = model_run(model, inputs, times)
    served = run.served()
    served = served[served < (leads if leads is not None else model.leads)]
    if not len(served):
        return None
    median, lower, upper = run.quantile(0.5)[-1], run.quantile(learn.LOWER_Q)[-1], run.quantile(learn.UPPER_Q)[-1]
    result = Result(method=Method.ARX, based_on=at, level_now=float(run.level[-1]),
                    forecast_rain=bool((run.chosen[-1, served] == learn.WITH_FORECAST_RAIN).any()))
    result.points = [
        [at + (lead + 1) * model.step, float(median[lead]), float(lower[lead]), float(upper[lead])] for lead in served
    ]
    result.exceedance = lambda value: run.exceedance(value)[:, served]
    result.consecutive = consecutive_readings(times, model.step)
    return result


def band_exceedance(point, value: float) -> float:
    """P(level >= value) at a point [t, median, lower, upper], reading its 80 % band as a normal one."""
    _, median, lower, upper = point
    sigma = max((upper - lower) / (2 * Z_80), 1e-9)
    return 0.5 * math.erfc((value - median) / (sigma * math.sqrt(2)))


def normal_exceedance(median: np.ndarray, sigma: np.ndarray, value: float) -> np.ndarray:
    """P(level >= value) for normal forecasts (arrays of medians and standard deviations); 0 where NaN."""
    z = (value - np.asarray(median, dtype=float)) / (np.maximum(np.asarray(sigma, dtype=float), 1e-9) * math.sqrt(2))
    return np.array([0.5 * math.erfc(v) if math.isfinite(v) else 0.0 for v in z.ravel()]).reshape(z.shape)


def trend_forecast(own: learn.Series, at: float, step: float) -> Result | None:
    """The fallback: the straight line through the last hour's readings (alerts.evaluation's fit),
    with its standard errors as the interval."""
    known = own.until(at)
    if not len(known.times):
        return None
    times = recent_issues(known, at)
    leads = max(1, int(TREND_HORIZON_SECONDS // step))
    median, sigma = learn.trend_lines(known, times, step, leads)
    if not np.isfinite(median[-1]).all():
        return None
    result = Result(method=Method.TREND, based_on=at, level_now=float(known.values[-1]))
    for lead in range(leads):
        spread = Z_80 * sigma[-1, lead]
        result.points.append([at + (lead + 1) * step, float(median[-1, lead]), float(median[-1, lead] - spread),
                              float(median[-1, lead] + spread)])
    result.exceedance = lambda value: normal_exceedance(median, sigma, value)
    result.consecutive = consecutive_readings(times, step)
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
    lower one, None when the lower bound stays below it within the horizon), per threshold above the
    current value the probabilities of reaching it (this forecast's, and the one sustained through
    the last WARNING_PERSISTENCE forecasts that the warning rule reads), and P(氾濫危険水位 in 1 h)."""
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
        rows = result.exceedance(threshold.value)
        by_step = rows[-1]
        reached = reached_by_step(by_step)
        sustained = sustained_reach(rows, result.consecutive, WARNING_PERSISTENCE)[-1]
        probabilities = {}
        for minutes in PREALERT_LEADS:
            count = points_within(times, result.based_on, minutes * 60)
            if count:
                probabilities[str(minutes)] = round(float(reached[min(count, len(reached)) - 1]), 3)
        result.exceedance_by_threshold.append(
            {"name": threshold.name, "label_ja": threshold.label_ja, "label_en": threshold.label_en,
             "level": threshold.level, "value": threshold.value, "within": probabilities,
             # Per step, so a trigger rule's own minutes are answered from the same distribution.
             "by_step": [round(float(p), 3) for p in by_step]}
            # With a persistence of one forecast the sustained probabilities are these (predict.reach).
            | ({"sustained_by_step": [round(float(p), 3) for p in sustained]} if WARNING_PERSISTENCE > 1 else {})
        )
        if threshold.level == DANGER_LEVEL:
            count = points_within(times, result.based_on, DANGER_WINDOW_SECONDS)
            result.danger_probability_1h = round(float(reached[min(count, len(reached)) - 1]), 3) if count else None
    danger = next((t for t in thresholds if t.level == DANGER_LEVEL), None)
    if danger is not None and result.level_now >= danger.value:
        result.danger_probability_1h = 1.0
    return result


@dataclass(frozen=True)
class Reach:
    """When a gauge is forecast to reach a value: the median's time with the band's earliest and
    latest (None where that bound stays below within the horizon), the probability of reaching it
    within the window asked for, and the probability sustained through the gauge's last
    WARNING_PERSISTENCE forecasts (what the warning rule reads). `method` says whether the learned
    model or the labelled trend fallback answered."""

    value: float
    method: str
    based_on: float
    at: float | None
    earliest: float | None
    latest: float | None
    probability: float
    horizon_seconds: float  # how far the forecast reaches: a window beyond it is answered only up to it
    sustained: float = 0.0
    level_now: float | None = None

    def within(self, seconds: float) -> bool:
        """The median reaches the value within `seconds` of the reading the forecast starts from."""
        return self.at is not None and self.at - self.based_on <= seconds

    def warns(self, min_probability: float) -> bool:
        """The warning rule (`warning`) for this value and window."""
        level = self.level_now if self.level_now is not None else -math.inf
        return bool(warning(self.sustained, level, self.value, min_probability))


def reach(*, method: str, based_on: float, level_now: float | None, points: list, exceedance: list,
          value: float, within_seconds: float) -> Reach | None:
    """The one answer to "when is this gauge forecast to reach `value`, with what band, and how
    likely within `within_seconds`": read from a stored forecast (its points and, for thresholds it
    was issued for, the method's own per-step probabilities, this forecast's and the sustained ones;
    otherwise a normal reading of this forecast's 80 % band, with nothing known of the forecasts
    before it, so the sustained probability is this one's). None without points."""
    if not points:
        return None
    times = [p[0] for p in points]
    horizon = times[-1] - based_on
    start = points[0][1] if level_now is None else level_now
    if start >= value:
        return Reach(value, method, based_on, based_on, based_on, based_on, 1.0, horizon, 1.0, start)
    stored = next((e for e in exceedance if e.get("by_step") and abs(e["value"] - value) < 1e-9), None)
    if stored is not None and len(stored["by_step"]) == len(points):
        by_step = stored["by_step"]
        sustained = stored.get("sustained_by_step") or by_step
    else:
        by_step = sustained = [band_exceedance(point, value) for point in points]
    count = points_within(times, based_on, within_seconds)
    probability = float(reached_by_step(by_step)[min(count, len(by_step)) - 1]) if count else 0.0
    held = float(reached_by_step(sustained)[min(count, len(sustained)) - 1]) if count else 0.0
    return Reach(
        value=value,
        method=method,
        based_on=based_on,
        at=first_crossing(times, [p[1] for p in points], based_on, start, value),
        earliest=first_crossing(times, [p[3] for p in points], based_on, start, value),
        latest=first_crossing(times, [p[2] for p in points], based_on, start, value),
        probability=round(probability, 3),
        horizon_seconds=horizon,
        sustained=round(held, 3),
        level_now=start,
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
