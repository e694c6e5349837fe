"""Derived metrics and the level state machine, on plain arrays."""

from datetime import timedelta

import numpy as np
import pytest

from sensors.plausibility import Plausibility, is_jump, neighbour_jumps
from alerts.evaluation import (
    Hysteresis,
    LevelSteps,
    Step,
    event_totals,
    jumps_and_spikes,
    linear_trend,
    next_level,
    rate_of_rise_now,
    rates_of_rise,
    time_to_next,
    window_sums,
)

MIN = 60.0
RIVER = [Step(2, 3.0), Step(3, 3.5), Step(4, 4.0), Step(5, 5.0)]


def every_10_min(count):
    return np.arange(count) * 10 * MIN


def test_rates_of_rise_in_metres_per_hour_and_unknown_without_enough_span():
    times = every_10_min(7)
    values = np.array([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6])
    ten = rates_of_rise(times, values, timedelta(minutes=10))
    thirty = rates_of_rise(times, values, timedelta(minutes=30))
    sixty = rates_of_rise(times, values, timedelta(minutes=60))
    assert ten[-1] == pytest.approx(0.6)
    assert thirty[-1] == pytest.approx(0.6)
    assert sixty[-1] == pytest.approx(0.6)
    assert np.isnan(thirty[0]) and np.isnan(thirty[1])  # less than 15 minutes of data behind them


def test_window_sums_match_a_loop():
    rng = np.random.default_rng(7)
    times = np.sort(rng.choice(np.arange(0, 3 * 24 * 60, 10), size=200, replace=False)).astype(float) * MIN
    amounts = rng.uniform(0, 5, size=200)
    for window in (timedelta(minutes=10), timedelta(hours=1), timedelta(hours=3), timedelta(hours=24)):
        expected = [amounts[(times > t - window.total_seconds()) & (times <= t)].sum() for t in times]
        np.testing.assert_allclose(window_sums(times, amounts, window), expected)


def test_event_totals_restart_after_a_six_hour_dry_spell():
    times = every_10_min(120)  # 20 hours
    amounts = np.zeros(120)
    amounts[6:12] = 2.0  # first shower, 12 mm
    amounts[30:32] = 3.0  # 3 h later: same event
    amounts[80:83] = 1.0  # more than 6 h after the last rain: a new event
    totals = event_totals(times, amounts)
    assert totals[11] == 12.0
    assert totals[31] == 18.0
    assert totals[31 + 35] == 18.0  # 5 h 50 min dry: the event still stands
    assert totals[31 + 36] == 0.0  # 6 h dry: over
    assert totals[82] == 3.0


RIVER_LIMITS = Plausibility(-50.0, 200.0, 1.0, 0.0, None)


def test_single_spike_is_flagged_and_a_confirmed_jump_is_not():
    values = np.array([1.0, 1.1, 5.0, 1.2, 1.3, 4.0, 4.1, 4.2])
    times = np.arange(len(values)) * 600.0
    jump, spike = jumps_and_spikes(times, values, RIVER_LIMITS)
    assert list(np.flatnonzero(jump)) == [2, 5]
    assert list(np.flatnonzero(spike)) == [2]  # 5.0 came back; 4.0 was followed by 4.1


def test_the_allowed_jump_grows_with_the_time_since_the_last_accepted_reading():
    # The same test ingestion flags with: step 0.5 m plus 3 m/h.
    limits = Plausibility(-50.0, 200.0, 0.5, 3.0, None)
    values = np.array([1.0, 2.2, 2.3])
    ten_minutes = np.array([0.0, 600.0, 1200.0])
    half_hour = np.array([0.0, 1800.0, 2400.0])
    assert list(jumps_and_spikes(ten_minutes, values, limits)[0]) == [False, True, False]  # 1.2 > 0.5 + 0.5
    assert not jumps_and_spikes(half_hour, values, limits)[0].any()  # 1.2 <= 0.5 + 1.5


