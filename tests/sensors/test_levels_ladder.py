"""The ladder that judges many readings of a station fast (sensors.levels.value_ladder) is the one
level rule: for any thresholds and any value it says what level_for says."""

from typing import NamedTuple

from hypothesis import HealthCheck, given, settings, strategies as st

from sensors.levels import Measure, level_for, value_ladder


class Row(NamedTuple):
    value: float
    level: int | None
    window: None = None


values = st.floats(allow_nan=True, allow_infinity=True, width=32)
ladders = st.lists(st.builds(Row, st.floats(allow_nan=False, width=32), st.one_of(st.none(), st.integers(0, 5))),
                   max_size=7)


# No wall-clock limits: the machine running the suite may be loaded.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ladders, st.one_of(st.none(), values))
def test_the_ladder_says_what_level_for_says(thresholds, value):
    assert value_ladder(thresholds)(value) == level_for(Measure(value, {}), thresholds)


def test_levels_out_of_order_and_ties():
    # A lower value with a higher level (a misconfigured ladder) still counts from that value up.
    thresholds = [Row(3.0, 2), Row(2.0, 4), Row(3.0, 3), Row(5.0, None)]
    ladder = value_ladder(thresholds)
    assert [ladder(v) for v in (1.9, 2.0, 3.0, 6.0)] == [0, 4, 4, 4]
    assert value_ladder([])(1.0) == 0
