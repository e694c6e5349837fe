"""When it rains over the FICTIONAL Kawasemi basin: the demo's weather timeline.

One timeline, fixed by a seed and an anchor time, serves both demo commands, so their data join
without a seam:

- `seed_demo` writes HISTORY (60 days) of 10-minute readings ending at the anchor: PAST_STORMS
  storms of varied size, length, track and spread, with dry spells of several days between them,
  so a forecasting model has storms to learn from.
- The current storm (the design storm) starts at the anchor. `seed_demo` puts the anchor SHOW_LEAD
  before its own clock, and `simulate_storm` backfills from the anchor to its start, so the demo
  opens when the flood wave has reached the core city.
- With `simulate_storm --loop`, a new storm of varied size follows every STORM_CYCLE.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from .hydrology import BasinRun, Snapshot, Storm, design_storm, grid_floor

DEMO_SEED = 1303
HISTORY = timedelta(days=60)
PAST_STORMS = 5
QUIET_BEFORE_ANCHOR = timedelta(days=4)  # the last past storm has receded before the current one
SHOW_LEAD = timedelta(hours=4)  # how far the current storm has run when the demo opens
SHOW_LENGTH = timedelta(hours=12)  # the current storm has passed (rivers back below 氾濫注意水位) by then
STORM_CYCLE = timedelta(hours=24)


@dataclass(frozen=True)
class Weather:
    anchor: datetime  # on the 10-minute grid: the end of the seeded history, the start of the current storm
    seed: int = DEMO_SEED

    def __post_init__(self):
        if grid_floor(self.anchor) != self.anchor:
            raise ValueError(f"the anchor {self.anchor.isoformat()} is not on the 10-minute grid")

    @classmethod
    def for_seed_time(cls, now: datetime, seed: int = DEMO_SEED) -> Weather:
        """The timeline `seed_demo` writes at `now`: the current storm started SHOW_LEAD ago."""
        return cls(anchor=grid_floor(now) - SHOW_LEAD, seed=seed)

    @property
    def history_start(self) -> datetime:
        return self.anchor - HISTORY

    @property
    def show_end(self) -> datetime:
        return self.anchor + SHOW_LENGTH

    @cached_property
    def past_storms(self) -> tuple[Storm, ...]:
        """PAST_STORMS storms, one in each equal slot of the history, each in the first half of its slot."""
        rng = random.Random(f"mizumori-demo-weather:{self.seed}:past")
        usable = HISTORY - QUIET_BEFORE_ANCHOR - timedelta(days=1)
        slot = usable / PAST_STORMS
        storms = []
        for index in range(PAST_STORMS):
            start = self.history_start + timedelta(days=1) + slot * index + slot * rng.uniform(0, 0.5)
            storms.append(
                Storm(
                    start=grid_floor(start),
                    scale=rng.uniform(0.5, 1.05),
                    time_to_peak=timedelta(minutes=rng.choice(range(60, 190, 10))),
                    drift=timedelta(minutes=rng.choice(range(-30, 130, 10))),
                    hills_bias=rng.uniform(0.4, 1.3),
                )
            )
        return tuple(storms)

    @property
    def current_storm(self) -> Storm:
        return design_storm(self.anchor)

    def later_storm(self, number: int) -> Storm:
        """The `number`-th storm after the current one (1, 2, ...), for `simulate_storm --loop`."""
        rng = random.Random(f"mizumori-demo-weather:{self.seed}:later:{number}")
        return Storm(
            start=self.anchor + STORM_CYCLE * number + timedelta(minutes=10 * rng.randrange(0, 37)),
            scale=rng.uniform(0.5, 1.0),
            time_to_peak=timedelta(minutes=rng.choice(range(60, 190, 10))),
            drift=timedelta(minutes=rng.choice(range(0, 130, 10))),
            hills_bias=rng.uniform(0.6, 1.2),
        )

    def storms_until(self, at: datetime) -> list[Storm]:
        """Every storm that has begun by `at`."""
        storms = [storm for storm in self.past_storms if storm.start < at]
        if self.anchor < at:
            storms.append(self.current_storm)
            number = 1
            while (later := self.later_storm(number)).start < at:
                storms.append(later)
                number += 1
        return storms


# The basin as it stands at given times, per timeline: stepping through 60 days of history costs a
# couple of seconds of CPU, and the seed, the simulator (and tests) step through the same timeline.
_BASINS: dict[tuple[Weather, datetime], BasinRun] = {}
_BASINS_KEPT = 8


def _remember(weather: Weather, run: BasinRun) -> None:
    if len(_BASINS) >= _BASINS_KEPT:
        _BASINS.pop(next(iter(_BASINS)))
    _BASINS[(weather, run.at)] = copy.deepcopy(run)


def basin_at(weather: Weather, at: datetime) -> BasinRun:
    """A basin run standing at `at` (on the grid), with everything it remembers of what came before."""
    known = [time for (cached, time) in _BASINS if cached == weather and time <= at]
    if known:
        run = copy.deepcopy(_BASINS[(weather, max(known))])
    else:
        run = BasinRun(weather.storms_until, weather.history_start)
    for _ in run.run_until(at):
        pass
    _remember(weather, run)
    return run


def history_snapshots(weather: Weather, since: datetime) -> Iterator[Snapshot]:
    """The basin's snapshots after `since` up to the anchor (the model always starts HISTORY back)."""
    run = basin_at(weather, grid_floor(since))
    yield from run.run_until(weather.anchor)
    _remember(weather, run)


def basin_from_anchor(weather: Weather) -> BasinRun:
    return basin_at(weather, weather.anchor)