def test_no_spike_check_without_limits():
    times = np.array([0.0, 600.0, 1200.0])
    jump, spike = jumps_and_spikes(times, np.array([0.0, 20.0, 0.0]), None)
    assert not jump.any() and not spike.any()
    rain = Plausibility(0.0, 300.0, None, None, None)
    jump, spike = jumps_and_spikes(times, np.array([0.0, 20.0, 0.0]), rain)
    assert not jump.any() and not spike.any()


def rising(step_minutes=10, count=7, start=3.0, per_step=0.1, noise=None):
    times = np.arange(count) * step_minutes * MIN
    values = start + per_step * np.arange(count)
    if noise is not None:
        values = values + noise
    return times, values


def test_time_to_next_level_with_uncertainty_on_a_clean_rise():
    times, values = rising(noise=np.array([0.01, -0.01, 0.015, -0.01, 0.0, 0.01, -0.015]))
    forecast = time_to_next(linear_trend(times, values), RIVER, current_level=4)
    assert forecast.level == 5
    # 3.6 m now, 0.6 m/h: level 5 (5.0 m) in about 2 h 20 min.
    assert forecast.eta.total_seconds() == pytest.approx(140 * MIN, rel=0.05)
    assert timedelta(minutes=1) <= forecast.uncertainty < timedelta(minutes=20)


@pytest.mark.parametrize(
    "case, times_values",
    [
        ("falling", rising(per_step=-0.1)),
        ("flat", rising(per_step=0.0, noise=np.array([0.01, -0.01, 0.0, 0.01, -0.01, 0.0, 0.01]))),
        ("too few points", rising(count=3)),
        ("too short a span", rising(step_minutes=2, count=8)),
        ("poor fit", rising(per_step=0.02, noise=np.array([0.3, -0.3, 0.25, -0.2, 0.3, -0.25, 0.2]))),
        ("too far ahead", rising(per_step=0.005)),
    ],
)
def test_no_forecast_when_the_trend_does_not_support_one(case, times_values):
    times, values = times_values
    assert time_to_next(linear_trend(times, values), RIVER, current_level=2) is None, case


def test_no_forecast_above_the_top_level():
    times, values = rising(start=5.1)
    assert time_to_next(linear_trend(times, values), RIVER, current_level=5) is None


def test_falling_rules_forecast_downwards():
    times, values = rising(start=40.0, per_step=-1.0)  # a reservoir emptying: 34 % now, -6 %/h
    forecast = time_to_next(linear_trend(times, values), [Step(3, 30.0)], current_level=0, rising=False)
    assert forecast.level == 3 and forecast.eta.total_seconds() == pytest.approx(40 * MIN, rel=0.05)


def walk(values, steps=RIVER, rules=Hysteresis(margin=0.1)):
    """Levels after each reading, feeding readings one by one like the evaluator does."""
    times = every_10_min(len(values))
    measure = np.array(values, dtype=float)
    levels, level = [], 0
    for k in range(len(values)):
        level = next_level(times[: k + 1], measure[: k + 1], steps, current=level, rules=rules)
        levels.append(level)
    return levels


def test_levels_rise_fall_and_hold_inside_the_margin():
    assert walk([2.9, 3.0, 2.95, 3.05, 2.89, 3.6, 3.45, 3.39, 5.2, 4.95, 4.1, 3.0]) == [
        0, 2, 2, 2, 0, 3, 3, 2, 5, 5, 4, 2,
    ]


def test_minimum_readings_and_duration_before_any_change():
    rules = Hysteresis(margin=0.1, min_readings=2, min_duration=timedelta(minutes=20))
    # Two readings above are not enough: they span 10 minutes; the third makes 20.
    assert walk([3.1, 3.1, 2.0, 3.1, 3.1, 3.1, 2.0, 2.0, 2.0], rules=rules) == [0, 0, 0, 0, 0, 2, 2, 2, 0]


