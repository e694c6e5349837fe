"""The forecasting model itself, pure numpy: no database, no clock.

A gauge's forecast is learned from its own history. At an issue time t (the time of a reading) the
inputs are: the gauge's level and its changes over the last steps, the levels and changes of the
gauges upstream of it, near a river mouth the sea level at the coast's tide gauges (the tide backs
the river up twice a day, a storm surge more), and the basin's rain totals over several windows, all read from data at or
before t (`features_at` never looks past t). The targets are the gauge's changes from t to
t + h * step for every lead h out to the longest horizon; one ridge-regularised linear model (ARX)
per lead, solved for all leads at once.

Rain can only raise the forecast: the coefficients of the rain inputs are constrained so that more
rain in any interval (observed, or forecast) never lowers any lead's forecast (`monotone_columns`,
`_ridge`), however far beyond the training storms it lies. A linear model left free learns
negative weights on some rain windows (one window's rain standing in for another's recession), so
more rain could forecast a lower level, and a storm larger than any in training a fall. The
recession those negative weights stood for is carried instead by dryness inputs (how little rain
fell over the last 10 minutes to 3 hours, alone and times the gauge's and its upstream gauges'
rise and its level: "rising while the rain has stopped, the wave is passing"), which only fall as
rain grows and whose coefficients are constrained <= 0.

Uncertainty: residuals are heteroscedastic (millimetres in calm weather, decimetres on a rising
flood), so a spread model sigma(x) >= 0, linear in how active the gauge and its upstream are (not
in rain: `spread_features`), is fitted to the absolute out-of-sample residuals (blocked cross-validation), and the
empirical quantiles of residual / sigma give the intervals and the probability of a crossing.

Steps are the gauge's own reporting interval, so the same code serves 1-minute to daily gauges.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field, fields

import numpy as np
from threadpoolctl import threadpool_limits

from alerts.evaluation import linear_trend

# Changes of the gauge's own level over these many steps, and of each upstream gauge's.
OWN_LAGS = (1, 2, 3, 6)
UPSTREAM_LAGS = (1, 3, 6)
# A tide gauge's level and its changes over these many steps: with the level they give the tide's
# phase, so the linear model per lead can carry the (predictable) tide forward.
TIDE_LAGS = (1, 3)
# Basin rain totals over these windows (seconds).
RAIN_WINDOWS = (1800, 3600, 3 * 3600, 6 * 3600)
# Bumped whenever the inputs change: a stored model of another version is retrained, and serves
# nothing meanwhile (the trend fallback does).
FEATURES_VERSION = 6  # 5: rain-response coefficients constrained (monotone in rain); 6: dryness inputs
# With at least this many training rows (about three weeks of 10-minute readings) the model also
# reads the extended inputs below; with fewer, their products extrapolate wildly on a storm larger
# than any seen in training.
EXTENDED_MIN_ROWS = 3000
# Longer totals stand for how wet the catchment already is (rain still draining towards the river).
ANTECEDENT_WINDOWS = (12 * 3600, 24 * 3600)
# Dryness (extended inputs): exp(-rain over the window / DRYNESS_MM) — 1 after a dry spell, near 0
# once a few millimetres have fallen, and never rising with more rain. Alone and times what the levels
# say (the gauge's own rise, its upstream gauges' rise, its level; each clipped at 0) they tell the
# model "rising while the rain has stopped: the wave is passing", the recession a monotone model
# cannot learn from rain totals (docs/performance.md, Forecasts round 6). Their coefficients are
# constrained <= 0 (`monotone_columns`), so their contribution, too, never falls as rain grows.
# The 10-minute window (the demo's step) says the rain has just stopped; chosen on dev data only
# (docs/performance.md, Forecasts round 7), as was DRYNESS_MM.
DRYNESS_WINDOWS = (600, 1800, 3600, 3 * 3600)
DRYNESS_MM = 1.0
DRYNESS_TERMS = ("dry", "rise_x_dry", "upstream_rise_x_dry", "level_x_dry")
HORIZON_SECONDS = 6 * 3600
SHORT_HORIZON_SECONDS = 3 * 3600  # always shown (if it beats persistence); beyond only where skill allows
RIDGE = 1.0  # on standardised inputs
CV_FOLDS = 4
# Quantile levels of the normalised residual that are stored; the interval is 10 % .. 90 %.
QUANTILE_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))
LOWER_Q, UPPER_Q = 0.1, 0.9
MIN_SIGMA_FRACTION = 0.25  # a spread never below this share of the calm-weather residual
# The normalised residuals' quantiles are kept per band of the predicted spread (calm, stirring,
# rising fast ...): a linear spread model alone is fitted mostly to calm weather and would give
# too narrow intervals on a flood, which is when they matter.
SPREAD_BINS = 4
# The spread model (coefficients, band edges, quantile tables) keeps this many significant digits:
# far more than residual quantiles from a few storms can resolve, and the quantile tables at full
# precision were three quarters of a stored version's JSON, whose decoding was most of the extra
# time of a process's first forecast refresh (docs/performance.md, Forecasts round 6).
SPREAD_DIGITS = 6
# The lead times (minutes) a town may choose for forecast pre-alerts; probabilities are kept for each.
PREALERT_LEADS = (30, 60, 90, 120, 180)
# The warning rule (forecasts.predict.warning; read through forecasts.selectors.forecast_warning):
# one rule for the backtest's hit and false-alarm counts, the HQ board's pre-alerts and the
# evacuation trigger rules. A gauge below a value is warned of reaching it within a window when each
# of its last WARNING_PERSISTENCE forecasts (made at consecutive readings) gives at least the
# probability asked for of reaching it within that window. The probability is the model's own
# calibrated error distribution; the persistence keeps one forecast's jump (an odd upstream reading,
# a burst of rain that stops) from raising a warning on its own. The persistence and the defaults
# of a town's setting below were chosen on training and dev data only (`bench/forecast.py --only
# select`: the training storms left out one at a time, the demo timeline's validation storms and the
# round-5 clean seeds; at most 20 % false 氾濫危険水位 warnings in each, then the most warned at least
# 30 minutes ahead), never on the clean held-out seeds; docs/performance.md "Forecasts", round 6.
# Round 3 chose P >= 0.3 on the training storms alone, which hold one 氾濫危険水位 crossing.
WARNING_PERSISTENCE = 1
WARNING_PROBABILITY = 0.4  # the default of forecasts.models.PrealertSetting.min_probability
WARNING_MINUTES = 30  # the default of forecasts.models.PrealertSetting.lead_minutes
# Fewer training rows than this many steps' worth: the learned model is not trusted (trend fallback).
MIN_TRAINING_ROWS = 300
# Forecast rain (posted by a source for the basin's rain gauges, forecasts.models.RainForecast): the
# amounts forecast to fall over these next windows, from the newest issue at or before the forecast
# time and no older than FORECAST_RAIN_MAX_AGE. A gauge whose rain gauges have forecasts for at least
# MIN_TRAINING_ROWS of its training rows gets a second model that reads them. Which of the two serves
# a lead is chosen per lead at training (`served_variants`), by their out-of-sample skill on the
# training rows that had an issue: forecast rain helps where the flood wave is younger than the
# lead and can harm where it is older (the demo basin's middle and lower gauges).
FORECAST_RAIN_WINDOWS = (3600, 3 * 3600)
FORECAST_RAIN_MAX_AGE = 3 * 3600
# The variants of a gauge's model, as indices of predict.ModelRun.models.
READINGS, WITH_FORECAST_RAIN = 0, 1
NOT_SHOWN = -1  # a lead no variant won against persistence and the trend
VARIANT_NAMES = ("readings", "forecast_rain")


@dataclass
class Series:
    """One station's readings, oldest first: times in epoch seconds."""

    times: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, pairs) -> Series:
        pairs = list(pairs)
        if not pairs:
            return cls(np.empty(0), np.empty(0))
        times, values = zip(*pairs)
        return cls(np.asarray(times, dtype=float), np.asarray(values, dtype=float))

    def until(self, t: float) -> Series:
        """Only what was known at t (readings at or before t)."""
        end = np.searchsorted(self.times, t, side="right")
        return Series(self.times[:end], self.values[:end])

    def since(self, t: float) -> Series:
        start = np.searchsorted(self.times, t, side="left")
        return Series(self.times[start:], self.values[start:])


