"""The one level rule: a reading (or a rain total) against a station's threshold ladder.

Ingestion judges the newest reading with the values in force now; as-of reads (the map at a past
moment) judge the reading that was newest then with the values in force then. Both call here, so the
map of the past and the map as it was cannot disagree.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from datetime import datetime, timedelta
from typing import Iterable, NamedTuple, Sequence


class Measure(NamedTuple):
    """What a level is judged on, without a StationState: a reading and its rain totals."""

    value: float | None
    accumulations: dict


def level_for(state, thresholds, *, at: datetime | None = None) -> int | None:
    """The 0-5 alert-level equivalent of `state` (its `value` and, for rain, `accumulations`); None
    when there is no reading. `at`: judge with the threshold values in force then (None: now).

    `thresholds` are models or ingestion's `catalog.ThresholdRow`s (current values only, so `at` is
    None for those); `accumulations` is a dict, or its JSON text as ingestion reads it."""
    if state.value is None:
        return None
    level = 0
    accumulations = None
    for threshold in thresholds:
        if threshold.level is None:
            continue
        if threshold.window:
            if accumulations is None:
                accumulations = state.accumulations
                if isinstance(accumulations, str):
                    accumulations = json.loads(accumulations)
            measured = accumulations.get(str(int(threshold.window.total_seconds())))
        else:
            measured = state.value
        value = threshold.value if at is None else threshold.value_at(at)
        if measured is not None and measured >= value:
            level = max(level, threshold.level)
    return level


def value_ladder(thresholds):
    """`level_for` of a bare reading value, for judging many readings of one station: the value
    thresholds (no rain windows) at their current values as a sorted ladder, climbed by bisection.
    Equal to level_for(Measure(value, {}), thresholds) (tests/sensors/test_levels_ladder.py); valid
    only for thresholds without windows, at times their current values were in force."""
    steps = sorted((t.value, t.level) for t in thresholds if t.level is not None)
    values = [value for value, _ in steps]
    reached, highest = [], 0
    for _, level in steps:
        highest = max(highest, level)
        reached.append(highest)

    def level_of(value: float | None) -> int | None:
        if value is None:
            return None
        if value != value:  # NaN reaches no threshold (every comparison with it is false)
            return 0
        index = bisect_right(values, value)
        return reached[index - 1] if index else 0

    return level_of


def window_totals(points: Sequence[tuple[datetime, float]], end: datetime, windows: Iterable[timedelta]) -> dict[str, float]:
    """Rain totals per window ending at `end` ({"3600": 12.5}), from readings (time, value) oldest
    first, none after `end`: a reading counts when it is in (end − window, end]."""
    times = [point[0] for point in points]
    totals = {}
    for window in windows:
        start = bisect_right(times, end - window)
        totals[str(int(window.total_seconds()))] = round(sum(value for _, value in points[start:]), 3)
    return totals