def test_unknown_measure_neither_opens_nor_resolves():
    times = every_10_min(3)
    assert next_level(times, np.array([np.nan, np.nan, np.nan]), RIVER, current=0, rules=Hysteresis()) == 0
    assert next_level(times, np.array([np.nan, np.nan, np.nan]), RIVER, current=3, rules=Hysteresis()) == 3


def test_falling_direction_mirrors_the_ladder():
    low_storage = [Step(2, 30.0), Step(3, 20.0)]
    rules = Hysteresis(rising=False, margin=1.0)
    assert walk([35, 30, 25, 19.5, 20.5, 21.5, 31.5], steps=low_storage, rules=rules) == [0, 2, 2, 3, 3, 2, 0]


def test_a_level_whose_thresholds_were_removed_falls_at_once():
    times = every_10_min(2)
    assert next_level(times, np.array([4.5, 4.5]), [Step(2, 3.0)], current=4, rules=Hysteresis()) == 2


def test_the_rate_of_rise_now_is_the_last_of_the_rates_at_every_reading():
    rng = np.random.default_rng(9)
    for size in (1, 2, 3, 7, 40):
        # Irregular gaps (some readings seconds apart, some an hour), levels that wander.
        times = np.cumsum(rng.choice([5.0, 60.0, 600.0, 3600.0], size=size))
        values = np.round(rng.normal(2.0, 0.5, size=size), 3)
        for window in (timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=60)):
            expected = rates_of_rise(times, values, window)[-1]
            got = rate_of_rise_now(times, values, window)
            assert (np.isnan(expected) and np.isnan(got)) or got == expected


def test_jumps_and_spikes_takes_the_neighbour_check_only_when_no_neighbours_jump():
    """The shortcut (no consecutive pair jumps: nothing to judge) gives what the walk gives."""
    limits = Plausibility(0.0, 20.0, 0.5, 3.0, None)
    times = every_10_min(6)
    calm = np.array([1.0, 1.1, 1.2, 1.1, 1.3, 1.4])
    assert not neighbour_jumps(limits, times, calm).any()
    jump, spike = jumps_and_spikes(times, calm, limits)
    assert not jump.any() and not spike.any()
    spiky = np.array([1.0, 1.1, 3.0, 1.2, 1.3, 1.4])
    assert neighbour_jumps(limits, times, spiky).tolist() == [False, True, True, False, False]
    jump, spike = jumps_and_spikes(times, spiky, limits)
    assert jump.tolist() == [False, False, True, False, False, False]
    assert spike.tolist() == [False, False, True, False, False, False]


def random_rule_series(rng, n: int, *, rising: bool, immediate_level: int | None):
    """Reading times, a wandering measure with unknown (NaN) stretches, and a rule's hysteresis."""
    times = np.cumsum(rng.choice([30.0, 60.0, 600.0], n))
    measure = np.clip(np.cumsum(rng.normal(0.05, 0.35, n)) + 2.5, 0.0, 6.5)
    measure[rng.random(n) < 0.08] = np.nan
    return times, measure, Hysteresis(
        rising=rising, margin=float(rng.choice([0.0, 0.1, 0.3])),
        min_duration=timedelta(minutes=int(rng.choice([0, 5, 20]))), min_readings=int(rng.choice([1, 2, 3])),
        hold=timedelta(minutes=int(rng.choice([0, 10, 30]))), immediate_level=immediate_level,
    )