def level_at(series: Series, at: np.ndarray, tolerance: float) -> np.ndarray:
    """The last reading at or before each time, if it is at most `tolerance` old; NaN otherwise."""
    if len(series.times) == 0:
        return np.full(len(at), np.nan)
    index = np.searchsorted(series.times, at, side="right") - 1
    safe = np.clip(index, 0, None)
    found = (index >= 0) & (at - series.times[safe] <= tolerance)
    return np.where(found, series.values[safe], np.nan)


def rain_total(gauges: list[Series], at: np.ndarray, window: float) -> np.ndarray:
    """The mean over the basin's rain gauges of the rain in (t - window, t]; 0 with no gauges."""
    if not gauges:
        return np.zeros(len(at))
    total = np.zeros(len(at))
    for gauge in gauges:
        cumulative = np.concatenate(([0.0], np.cumsum(gauge.values)))
        end = np.searchsorted(gauge.times, at, side="right")
        start = np.searchsorted(gauge.times, at - window, side="right")
        total += cumulative[end] - cumulative[start]
    return total / len(gauges)


@dataclass
class RainForecasts:
    """One rain gauge's forecast issues, oldest first: per issue the ends of its intervals (epoch
    seconds, ascending) and the rain forecast to fall in each (since the previous end, or the issue)."""

    issued: np.ndarray
    valid: list[np.ndarray]
    values: list[np.ndarray]

    @classmethod
    def of(cls, rows) -> RainForecasts:
        """From (issued, valid, value) rows in any order."""
        by_issue: dict[float, list[tuple[float, float]]] = {}
        for issued, valid, value in rows:
            by_issue.setdefault(float(issued), []).append((float(valid), float(value)))
        issued = sorted(by_issue)
        pairs = [sorted(by_issue[t]) for t in issued]
        return cls(
            np.asarray(issued, dtype=float),
            [np.asarray([v for v, _ in p], dtype=float) for p in pairs],
            [np.asarray([x for _, x in p], dtype=float) for p in pairs],
        )

    def __len__(self) -> int:
        return len(self.issued)

    def until(self, t: float) -> RainForecasts:
        """Only the issues made at or before t (what was known at t)."""
        end = int(np.searchsorted(self.issued, t, side="right"))
        return RainForecasts(self.issued[:end], self.valid[:end], self.values[:end])

    def ahead(self, at: np.ndarray, window: float) -> np.ndarray:
        """Rain forecast to fall in (t, t + window] by the newest issue at or before t (never a later
        one), NaN where that issue is older than FORECAST_RAIN_MAX_AGE or does not reach t + window."""
        total = np.full(len(at), np.nan)
        if not len(self.issued):
            return total
        index = np.searchsorted(self.issued, at, side="right") - 1
        for issue in np.unique(index[index >= 0]):
            rows = np.flatnonzero(index == issue)
            rows = rows[at[rows] - self.issued[issue] <= FORECAST_RAIN_MAX_AGE]
            valid, values = self.valid[issue], self.values[issue]
            if not len(rows) or not len(valid):
                continue
            cumulative = np.concatenate(([0.0], np.cumsum(values)))
            start = np.searchsorted(valid, at[rows], side="right")
            end = np.searchsorted(valid, at[rows] + window, side="right")
            covered = valid[-1] >= at[rows] + window
            total[rows] = np.where(covered, cumulative[end] - cumulative[start], np.nan)
        return total


def rain_forecast_total(forecasts: list[RainForecasts], at: np.ndarray, window: float) -> np.ndarray:
    """The mean over the rain gauges with a usable forecast at each time; NaN where none has one."""
    if not forecasts:
        return np.full(len(at), np.nan)
    totals = np.vstack([f.ahead(at, window) for f in forecasts])
    known = np.isfinite(totals)
    count = known.sum(axis=0)
    summed = np.where(known, totals, 0.0).sum(axis=0)
    return np.where(count > 0, summed / np.maximum(count, 1), np.nan)


