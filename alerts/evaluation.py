"""Pure computation behind alert rules: derived metrics and the level state machine. No database here.

Everything works on one station's recent readings as numpy arrays (times in epoch seconds, oldest
first), loaded for all changed stations of a batch by one query in `alerts.services`.

Plausibility (river and reservoir gauges): a reading that moved from the last accepted one by more
than the station's plausibility limits allow in the time between them (`sensors.plausibility.is_jump`,
the same test ingestion flags readings with) is a *jump*. If the next reading comes back within the step of the
value before the jump, the jump was a *spike* (a bird on the sensor, a radio glitch) and is ignored
for good. A jump is never acted on while it is the newest reading; once the next reading confirms it,
it counts like any other. So a real sudden rise costs one reading of delay, and a lone spike never
opens, escalates, de-escalates or resolves anything. Two implausible readings in a row are taken as
real. Rain gauges get no spike check: 0 mm then 20 mm then 0 mm is an ordinary downpour.

Ingestion flags readings with the same limits (`Observation.quality` "suspect", "range", "flatline").
Flagged readings never count here; the evaluator's jump check runs over all readings, flagged or not,
so the two checks do not delay a confirmed jump twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from sensors.plausibility import Plausibility, is_jump, neighbour_jumps

HOUR = 3600.0
# Rain "event" totals run from the first rain after a dry spell at least this long.
DRY_SPELL = timedelta(hours=6)
# Rates of rise are reported over these windows; the 30-minute one is the headline rate.
RATE_WINDOWS = (timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=60))
HEADLINE_RATE_WINDOW = timedelta(minutes=30)
# Time-to-threshold: fit a line to the last TREND_WINDOW of readings...
TREND_WINDOW = timedelta(minutes=60)
# ...only when they span at least this long and number at least TREND_MIN_POINTS,
TREND_MIN_SPAN = timedelta(minutes=30)
TREND_MIN_POINTS = 4
# ...the rise is clearly not noise (slope / its standard error),
TREND_MIN_T_STATISTIC = 3.0
# ...the line explains most of the movement,
TREND_MIN_R2 = 0.8
# ...and the answer is not a long extrapolation, nor less certain than itself.
TREND_MAX_HORIZON = timedelta(hours=6)


@dataclass(frozen=True)
class Step:
    """One rung of a rule's ladder: at or beyond `value`, the alert level is `level`."""

    level: int
    value: float
    margin: float | None = None  # how far back below `value` leaving the level takes; None: the rule's


@dataclass(frozen=True)
class Hysteresis:
    """How a rule moves between levels (see `next_level`)."""

    rising: bool = True
    margin: float = 0.0  # for steps without a margin of their own
    min_duration: timedelta = timedelta(0)
    min_readings: int = 1
    # Lowering waits until the value has stayed below threshold - margin this long.
    hold: timedelta = timedelta(0)
    # A level at or above this is raised on the first reading that meets it: danger is not delayed
    # for confirmation (None: every level waits).
    immediate_level: int | None = None


@dataclass(frozen=True)
class Trend:
    slope_per_hour: float
    slope_se_per_hour: float
    fitted_now: float
    fitted_now_se: float
    r2: float
    points: int


@dataclass(frozen=True)
class Forecast:
    level: int
    threshold: float
    eta: timedelta
    uncertainty: timedelta


# --- plausibility ----------------------------------------------------------------------------