@pytest.mark.parametrize("seed", range(6))
def test_stepping_a_series_gives_next_level_on_each_prefix(seed):
    """`LevelSteps` answers every step of a batch from comparisons made once for the whole series:
    each answer must be what `next_level` gives on the prefix alone, the level carried from step to
    step, through NaN measures, margins, holds, immediate levels, falling rules and a ladder whose
    rungs change between steps (an edited threshold)."""
    rng = np.random.default_rng(seed)
    n = 160
    times, measure, rules = random_rule_series(rng, n, rising=bool(seed % 3), immediate_level=[None, 4, 5][seed % 3])
    sign = 1.0 if rules.rising else -1.0
    ladders = [
        [Step(level, sign * value, margin) for level, value, margin in rungs]
        for rungs in (
            [(2, 3.0, None), (3, 3.5, 0.2), (4, 4.0, None), (5, 5.0, None)],
            [(2, 2.8, None), (4, 3.9, None)],
            [],
        )
    ]
    stepper = LevelSteps(times, sign * measure, rules)
    level = expected = 0
    for end in range(1, n + 1):
        steps = ladders[0] if end < 100 else ladders[int(rng.integers(0, 3))]
        level = stepper.level(end, steps, current=level)
        expected = next_level(times[:end], sign * measure[:end], steps, current=expected, rules=rules)
        assert level == expected, end


def walked_jumps_and_spikes(times, values, limits):
    """The plausibility walk reading by reading, as the module docstring describes it: the reference
    the skipping walk of `jumps_and_spikes` must agree with."""
    size = len(values)
    jump, spike = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
    if size < 2:
        return jump, spike
    reference = 0
    for index in range(1, size):
        if not is_jump(limits, values[reference], values[index], times[index] - times[reference]):
            reference = index
            continue
        jump[index] = True
        following = index + 1
        if following < size and not is_jump(limits, values[reference], values[following], times[following] - times[reference]):
            spike[index] = True
        else:
            reference = index
    return jump, spike


@pytest.mark.parametrize("seed", range(8))
def test_jumps_and_spikes_skipping_calm_stretches_gives_the_walk_reading_by_reading(seed):
    """Spikes, jumps that stay, two jumps in a row, a jump at the start and at the end, readings a
    millisecond or hours apart: the walk that skips to the next neighbour jump flags the same readings."""
    rng = np.random.default_rng(seed)
    limits = Plausibility(0.0, 20.0, 0.5, 3.0, None)
    for size in (2, 3, 5, 40, 400):
        times = np.cumsum(rng.choice([0.001, 1.0, 60.0, 600.0, 7200.0], size=size))
        values = np.cumsum(rng.normal(0.0, 0.1, size=size)) + 2.0
        bursts = rng.random(size) < [0.02, 0.1, 0.3, 0.6][seed % 4]
        values[bursts] += rng.choice([-2.0, 1.0, 3.0], size=int(bursts.sum()))
        got = jumps_and_spikes(times, values, limits)
        expected = walked_jumps_and_spikes(times, values, limits)
        assert got[0].tolist() == expected[0].tolist() and got[1].tolist() == expected[1].tolist(), (size, values)


@pytest.mark.parametrize("seed", range(6))
def test_levels_answers_every_end_at_once_as_next_level_on_each_prefix(seed):
    """`LevelSteps.levels` judges many steps in one call (a batch up to its next transition): each
    answer, from every starting level, is `next_level` on that prefix alone."""
    rng = np.random.default_rng(100 + seed)
    n = 120
    times, measure, rules = random_rule_series(rng, n, rising=bool(seed % 2), immediate_level=[None, 4, 5][seed % 3])
    sign = 1.0 if rules.rising else -1.0
    rungs = [(2, 3.0, None), (3, 3.5, 0.2), (4, 4.0, None), (5, 5.0, None)]
    steps = [Step(level, sign * value, margin) for level, value, margin in rungs]
    stepper = LevelSteps(times, sign * measure, rules)
    ends = np.arange(0, n + 1)
    for current in (0, 2, 3, 4, 5):
        expected = [
            next_level(times[:end], sign * measure[:end], steps, current=current, rules=rules) for end in ends
        ]
        assert expected == [
            scanned_next_level(times[:end], sign * measure[:end], steps, current=current, rules=rules) for end in ends
        ]
        assert stepper.levels(ends, steps, current=current).tolist() == expected, current
        assert stepper.levels(ends, [], current=current).tolist() == [0] * len(ends)