@dataclass
class Inputs:
    """What a gauge's model reads: its own series, its upstream gauges' and the basin's rain gauges',
    and the forecast rain posted for those rain gauges (if any source posts it)."""

    own: Series
    upstream: list[Series] = field(default_factory=list)
    rain: list[Series] = field(default_factory=list)
    rain_forecast: list[RainForecasts] = field(default_factory=list)
    tide: list[Series] = field(default_factory=list)  # tide gauges near the mouth (forecasts.selectors)


def feature_names(upstream_count: int, extended: bool = False, forecast_rain: bool = False, tide_count: int = 0) -> list[str]:
    names = ["level"] + [f"d{lag}" for lag in OWN_LAGS]
    for index in range(upstream_count):
        names += [f"up{index}"] + [f"up{index}_d{lag}" for lag in UPSTREAM_LAGS]
    for index in range(tide_count):
        names += [f"tide{index}"] + [f"tide{index}_d{lag}" for lag in TIDE_LAGS]
    if extended:
        names += [f"rain_{window // 3600}h" for window in ANTECEDENT_WINDOWS]
        names += ["rain_3h_squared", "rain_1h_x_3h", "rain_3h_x_level"]
        names += dryness_names()
    if forecast_rain:
        names += [f"forecast_rain_next_{window // 60}m" for window in FORECAST_RAIN_WINDOWS]
        names += ["forecast_rain_next_3h_x_level"]
    names += [f"rain_{window // 60}m" for window in RAIN_WINDOWS]
    return names


def dryness_names() -> list[str]:
    return [f"{term}_{window // 60}m" for window in DRYNESS_WINDOWS for term in DRYNESS_TERMS]


def monotone_columns(upstream_count: int, extended: bool = False, forecast_rain: bool = False,
                     tide_count: int = 0) -> tuple[list[list[int]], list[int], list[int]]:
    """Where rain enters the inputs (indices into feature_names): chains of nested totals, shortest
    window first; single columns that never fall as rain grows (the products); and columns that never
    rise as rain grows (the dryness terms). The forecast never falls with more rain when every
    chain's suffix sums of raw coefficients (the weight of the rain in one interval: the sum over the
    windows that contain it) and every rising column's coefficient are >= 0, and every falling
    column's coefficient is <= 0 (`_ridge`)."""
    names = feature_names(upstream_count, extended, forecast_rain, tide_count)
    observed = [f"rain_{window // 60}m" for window in RAIN_WINDOWS]
    if extended:
        observed += [f"rain_{window // 3600}h" for window in ANTECEDENT_WINDOWS]
    chains = [[names.index(name) for name in observed]]
    if forecast_rain:
        chains.append([names.index(f"forecast_rain_next_{window // 60}m") for window in FORECAST_RAIN_WINDOWS])
    products = ("rain_3h_squared", "rain_1h_x_3h", "rain_3h_x_level", "forecast_rain_next_3h_x_level")
    falling = [names.index(name) for name in dryness_names()] if extended else []
    return chains, [names.index(name) for name in products if name in names], falling


def features_at(
    inputs: Inputs, at: np.ndarray, step: float, upstream_calm: list[float], extended: bool = False,
    forecast_rain: bool = False, tide_mean: list[float] | None = None,
) -> np.ndarray:
    """One row of inputs per issue time, from readings at or before it (rows with gaps hold NaN).

    An upstream gauge with no recent reading counts as calm (`upstream_calm`): flood gauges report
    only above their start level, so their silence means low water. A tide gauge's gap reads as its
    mean level (`tide_mean`, one per tide input the model was trained with)."""
    tolerance = step * 1.5
    totals: dict[float, np.ndarray] = {}

    def rain(window: float) -> np.ndarray:  # each window's totals once (the dryness inputs reuse them)
        if window not in totals:
            totals[window] = rain_total(inputs.rain, at, window)
        return totals[window]

    own_now = level_at(inputs.own, at, tolerance)
    columns = [own_now] + [own_now - level_at(inputs.own, at - lag * step, tolerance) for lag in OWN_LAGS]
    for series, calm in zip(inputs.upstream, upstream_calm):
        now = np.nan_to_num(level_at(series, at, tolerance), nan=calm)
        columns.append(now)
        for lag in UPSTREAM_LAGS:
            columns.append(now - np.nan_to_num(level_at(series, at - lag * step, tolerance), nan=calm))
    for index, mean in enumerate(tide_mean or []):
        # A tide gauge gone since training reads as calm sea rather than changing the model's shape.
        series = inputs.tide[index] if index < len(inputs.tide) else Series.of([])
        now = np.nan_to_num(level_at(series, at, tolerance), nan=mean)
        columns.append(now)
        for lag in TIDE_LAGS:
            columns.append(now - np.nan_to_num(level_at(series, at - lag * step, tolerance), nan=mean))
    if extended:
        for window in ANTECEDENT_WINDOWS:
            columns.append(rain(window))
        # Runoff is not linear in rain: heavy rain on rain runs off faster, and a high river rises
        # differently from a low one (the rating curve). Products let the linear model bend. The
        # level in a product is clipped at 0 so that each product never falls as rain grows.
        rain_1h, rain_3h = rain(3600), rain(3 * 3600)
        columns += [rain_3h * rain_3h, rain_1h * rain_3h, rain_3h * np.maximum(own_now, 0)]
        own_rise = np.maximum(columns[1 + OWN_LAGS.index(3)], 0)
        width = 1 + len(UPSTREAM_LAGS)
        upstream_rise = sum((np.maximum(columns[1 + len(OWN_LAGS) + i * width + 1 + UPSTREAM_LAGS.index(3)], 0)
                             for i in range(len(upstream_calm))), np.zeros(len(at)))
        # Level-derived factors are clipped at 0, so each product falls (or stays) as rain grows.
        factors = {"dry": np.ones(len(at)), "rise_x_dry": own_rise, "upstream_rise_x_dry": upstream_rise,
                   "level_x_dry": np.maximum(own_now, 0)}
        for window in DRYNESS_WINDOWS:
            dryness = np.exp(-rain(window) / DRYNESS_MM)
            columns += [factors[term] * dryness for term in DRYNESS_TERMS]
    if forecast_rain:
        ahead = [rain_forecast_total(inputs.rain_forecast, at, window) for window in FORECAST_RAIN_WINDOWS]
        columns += ahead + [ahead[-1] * np.maximum(own_now, 0)]
    for window in RAIN_WINDOWS:
        columns.append(rain(window))
    return np.column_stack(columns)