def jumps_and_spikes(
    times: np.ndarray, values: np.ndarray, limits: Plausibility | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per reading: whether it jumped implausibly (by the station's `limits`, over the time since the
    last accepted reading), and whether that jump was a spike (the following reading came back).
    See the module docstring. `limits` None: nothing is judged (rain, stale rules)."""
    size = len(values)
    jump = np.zeros(size, dtype=bool)
    spike = np.zeros(size, dtype=bool)
    if limits is None or limits.max_step is None or size < 2:
        return jump, spike
    # While the reference is the previous reading (nearly always: it moves on to every reading that
    # is not a spike), judging a reading is the neighbour test, so the walk jumps straight to the next
    # reading whose neighbour test fails and walks reading by reading only from there until the
    # reference is the previous reading again (after a spike: one reading later).
    suspicious = np.flatnonzero(neighbour_jumps(limits, times, values)) + 1
    if not len(suspicious):
        return jump, spike
    reference = 0  # index of the last accepted reading
    index = 1
    while index < size:
        if reference == index - 1:
            position = int(np.searchsorted(suspicious, index))
            if position == len(suspicious):
                break
            index = int(suspicious[position])
            reference = index - 1
        value, at = values[index], times[index]
        if not is_jump(limits, values[reference], value, at - times[reference]):
            reference = index
        else:
            jump[index] = True
            following = index + 1
            came_back = following < size and not is_jump(
                limits, values[reference], values[following], times[following] - times[reference]
            )
            if came_back:
                spike[index] = True  # reference stays: the spike never happened
            else:
                reference = index
        index += 1
    return jump, spike


# --- measures, one value per reading ---------------------------------------------------------


def window_sums(times: np.ndarray, amounts: np.ndarray, window: timedelta) -> np.ndarray:
    """Total of the amounts in (t - window, t] at every reading t (rain per window)."""
    cumulative = np.concatenate(([0.0], np.cumsum(amounts)))
    starts = np.searchsorted(times, times - window.total_seconds(), side="right")
    return cumulative[1:] - cumulative[starts]


def event_totals(times: np.ndarray, amounts: np.ndarray, dry_spell: timedelta = DRY_SPELL) -> np.ndarray:
    """Rain since the current event began, at every reading; an event ends after `dry_spell` without rain.

    The total drops to 0 once the dry spell has lasted, so a new storm starts from zero.
    """
    totals = np.zeros(len(times))
    wet = amounts > 0
    if not wet.any():
        return totals
    wet_times = times[wet]
    gap = dry_spell.total_seconds()
    # A wet reading starts an event when the previous wet reading is a dry spell or more before it.
    starts_event = np.concatenate(([True], np.diff(wet_times) >= gap))
    event_of_wet = np.cumsum(starts_event) - 1
    cumulative = np.concatenate(([0.0], np.cumsum(amounts)))
    event_start_time = wet_times[starts_event][event_of_wet]
    # For every reading: the latest wet reading at or before it, and its event's start.
    last_wet = np.searchsorted(wet_times, times, side="right") - 1
    has_wet = last_wet >= 0
    index_of = np.searchsorted(times, event_start_time, side="left")
    start_index = np.where(has_wet, index_of[np.maximum(last_wet, 0)], 0)
    within_event = has_wet & (times - wet_times[np.maximum(last_wet, 0)] < gap)
    totals = np.where(within_event, cumulative[np.arange(1, len(times) + 1)] - cumulative[start_index], 0.0)
    return totals


def rates_of_rise(times: np.ndarray, values: np.ndarray, window: timedelta) -> np.ndarray:
    """Change per hour between each reading and the earliest one inside (t - window, t]; NaN when the
    readings in the window span less than half of it (too little data to call it a rate)."""
    seconds = window.total_seconds()
    starts = np.searchsorted(times, times - seconds, side="left")
    span = times - times[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = (values - values[starts]) / span * HOUR
    return np.where(span >= seconds / 2, rates, np.nan)


def rate_of_rise_now(times: np.ndarray, values: np.ndarray, window: timedelta) -> float:
    """`rates_of_rise(times, values, window)[-1]`, without computing the rate at every reading."""
    seconds = window.total_seconds()
    start = int(np.searchsorted(times, times[-1] - seconds, side="left"))
    span = times[-1] - times[start]
    if not span >= seconds / 2:
        return math.nan
    return float((values[-1] - values[start]) / span * HOUR)


# --- trend and time to the next threshold ----------------------------------------------------


def linear_trend(times: np.ndarray, values: np.ndarray, window: timedelta = TREND_WINDOW) -> Trend | None:
    """Least-squares line through the readings of the last `window`; None when there are too few."""
    if len(times) == 0:
        return None
    start = int(np.searchsorted(times, times[-1] - window.total_seconds(), side="left"))  # oldest first
    t, v = times[start:], values[start:]
    n = len(t)
    if n < TREND_MIN_POINTS or t[-1] - t[0] < TREND_MIN_SPAN.total_seconds():
        return None
    hours = (t - t[-1]) / HOUR
    # `np.add.reduce(x)` is what `x.sum()` runs and `/ n` what `x.mean()` does after it (the same
    # pairwise sums, the same doubles), without the method wrappers: an open alert's figures are
    # refreshed every batch.
    total = np.add.reduce
    mean_t, mean_v = total(hours) / n, total(v) / n
    dt, dv = hours - mean_t, v - mean_v
    sxx = float(total(dt**2))
    if sxx <= 0:
        return None
    slope = float(total(dt * dv) / sxx)
    intercept = mean_v - slope * mean_t
    residuals = v - (intercept + slope * hours)
    ss_res = float(total(residuals**2))
    ss_tot = float(total(dv**2))
    resid_sd = math.sqrt(ss_res / (n - 2))
    return Trend(
        slope_per_hour=slope,
        slope_se_per_hour=resid_sd / math.sqrt(sxx),
        fitted_now=float(intercept),  # hours are measured from the newest reading, so t=0 is "now"
        fitted_now_se=resid_sd * math.sqrt(1 / n + mean_t**2 / sxx),
        r2=1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        points=n,
    )


def time_to_next(trend: Trend | None, steps: list[Step], *, current_level: int, rising: bool = True) -> Forecast | None:
    """When the linear trend reaches the next step above `current_level`, with a one-sigma uncertainty.

    None whenever the trend does not support a forecast: no trend, moving away from (or flat towards)
    the threshold, a slope not clearly above its noise, a poor fit, the threshold already reached
    by the fitted line, or an answer further out than TREND_MAX_HORIZON or less certain than itself.
    """
    if trend is None:
        return None
    ahead = sorted((s for s in steps if s.level > current_level), key=lambda s: s.level)
    if not ahead:
        return None
    target = ahead[0]
    sign = 1.0 if rising else -1.0
    slope = sign * trend.slope_per_hour
    if slope <= 0 or slope < TREND_MIN_T_STATISTIC * trend.slope_se_per_hour or trend.r2 < TREND_MIN_R2:
        return None
    distance = sign * (target.value - trend.fitted_now)
    if distance <= 0:
        return None
    eta_hours = distance / slope
    # Delta method on eta = distance / slope, both uncertain.
    relative = math.hypot(trend.slope_se_per_hour / slope, trend.fitted_now_se / distance)
    sigma_hours = eta_hours * relative
    if eta_hours * HOUR > TREND_MAX_HORIZON.total_seconds() or sigma_hours >= eta_hours:
        return None
    return Forecast(
        level=target.level,
        threshold=target.value,
        eta=timedelta(seconds=round(eta_hours * HOUR)),
        uncertainty=timedelta(seconds=max(60, round(sigma_hours * HOUR))),
    )


# --- the level state machine -----------------------------------------------------------------


class LevelSteps:
    """`next_level` after each reading of one series, for a rule stepped through a batch reading by
    reading: the level after reading *k* looks only at readings ..k, and whether a comparison with a
    rung has held through a run ending at *k* is a prefix property, so each comparison is made once
    for the whole series (with the index of the last reading that broke it) instead of once per
    step over the whole prefix. `level(end, ...)` is `next_level(times[:end], measure[:end], ...)`;
    `levels` answers many ends at once (numpy), so stepping a batch costs a few array operations per
    transition instead of a call per reading."""

    def __init__(self, times: np.ndarray, measure: np.ndarray, rules: Hysteresis, *, first_end: int = 0):
        """`first_end`: no end below it will be asked (a batch's first step). Runs are then compared
        only from the first reading that can matter (`cuts`: raising, lowering), not over the whole
        look-back."""
        self.times = times
        self.rules = rules
        self.sign = 1.0 if rules.rising else -1.0
        self.oriented = self.sign * measure
        self.first_end = first_end
        # Lowering waits out the hold as well: its runs reach further back.
        self.cuts = {
            False: self._cut(first_end, rules.min_duration),
            True: self._cut(first_end, max(rules.min_duration, rules.hold)),
        }
        self._runs: dict[tuple[bool, float | None], tuple[np.ndarray, np.ndarray, int]] = {}

    def _cut(self, first_end: int, duration: timedelta) -> int:
        """The latest reading a run may start at and still be long enough, in readings and in time
        (`duration`), for the end `first_end` and so for every later end.
        A run reaching back before it is long enough whatever its true start (both tests only get
        easier further back), so runs are built from here on and one that holds all the way back is
        taken to start here: each answer stays exactly what the whole series would give."""
        if first_end <= 1 or first_end > len(self.times):
            return 0
        rules = self.rules
        newest = first_end - 1
        reach = duration.total_seconds()
        by_time = int(np.searchsorted(self.times, self.times[newest] - reach, side="right")) - 1
        # The same test `_sustained` makes (newest - start): the subtraction above may round the other way.
        while by_time >= 0 and not self.times[newest] - self.times[by_time] >= reach:
            by_time -= 1
        return max(0, min(first_end - rules.min_readings, by_time, newest))

    def _run(self, below: bool, value: float | None) -> tuple[np.ndarray, np.ndarray, int]:
        """(holds, last break at or before each reading, or cut - 1 where none since the cut; the cut)
        for `oriented >= value`, or `< value` (None: holds everywhere, NaN included), from the cut on."""
        key = (below, value)
        run = self._runs.get(key)
        if run is None:
            cut = self.cuts[below]
            oriented = self.oriented[cut:]
            with np.errstate(invalid="ignore"):
                if value is None:
                    holds = np.ones(len(oriented), dtype=bool)
                else:
                    holds = oriented < value if below else oriented >= value
            positions = np.arange(cut, cut + len(holds))
            run = self._runs[key] = (holds, np.maximum.accumulate(np.where(holds, cut - 1, positions)), cut)
        return run

    def _sustained(self, ends: np.ndarray, run: tuple[np.ndarray, np.ndarray, int], *, lowering: bool = False) -> np.ndarray:
        """Per end: whether the comparison holds for reading end-1 and has for long enough, without a
        break (False for an end of 0: nothing read yet)."""
        holds, breaks, cut = run
        newest = np.maximum(ends - 1, 0)
        held = (ends > 0) & holds[newest - cut]
        if not held.any():
            return held
        # where it held, the run starts at or before newest
        start = np.minimum(breaks[newest - cut] + 1, newest)
        rules = self.rules
        duration = max(rules.min_duration, rules.hold) if lowering else rules.min_duration
        lasted = self.times[newest] - self.times[start] >= duration.total_seconds()
        return held & (ends - start >= rules.min_readings) & lasted

    def levels(self, ends: np.ndarray, steps: list[Step], *, current: int) -> np.ndarray:
        """`level(end, steps, current=current)` for every end at once: the level each of these steps
        would reach from `current`. A batch steps until the first answer that differs from `current`
        (a transition) and goes on from there with the new level, as a loop over `level` would."""
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) and int(ends.min()) < self.first_end:
            raise ValueError(f"end {int(ends.min())} is before this stepper's first end {self.first_end}")
        if not steps:
            return np.zeros(len(ends), dtype=np.int64)
        sign, rules = self.sign, self.rules
        result = np.full(len(ends), current, dtype=np.int64)
        if not len(self.oriented):
            return result  # every end is 0: nothing read, nothing moves
        decided = np.zeros(len(ends), dtype=bool)

        def take(candidate: int, met: np.ndarray) -> None:
            chosen = met & ~decided
            result[chosen] = candidate
            decided[chosen] = True

        for candidate in sorted({s.level for s in steps if s.level > current}, reverse=True):
            run = self._run(False, min(sign * s.value for s in steps if s.level >= candidate))
            met = self._sustained(ends, run)
            if rules.immediate_level is not None and candidate >= rules.immediate_level:
                met |= (ends > 0) & run[0][np.maximum(ends - 1, 0) - run[2]]
            take(candidate, met)
        if current == 0:
            return result
        for candidate in sorted({0, *(s.level for s in steps if s.level < current)}):
            higher = [sign * s.value - (rules.margin if s.margin is None else s.margin) for s in steps if s.level > candidate]
            # No step above the candidate any more (thresholds were removed): nothing holds the level.
            run = self._run(True, min(higher) if higher else None)
            take(candidate, self._sustained(ends, run, lowering=True))
        return result

    def level(self, end: int, steps: list[Step], *, current: int) -> int:
        return int(self.levels(np.array([end]), steps, current=current)[0])


def next_level(
    times: np.ndarray, measure: np.ndarray, steps: list[Step], *, current: int, rules: Hysteresis
) -> int:
    """The level after the newest reading (0 = no alert), given the level before it.

    Up: the highest level whose threshold the measure has met on every reading of a run ending now
    that is at least `min_readings` long and `min_duration` old — except a level at or above
    `immediate_level`, raised by the first reading that meets it. Down: the lowest level such that the
    measure has stayed below every higher threshold minus its margin for such a run, and for `hold`.
    Inside the margin nothing moves, so a value hovering around a threshold does not flap. NaN
    measures (not enough data) break runs both ways: unknown never opens nor resolves.
    """
    return LevelSteps(times, measure, rules).level(len(times), steps, current=current)