def scanned_next_level(times, measure, steps, *, current, rules):
    """`next_level` as its docstring reads, scanning back from the newest reading for each candidate
    level: the plain reference the array version must agree with."""
    if not steps:
        return 0
    sign = 1.0 if rules.rising else -1.0
    oriented = [sign * value for value in measure]

    def held(test, duration):
        count = 0
        for index in range(len(oriented) - 1, -1, -1):
            if not test(oriented[index]):  # NaN compares false: it breaks the run
                break
            count += 1
        if not count:
            return False
        first = len(oriented) - count
        return count >= rules.min_readings and times[-1] - times[first] >= duration.total_seconds()

    for candidate in sorted({s.level for s in steps if s.level > current}, reverse=True):
        rung = min(sign * s.value for s in steps if s.level >= candidate)
        immediate = rules.immediate_level is not None and candidate >= rules.immediate_level
        if immediate and len(oriented) and oriented[-1] >= rung:
            return candidate
        if held(lambda value: value >= rung, rules.min_duration):
            return candidate
    if current == 0:
        return 0
    for candidate in sorted({0, *(s.level for s in steps if s.level < current)}):
        higher = [sign * s.value - (rules.margin if s.margin is None else s.margin) for s in steps if s.level > candidate]
        below = min(higher) if higher else None
        if held(lambda value: below is None or value < below, max(rules.min_duration, rules.hold)):
            return candidate
    return current


@pytest.mark.parametrize("seed", range(8))
def test_levels_cut_to_the_runs_that_matter_answer_as_over_the_whole_series(seed):
    """A stepper told its first end builds runs only from the latest reading a run can start at and
    still be long enough (`cuts`, one for raising and one for lowering, which also waits out the hold):
    from every first end and starting level, each later end answers what
    the stepper over the whole series answers. Times on exact multiples of the holds and epoch-sized
    times (where subtracting rounds) meet the boundary of the duration tests; a stepper asked for an
    end before its first refuses."""
    rng = np.random.default_rng(300 + seed)
    n = 90
    times, measure, rules = random_rule_series(rng, n, rising=bool(seed % 2), immediate_level=[None, 4, 5][seed % 3])
    if seed % 4 == 3:
        times = times + 1.7e9 + rng.choice([0.0, 1e-6, 0.123456])
    sign = 1.0 if rules.rising else -1.0
    steps = [Step(level, sign * value, margin) for level, value, margin in [(2, 3.0, None), (3, 3.5, 0.2), (4, 4.0, None), (5, 5.0, None)]]
    whole = LevelSteps(times, sign * measure, rules)
    cuts = set()
    for first_end in range(0, n + 1):
        stepper = LevelSteps(times, sign * measure, rules, first_end=first_end)
        cuts.update(stepper.cuts.values())
        ends = np.arange(first_end, n + 1)
        for current in (0, 2, 3, 4, 5):
            assert stepper.levels(ends, steps, current=current).tolist() == whole.levels(ends, steps, current=current).tolist(), (first_end, current)
        if first_end:
            with pytest.raises(ValueError):
                stepper.levels(np.array([first_end - 1]), steps, current=0)
    assert max(cuts) > n // 2  # the cut does reach far into the series: the test exercises it


def test_level_cut_at_the_exact_hold_boundary():
    """Readings every 10 minutes, a 30-minute hold: the run that started exactly 30 minutes before the
    first end is long enough; one reading later it is not. The cut keeps the first and so the answer."""
    times = every_10_min(12) + 1.7e9
    measure = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    rules = Hysteresis(margin=0.1, min_readings=2, hold=timedelta(minutes=30))
    for first_end in range(1, 13):
        cut = LevelSteps(times, measure, rules, first_end=first_end)
        whole = LevelSteps(times, measure, rules)
        ends = np.arange(first_end, 13)
        assert cut.levels(ends, RIVER, current=5).tolist() == whole.levels(ends, RIVER, current=5).tolist()
    assert LevelSteps(times, measure, rules).levels(np.array([9, 10]), RIVER, current=5).tolist() == [5, 0]
