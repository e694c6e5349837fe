"""A small synthetic basin for forecast tests: storms of rain, a linear-reservoir upstream gauge and
a downstream gauge that follows it with a delay. Deterministic per seed."""

from __future__ import annotations

import numpy as np

from forecasts.learn import Inputs, RainForecasts, Series

STEP = 600.0
START = 1_780_000_200.0  # on the 10-minute grid


def basin(days: int, seed: int, *, storms_per_week: float = 2.5, start: float = START) -> tuple[np.ndarray, Inputs]:
    rng = np.random.default_rng(seed)
    n = days * 144
    times = start + STEP * np.arange(n)
    rain = np.zeros(n)
    for _ in range(max(1, int(days / 7 * storms_per_week))):
        start = rng.integers(0, n - 60)
        peak = rng.uniform(2, 8)
        length = rng.integers(12, 36)
        shape = np.sin(np.linspace(0, np.pi, length)) * peak
        rain[start : start + length] += shape[: n - start]
    rain = np.round(rain * 2) / 2  # 0.5 mm tips
    upstream_flow = np.zeros(n)
    downstream_flow = np.zeros(n)
    store = 0.0
    for i in range(n):
        store = store * 0.93 + rain[i]
        upstream_flow[i] = 0.07 * store
        lagged = upstream_flow[i - 4] if i >= 4 else 0.0
        downstream_flow[i] = 0.8 * (downstream_flow[i - 1] if i else 0.0) + 0.2 * (1.5 * lagged + 0.03 * store)
    upstream = 0.5 + 0.45 * np.sqrt(upstream_flow) + rng.uniform(-0.004, 0.004, n)
    downstream = 0.8 + 0.6 * np.sqrt(downstream_flow) + rng.uniform(-0.004, 0.004, n)
    inputs = Inputs(
        own=Series(times, np.round(downstream, 2)),
        upstream=[Series(times, np.round(upstream, 2))],
        rain=[Series(times, rain)],
    )
    return times, inputs


def rain_forecasts(times: np.ndarray, rain: np.ndarray, seed: int, *, every: int = 6, horizon: int = 36,
                   error: float = 0.3) -> RainForecasts:
    """Hourly issues of the next `horizon` steps' rain: what truly fell, times a log-normal error
    per issue (a forecast that knows the timing, not the amount)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(0, len(times) - 1, every):
        factor = float(np.exp(rng.normal(0, error)))
        for h in range(1, horizon + 1):
            if k + h < len(times):
                rows.append((times[k], times[k + h], float(rain[k + h]) * factor))
    return RainForecasts.of(rows)


def wetter(rain: Series, at: float, rng: np.random.Generator, most: float, *, recent: bool = False) -> Series:
    """The rain series with extra rain (up to `most` mm per step) over a random span of the day
    before `at` (with `recent`, a span ending at `at`: the rain that has just fallen, which the
    dryness inputs read): the same readings or more, never less."""
    values = rain.values.copy()
    span = (rain.times > at - 86400) & (rain.times <= at)
    steps = np.flatnonzero(span)
    if recent:
        chosen = steps[-rng.integers(1, 36) :]
    else:
        first = rng.integers(0, len(steps))
        chosen = steps[first : first + rng.integers(1, 36)]
    values[chosen] += rng.uniform(0, most, len(chosen))
    return Series(rain.times, values)