def spread_features(x: np.ndarray, upstream_count: int) -> np.ndarray:
    """What the residual's size is modelled on: how fast the gauge and its upstream move. Not rain:
    with a spread that does not read rain, every line of a forecast (its median and band: the
    regression's level plus the spread times a fixed quantile) and every probability of reaching a
    level never falls as rain grows, since the regression's level never does (`_ridge`)."""
    own = np.abs(x[:, 1 + OWN_LAGS.index(3)])
    columns = [np.ones(len(x)), own]
    if upstream_count:
        start = 1 + len(OWN_LAGS)
        width = 1 + len(UPSTREAM_LAGS)
        columns.append(sum(np.abs(x[:, start + i * width + 1 + UPSTREAM_LAGS.index(3)]) for i in range(upstream_count)))
    return np.column_stack(columns)


def leads_for(step: float) -> int:
    return max(1, int(HORIZON_SECONDS // step))


def targets_at(own: Series, at: np.ndarray, step: float, leads: int) -> np.ndarray:
    now = level_at(own, at, step * 0.5)
    return np.column_stack([level_at(own, at + h * step, step * 0.5) - now for h in range(1, leads + 1)])


def _ridge(x: np.ndarray, y: np.ndarray, monotone: tuple = ([], [], [])):
    """Ridge regression on standardised inputs, every lead at once; with `monotone` (as from
    monotone_columns) the rain-response is constrained so that more rain never lowers a forecast.
    Leads whose free solution already satisfies that keep it unchanged."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    a = z.T @ z + RIDGE * np.eye(z.shape[1])
    centre = y.mean(axis=0)
    rhs = z.T @ (y - centre)
    beta = np.linalg.solve(a, rhs)
    chains, singles, falling = monotone
    if chains or singles or falling:
        # Solved in the weights of rain per interval (gamma >= 0), with beta = basis @ gamma; the
        # ridge penalty stays on beta, so a feasible free solution is the same solution.
        basis = np.eye(len(scale))
        bounded = np.zeros(len(scale), dtype=bool)
        for chain in chains:
            for shorter, longer in zip(chain, chain[1:]):
                basis[shorter, longer] = -scale[shorter]
            for column in chain:
                basis[column, column] = scale[column]
            bounded[chain] = True
        for column in singles:
            basis[column, column] = scale[column]
            bounded[column] = True
        for column in falling:  # beta = -scale * gamma <= 0
            basis[column, column] = -scale[column]
            bounded[column] = True
        gamma = np.linalg.solve(basis, beta)
        gram, target = basis.T @ a @ basis, basis.T @ rhs
        infeasible = (gamma[bounded] < 0).any(axis=0)
        for lead in range(beta.shape[1]):
            if infeasible[lead]:
                # Neighbouring leads share most of their active set: starting from the previous
                # lead's saves most of the additions and removals.
                start = gamma[:, lead - 1] > 0 if lead else gamma[:, lead] > 0
                gamma[:, lead] = _bounded_lstsq(gram, target[:, lead], bounded, start=start)
                beta[:, lead] = basis @ gamma[:, lead]
    return mean, scale, beta, centre


def _bounded_lstsq(gram: np.ndarray, target: np.ndarray, bounded: np.ndarray | None = None,
                   start: np.ndarray | None = None) -> np.ndarray:
    """argmin of |A c - b|^2 given as gram = A'A and target = A'b, with c >= 0 where `bounded` (all
    when None): Lawson and Hanson's active set, on the normal equations (the problems here have
    fewer than 50 unknowns). `start`: bounded unknowns to try free first (those the free solution
    or a neighbouring problem had positive), which saves most of the one-at-a-time additions.

    Anti-cycling, for nearly collinear unknowns (two rain products, gram's condition ~6e14): after
    a step back only the unknowns that reached 0 leave the free set (a small positive one, such as
    the one just added, stays; the gradient's tolerance is no measure of a coefficient), and an
    unknown is added at most once from any one free set, so rounding cannot make the loop re-add
    what it has just dropped until its cap."""
    n = len(target)
    bounded = np.ones(n, dtype=bool) if bounded is None else bounded
    free = ~bounded

    def solve(columns):
        solution = np.zeros(n)
        if columns.any():
            sub = gram[np.ix_(columns, columns)]
            try:
                solution[columns] = np.linalg.solve(sub, target[columns])
            except np.linalg.LinAlgError:  # a column of zeros (no rain gauge, say)
                solution[columns] = np.linalg.lstsq(sub, target[columns], rcond=None)[0]
        return solution

    coef = solve(free)  # feasible: every bounded unknown at 0
    tolerance = 1e-10 * max(float(np.abs(target).max()), 1.0)
    if start is not None:
        free = free | (bounded & start)
    tried: dict[bytes, set[int]] = {}
    for _ in range(n * n):
        for _ in range(n):
            trial = solve(free)
            negative = free & bounded & (trial <= 0)
            if not negative.any():
                coef = trial
                break
            # Step back to where the first of them reaches zero, and hold it there.
            ratios = np.where(negative, coef / np.maximum(coef - trial, 1e-300), np.inf)
            first = int(np.argmin(ratios))
            coef = coef + ratios[first] * (trial - coef)
            coef[first] = 0.0
            free &= ~(bounded & (coef <= 0))
            coef[~free] = 0.0
        gradient = target - gram @ coef
        candidates = bounded & ~free & (gradient > tolerance)
        done = tried.setdefault(free.tobytes(), set())
        candidates[list(done)] = False
        if not candidates.any():
            break
        added = int(np.argmax(np.where(candidates, gradient, -np.inf)))
        done.add(added)
        free[added] = True
    return coef


@dataclass
class ArxModel:
    step: float
    leads: int
    upstream_count: int
    upstream_calm: list[float]
    # The arrays below are lists as `fit` makes them, numpy arrays as a stored version decodes
    # (`from_params`); as_json gives lists either way.
    mean: list[float]
    scale: list[float]
    beta: list[list[float]]  # features x leads
    centre: list[float]
    spread: list[list[float]]  # per lead: coefficients of spread_features
    quantiles: list[list[list[float]]]  # per lead, per spread band: the normalised residual at QUANTILE_LEVELS
    bin_edges: list[list[float]]  # per lead: the spreads between the bands
    skill: list[dict]
    rows: int
    features_version: int = FEATURES_VERSION
    extended: bool = False
    forecast_rain: bool = False
    # The model that also reads forecast rain (an ArxModel's JSON), where the history allowed one.
    with_forecast_rain: dict | None = None
    tide_mean: list[float] = field(default_factory=list)  # one per tide input; empty: none

    def features(self, inputs: Inputs, at: np.ndarray) -> np.ndarray:
        return features_at(inputs, at, self.step, self.upstream_calm, self.extended, self.forecast_rain, self.tide_mean)

    def __post_init__(self):
        # Arrays made once per loaded model: a refresh forecasts hundreds of gauges per batch.
        self._mean = np.asarray(self.mean)
        self._scale = np.asarray(self.scale)
        self._beta = np.asarray(self.beta)
        self._centre = np.asarray(self.centre)
        self._spread = np.asarray(self.spread)
        self._floor = self._spread[:, 0] * MIN_SIGMA_FRACTION
        self._tables = [np.asarray(table) for table in self.quantiles]  # per lead: bands x levels
        self._edges = [np.asarray(edges) for edges in self.bin_edges]
        self._at_level: dict[float, list[np.ndarray]] = {}
        self._stack: tuple[np.ndarray, np.ndarray] | None = None
        self._level_tables: dict[float, np.ndarray] = {}  # leads x bands: the quantile at a level
        self._forecast_rain_model = ArxModel.from_json(self.with_forecast_rain) if self.with_forecast_rain else None

    @property
    def forecast_rain_model(self) -> ArxModel | None:
        return self._forecast_rain_model

    def as_json(self) -> dict:
        data = _plain_fields({key: value for key, value in vars(self).items() if not key.startswith("_")})
        if data["with_forecast_rain"]:
            data["with_forecast_rain"] = _plain_fields(data["with_forecast_rain"])
        return data

    @classmethod
    def from_json(cls, data: dict) -> ArxModel:
        # Keys this code no longer has (a version of older features: "input_range") are left out;
        # such a version is not served (`current`), only decoded.
        known = {f.name for f in fields(cls)}
        return cls(**({"features_version": 1, "skill": []} | {k: v for k, v in data.items() if k in known}))

    def as_params(self) -> dict:
        """What ForecastModel.params stores: everything but the skill, whose one home is
        ForecastModel.skill (the model's per-lead skill, which also records per lead the skill of
        the variant that reads forecast rain and whether it serves)."""
        params = _packed(self.as_json())
        del params["skill"]
        if self.with_forecast_rain:
            params["with_forecast_rain"] = _packed({k: v for k, v in self.with_forecast_rain.items() if k != "skill"})
        return params

    @classmethod
    def from_params(cls, params: dict, skill: list[dict]) -> ArxModel:
        """A stored version (ForecastModel.params and .skill), its arrays packed (`as_params`) or,
        stored before 2026-12-01, JSON lists; a copy of the skill left in the params of a version
        stored before 2026-12 is ignored."""
        unpacked = _unpacked(params)
        if isinstance(params.get("with_forecast_rain"), dict):
            unpacked["with_forecast_rain"] = _unpacked(params["with_forecast_rain"])
        return cls.from_json(unpacked | {"skill": skill})

    @property
    def current(self) -> bool:
        return self.features_version == FEATURES_VERSION

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The regression's change from now and the spread, each rows x leads: the level at a
        quantile q of lead h is level + change + sigma * quantile(h, q)."""
        change = ((x - self._mean) / self._scale) @ self._beta + self._centre
        sigma = spread_features(x, self.upstream_count) @ self._spread.T
        return change, np.maximum(sigma, self._floor)

    def quantile(self, lead_index: int, level: float, sigma) -> np.ndarray | float:
        """The normalised residual at `level` for forecasts of spread `sigma` (scalar or array)."""
        per_lead = self._at_level.get(level)
        if per_lead is None:
            per_lead = self._at_level[level] = [
                np.array([np.interp(level, QUANTILE_LEVELS, row) for row in table]) for table in self._tables
            ]
        result = per_lead[lead_index][np.searchsorted(self._edges[lead_index], sigma)]
        return float(result) if np.ndim(result) == 0 else result

    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """Every lead's quantile table and band edges in one array each (leads x bands x levels,
        leads x edges; a lead with fewer bands repeats its last, its missing edges are +inf), so
        that a forecast's every lead is read at once."""
        if self._stack is None:
            bands = max(len(table) for table in self._tables)
            tables = np.empty((len(self._tables), bands, len(QUANTILE_LEVELS)))
            edges = np.full((len(self._tables), max(bands - 1, 0)), np.inf)
            for lead, (table, lead_edges) in enumerate(zip(self._tables, self._edges)):
                tables[lead, : len(table)] = table
                tables[lead, len(table) :] = table[-1]
                edges[lead, : len(lead_edges)] = lead_edges
            self._stack = (tables, edges)
        return self._stack

    def _bands(self, sigma: np.ndarray) -> np.ndarray:
        """The spread band of each forecast (rows x leads, the first leads of the model)."""
        _, edges = self._stacked()
        return (edges[None, : sigma.shape[1], :] < sigma[..., None]).sum(axis=-1)

    def quantile_matrix(self, level: float, sigma: np.ndarray) -> np.ndarray:
        """`quantile` for forecasts x leads at once (sigma: rows x the first leads of the model)."""
        at_level = self._level_tables.get(level)
        if at_level is None:
            tables, _ = self._stacked()
            # Linear between the two stored levels around `level`, for every lead and band at once.
            upper = int(np.clip(np.searchsorted(QUANTILE_LEVELS, level), 1, len(QUANTILE_LEVELS) - 1))
            low, high = QUANTILE_LEVELS[upper - 1], QUANTILE_LEVELS[upper]
            fraction = float(np.clip((level - low) / (high - low), 0, 1))
            at_level = self._level_tables[level] = tables[..., upper - 1] * (1 - fraction) + tables[..., upper] * fraction
        return at_level[np.arange(sigma.shape[1])[None, :], self._bands(sigma)]

    def exceedance_matrix(self, centre: np.ndarray, sigma: np.ndarray, value: float) -> np.ndarray:
        """P(level >= value) for forecasts x leads at once (`centre` is level + change, both rows x
        the first leads of the model), from the stored distribution of normalised residuals; beyond
        the stored quantiles the tails decay exponentially."""
        tables, _ = self._stacked()
        levels = np.asarray(QUANTILE_LEVELS)
        q = tables[np.arange(sigma.shape[1])[None, :], self._bands(sigma)]  # rows x leads x levels
        z = (value - centre) / sigma
        below_all = z <= q[..., 0]
        above_all = z >= q[..., -1]
        below = 1 - levels[0] * np.exp(-(q[..., 0] - np.minimum(z, q[..., 0])) / np.maximum(q[..., 1] - q[..., 0], 1e-9))
        above = (1 - levels[-1]) * np.exp(-(np.maximum(z, q[..., -1]) - q[..., -1]) / np.maximum(q[..., -1] - q[..., -2], 1e-9))
        k = np.clip((q <= z[..., None]).sum(axis=-1), 1, len(levels) - 1)  # z lies in [q[k-1], q[k])
        low = np.take_along_axis(q, (k - 1)[..., None], axis=-1)[..., 0]
        high = np.take_along_axis(q, k[..., None], axis=-1)[..., 0]
        fraction = np.clip((z - low) / np.maximum(high - low, 1e-12), 0, 1)
        inside = 1 - (levels[k - 1] + fraction * (levels[k] - levels[k - 1]))
        return np.where(below_all, below, np.where(above_all, above, inside))

    def exceedance(self, lead_index: int, centre: float, sigma: float, value: float) -> float:
        """P(level at this lead >= value) for one forecast (exceedance_matrix of one row)."""
        centres = np.full((1, lead_index + 1), centre)
        sigmas = np.full((1, lead_index + 1), sigma)
        return float(self.exceedance_matrix(centres, sigmas, value)[0, lead_index])


# A stored version's arrays (ForecastModel.params) are kept as base64 of their little-endian float64
# bytes: exact, like JSON's shortest repr of a float, but decoded at memory speed where JSON parses
# every one of a version's thousands of numbers, which was most of what a process's first forecast
# refresh does more than the next (docs/performance.md, Forecasts round 7).
PACKED_FIELDS = ("mean", "scale", "beta", "centre", "spread", "quantiles", "bin_edges")
PACKED_FORMAT = "float64le"


def _plain(value):
    """An array field as JSON lists (as `fit` makes it)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return [_plain(item) for item in value] if isinstance(value, list | tuple) else value


def _plain_fields(data: dict) -> dict:
    return {key: _plain(value) if key in PACKED_FIELDS else value for key, value in data.items()}


def _pack(name: str, value) -> dict:
    """{"float64le": base64, "shape": [...]}; a field of one array per lead whose first dimension
    differs between leads (quantiles, bin_edges) is stored concatenated, with each lead's `split`."""
    ragged = name in ("quantiles", "bin_edges")
    arrays = [np.asarray(item, dtype="<f8") for item in value] if ragged else [np.asarray(value, dtype="<f8")]
    whole = np.concatenate(arrays) if ragged and arrays else (arrays[0] if arrays else np.empty(0))
    packed = {PACKED_FORMAT: base64.b64encode(whole.tobytes()).decode("ascii"), "shape": list(whole.shape)}
    return packed | ({"split": [len(array) for array in arrays]} if ragged else {})


def _unpack(name: str, value):
    if not isinstance(value, dict):
        return value  # stored as JSON lists (before 2026-12-01)
    try:
        array = np.frombuffer(base64.b64decode(value[PACKED_FORMAT], validate=True), dtype="<f8").reshape(value["shape"])
        if "split" not in value:
            return array
        split = [int(length) for length in value["split"]]
        if sum(split) != len(array) or min(split, default=0) < 0:
            raise ValueError(f"its split {split} does not add up to its {len(array)} rows")
        ends = np.cumsum(split).tolist()
        return [array[end - length : end] for end, length in zip(ends, split)]
    except (KeyError, TypeError, ValueError) as error:  # binascii.Error is a ValueError
        raise ValueError(f"stored forecast model: field {name!r} is not a packed float64 array ({error})") from error


def _packed(data: dict) -> dict:
    return {key: _pack(key, value) if key in PACKED_FIELDS else value for key, value in data.items()}


def _unpacked(data: dict) -> dict:
    return {key: _unpack(key, value) if key in PACKED_FIELDS else value for key, value in data.items()}


def trend_lines(own: Series, times: np.ndarray, step: float, leads: int) -> tuple[np.ndarray, np.ndarray]:
    """The straight line through the last hour's readings before each time (alerts.evaluation's
    fit): medians and standard errors (times x leads), NaN where there is no line. The trend
    baseline of the skill a lead must beat, and the labelled fallback (forecasts.predict)."""
    median, sigma = np.full((len(times), leads), np.nan), np.full((len(times), leads), np.nan)
    hours = np.arange(1, leads + 1) * step / 3600
    for row, t in enumerate(times):
        end = np.searchsorted(own.times, t, side="right")
        start = np.searchsorted(own.times, t - 3600, side="left")
        trend = linear_trend(own.times[start:end], own.values[start:end])
        if trend is not None:
            median[row] = trend.fitted_now + trend.slope_per_hour * hours
            sigma[row] = np.hypot(trend.fitted_now_se, trend.slope_se_per_hour * hours)
    return median, sigma


def skill_scores(observed: np.ndarray, predicted: np.ndarray) -> dict:
    ok = np.isfinite(observed) & np.isfinite(predicted)
    if ok.sum() < 2:
        return {"nse": None, "rmse": None, "n": int(ok.sum())}
    o, p = observed[ok], predicted[ok]
    rmse = float(np.sqrt(np.mean((o - p) ** 2)))
    variance = float(np.sum((o - o.mean()) ** 2))
    nse = float(1 - np.sum((o - p) ** 2) / variance) if variance > 0 else None
    return {"nse": nse, "rmse": rmse, "n": int(ok.sum())}


def training_rows(
    inputs: Inputs, step: float, *, since: float, until: float, upstream_calm: list[float], extended: bool = False,
    forecast_rain: bool = False, tide_mean: list[float] | None = None, exclude: tuple[float, float] | None = None,
):
    """Issue times on the gauge's own readings in [since, until - horizon], their inputs and targets
    (only rows with every input and every lead known). With `exclude` (start, end), no row whose
    issue time or target falls in that span (a storm left out to score the model on it)."""
    own = inputs.own
    mask = (own.times >= since) & (own.times <= until)
    if exclude is not None:
        mask &= (own.times < exclude[0] - HORIZON_SECONDS) | (own.times > exclude[1])
    at = own.times[mask]
    leads = leads_for(step)
    x = features_at(inputs, at, step, upstream_calm, extended, forecast_rain, tide_mean)
    y = targets_at(own.until(until), at, step, leads)
    keep = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    return at[keep], x[keep], y[keep], leads


def calm_levels(inputs: Inputs) -> list[float]:
    return [float(np.min(series.values)) if len(series.values) else 0.0 for series in inputs.upstream]


def tide_means(inputs: Inputs, until: float) -> list[float]:
    """The mean level of each tide input with readings up to `until`: a tide gauge without any is
    left out (the inputs are the first len(tide_mean) tide series)."""
    means = []
    for series in inputs.tide:
        known = series.until(until).values
        if not len(known):
            break
        means.append(float(np.mean(known)))
    return means


# One BLAS thread: training runs in the Celery worker beside the drain on 2 cores, where a second
# BLAS thread mostly spins waiting for a busy core (33-59 s of CPU for 21 s of work, round 7).
@threadpool_limits.wrap(limits=1, user_api="blas")
def fit(
    inputs: Inputs, step: float, *, since: float, until: float, exclude: tuple[float, float] | None = None
) -> ArxModel | None:
    """Learn a gauge's model from readings in [since, until] (leaving out the span `exclude`, if
    given); None with too little history. With enough forecast rain in the window, the model
    carries a second one that also reads it."""
    upstream_calm = calm_levels(Inputs(inputs.own, [s.until(until) for s in inputs.upstream]))
    tide_mean = tide_means(inputs, until)
    rows = {"since": since, "until": until, "upstream_calm": upstream_calm, "tide_mean": tide_mean, "exclude": exclude}
    at, x, y, leads = training_rows(inputs, step, **rows)
    if len(at) < MIN_TRAINING_ROWS:
        return None
    extended = len(at) >= EXTENDED_MIN_ROWS
    if extended:
        at, x, y, leads = training_rows(inputs, step, extended=True, **rows)
    # The trend baseline at the training rows, from the readings up to `until` only.
    trend, _ = trend_lines(inputs.own.until(until), at, step, leads)
    model, out_of_sample = _fit_rows(x, y, step, leads, inputs, upstream_calm, trend, extended=extended, tide_mean=tide_mean)
    if any(len(f) for f in inputs.rain_forecast):
        rain_at, x, y, leads = training_rows(inputs, step, extended=extended, forecast_rain=True, **rows)
        # Its rows are the model's rows that had a current issue (its inputs are the model's and more).
        common = np.searchsorted(at, rain_at)
        if len(rain_at) >= MIN_TRAINING_ROWS and (common < len(at)).all() and (at[np.minimum(common, len(at) - 1)] == rain_at).all():
            with_forecast, rain_out_of_sample = _fit_rows(
                x, y, step, leads, inputs, upstream_calm, trend[common], extended=extended, forecast_rain=True,
                tide_mean=tide_mean,
            )
            level_now = x[:, :1]
            _choose_variants(model, with_forecast, level_now + y, level_now + out_of_sample[common],
                             level_now + rain_out_of_sample)
            model.with_forecast_rain = with_forecast.as_json()
            model._forecast_rain_model = with_forecast
    return model


def _choose_variants(model: ArxModel, with_forecast: ArxModel, observed, readings_only, with_rain) -> None:
    """Per lead, whether the model that also reads forecast rain serves it when an issue is current:
    where its out-of-sample RMSE on the training rows that had an issue is below the model of
    readings alone on the same rows, and it beats persistence and the trend there (its `shown`).
    Training rows only: the held-out future plays no part in the choice. Recorded in the skill of
    both (model.skill[lead]["forecast_rain"]), which is stored with the model version."""
    for lead, (entry, rain_entry) in enumerate(zip(model.skill, with_forecast.skill)):
        alone = skill_scores(observed[:, lead], readings_only[:, lead])["rmse"]
        rain = skill_scores(observed[:, lead], with_rain[:, lead])["rmse"]
        serves = bool(rain_entry["shown"] and rain is not None and alone is not None and rain < alone)
        rain_entry["readings_only_rmse"] = alone
        rain_entry["serves"] = serves
        entry["forecast_rain"] = {
            "nse": rain_entry["nse"], "rmse": rain, "readings_only_rmse": alone,
            "persistence_rmse": rain_entry["persistence_rmse"], "trend_rmse": rain_entry["trend_rmse"],
            "rows": with_forecast.rows, "serves": serves,
        }


def _fit_rows(
    x, y, step, leads, inputs: Inputs, upstream_calm, trend: np.ndarray, *, extended: bool, forecast_rain: bool = False,
    tide_mean: list[float] | None = None,
) -> tuple[ArxModel, np.ndarray]:
    """The model of these rows and its out-of-sample changes (rows x leads); `trend` is the trend
    baseline's level at the rows (rows x leads), which a shown lead must beat as well as persistence."""
    # Blocked cross-validation: each contiguous block predicted by a model of the others, so the
    # spread and the skill are judged on data the model did not learn from.
    folds = np.array_split(np.arange(len(x)), CV_FOLDS)
    out_of_sample = np.empty_like(y)
    monotone = monotone_columns(len(inputs.upstream), extended, forecast_rain, len(tide_mean or []))
    for fold in folds:
        train = np.ones(len(x), dtype=bool)
        train[fold] = False
        mean, scale, beta, centre = _ridge(x[train], y[train], monotone)
        out_of_sample[fold] = ((x[fold] - mean) / scale) @ beta + centre
    residual = y - out_of_sample
    spread_x = spread_features(x, len(inputs.upstream))
    spread, quantiles, edges, skill = [], [], [], []
    persistence = np.zeros_like(y)
    for lead in range(leads):
        target = np.abs(residual[:, lead]) * math.sqrt(math.pi / 2)
        coef = _bounded_lstsq(spread_x.T @ spread_x, spread_x.T @ target)
        if coef[0] <= 0:
            coef[0] = max(float(np.median(np.abs(residual[:, lead]))), 1e-4)
        coef = _significant(coef)
        sigma = np.maximum(spread_x @ coef, coef[0] * MIN_SIGMA_FRACTION)
        spread.append(coef.tolist())
        normalised = residual[:, lead] / sigma
        lead_edges = np.unique(_significant(np.quantile(sigma, np.linspace(0, 1, SPREAD_BINS + 1)[1:-1])))
        band = np.searchsorted(lead_edges, sigma)
        edges.append(lead_edges.tolist())
        quantiles.append(
            [
                _significant(
                    np.quantile(normalised[band == b] if (band == b).sum() >= 20 else normalised, QUANTILE_LEVELS)
                ).tolist()
                for b in range(len(lead_edges) + 1)
            ]
        )
        level_now = x[:, 0]
        model_scores = skill_scores(level_now + y[:, lead], level_now + out_of_sample[:, lead])
        persistence_scores = skill_scores(level_now + y[:, lead], level_now + persistence[:, lead])
        # Against the trend where it has a line (it needs half an hour of the last hour's readings).
        lined = np.isfinite(trend[:, lead])
        trend_scores = skill_scores(level_now[lined] + y[lined, lead], trend[lined, lead])
        trend_scores["model_rmse"] = skill_scores(level_now[lined] + y[lined, lead], level_now[lined] + out_of_sample[lined, lead])["rmse"]
        skill.append(
            {
                "lead_minutes": round((lead + 1) * step / 60),
                "nse": model_scores["nse"],
                "rmse": model_scores["rmse"],
                "persistence_rmse": persistence_scores["rmse"],
                "trend_rmse": trend_scores["rmse"],
                "shown": _shown(model_scores, persistence_scores, trend_scores, (lead + 1) * step),
            }
        )
    mean, scale, beta, centre = _ridge(x, y, monotone)
    model = ArxModel(
        step=step,
        leads=leads,
        upstream_count=len(inputs.upstream),
        upstream_calm=upstream_calm,
        mean=mean.tolist(),
        scale=scale.tolist(),
        beta=beta.tolist(),
        centre=centre.tolist(),
        spread=spread,
        quantiles=quantiles,
        bin_edges=edges,
        skill=skill,
        rows=len(x),
        extended=extended,
        forecast_rain=forecast_rain,
        tide_mean=tide_mean or [],
    )
    return model, out_of_sample


def _significant(values: np.ndarray, digits: int = SPREAD_DIGITS) -> np.ndarray:
    """`values` to `digits` significant digits (the spread model's coefficients, band edges and
    quantile tables, rounded where they are made, so the model served and the model stored agree)."""
    return np.array([float(f"{value:.{digits}g}") for value in np.ravel(values)]).reshape(np.shape(values))


def _shown(model: dict, persistence: dict, trend: dict, lead_seconds: float) -> bool:
    """A lead is shown only where the model beats persistence and the trend out of sample (blocked
    cross-validation on the training rows). The trend is compared on the rows where it has a line
    (`trend["model_rmse"]`: the model's RMSE on those rows); with no line anywhere it is no competitor."""
    if model["rmse"] is None or persistence["rmse"] is None:
        return False
    beats_trend = trend["rmse"] is None or trend["model_rmse"] < trend["rmse"]
    return model["rmse"] < persistence["rmse"] and beats_trend and lead_seconds <= HORIZON_SECONDS


def served_variants(skill: list[dict], forecast_rain: bool) -> list[int]:
    """Which variant serves each lead (READINGS, WITH_FORECAST_RAIN, or NOT_SHOWN), one per lead of
    the model. With a current forecast-rain issue (predict.model_run) a lead is served by the model that reads it where training chose it
    (`_choose_variants`), else by the model of readings where that lead is shown; a lead neither
    won is not shown, whatever the leads around it did (a forecast's points are its shown leads)."""
    variants = []
    for entry in skill:
        if forecast_rain and (entry.get("forecast_rain") or {}).get("serves"):
            variants.append(WITH_FORECAST_RAIN)
        elif entry["shown"]:
            variants.append(READINGS)
        else:
            variants.append(NOT_SHOWN)
    return variants


def shown_leads(skill: list[dict]) -> int:
    """How many leads the model of readings alone serves (served_variants without forecast rain)."""
    return sum(variant != NOT_SHOWN for variant in served_variants(skill, forecast_rain=False))
