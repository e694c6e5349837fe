"""Each drain process's copy of the recent readings alert evaluation looks back over, so a batch reads
only what is new since the process last evaluated a station instead of the whole look-back (a river's
default rules look back 110 minutes: at ten readings a second every batch re-read the whole storm).

A copy of a station's readings in (lo, hi] is used only while it is certainly what the database holds
there; else that station is read in full, as without the copy:
- readings newer than `hi` are read from the database every batch (a station's latest state is
  moved under its row lock, so once the state shows a time every reading up to it is committed);
- a reading stored at or before the station's latest one (late), or a state rebuilt from history,
  changes `StationState.history_mark` in the writer's transaction;
- an update or delete of stored readings (a correction, data repair, a demo reseed) and any change
  to stations or thresholds change the catalog stamp (triggers; sensors migrations 0009 and 0014),
  which is read again after the batch's read: changed meanwhile, the stations are read in full;
- a look-back that reaches before `lo` (a rule added or changed) reads in full.
The copy holds only committed readings (the evaluator never writes readings), so a rolled-back
evaluation leaves nothing wrong in it. Memory: what one batch's full read held (17 bytes a reading,
trimmed to each station's look-back every batch), kept between batches. Partitions detached from
the observations table are months old, far behind any look-back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from sensors.catalog import current_stamp
from sensors.selectors import readings_in_ranges_micros
from sensors.services import from_micros, to_micros

Series = tuple[np.ndarray, np.ndarray, np.ndarray]  # microseconds, values, quality-flagged


@dataclass
class _Copy:
    stamp: int
    mark: int
    lo: int  # microseconds, exclusive
    hi: int  # microseconds, inclusive
    series: Series


def _arrays(series) -> Series:
    micros, values, suspect = series or ([], [], [])
    return (
        np.asarray(micros, dtype=np.int64), np.asarray(values, dtype=float), np.asarray(suspect, dtype=bool)
    )


class RecentReadings:
    def __init__(self):
        self._copies: dict[int, _Copy] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._copies.clear()

    def series(
        self, ranges: dict[int, tuple[datetime, datetime]], marks: dict[int, int], stamp: int | None
    ) -> dict[int, Series]:
        """What `readings_in_ranges_micros(ranges)` returns, as arrays, with one query for every
        station: the part after a valid copy's end, or the whole range. `marks`: each station's
        `history_mark` read with its newest reading; `stamp`: the catalog stamp (None: no copy used)."""
        with self._lock:
            copies = {pk: self._copies.get(pk) for pk in ranges}
        bounds = {pk: (to_micros(start), to_micros(end)) for pk, (start, end) in ranges.items()}
        reads = {}
        for pk, (start, end) in ranges.items():
            copy = copies[pk]
            lo, hi = bounds[pk]
            valid = copy is not None and stamp is not None and (copy.stamp, copy.mark) == (stamp, marks.get(pk))
            if not (valid and copy.lo <= lo and copy.hi <= hi):
                copies[pk] = None
                reads[pk] = (start, end)
            elif copy.hi < hi:
                reads[pk] = (from_micros(copy.hi), end)
        rows = readings_in_ranges_micros(reads)
        used = [pk for pk, copy in copies.items() if copy is not None]
        if used and current_stamp() != stamp:
            # Readings were corrected or deleted while this batch read: read those stations in full,
            # and keep no copy made under a stamp that is already old.
            stamp = None
            rows.update(readings_in_ranges_micros({pk: ranges[pk] for pk in used}))
            copies = dict.fromkeys(copies)
        result: dict[int, Series] = {}
        fresh: dict[int, _Copy] = {}
        for pk in ranges:
            lo, hi = bounds[pk]
            new = _arrays(rows.get(pk))
            copy = copies[pk]
            if copy is None:
                series = new
            else:
                keep = int(np.searchsorted(copy.series[0], lo, side="right"))
                series = tuple(np.concatenate((old[keep:], part)) for old, part in zip(copy.series, new))
            result[pk] = series
            if stamp is not None:
                fresh[pk] = _Copy(stamp=stamp, mark=marks.get(pk, 0), lo=lo, hi=hi, series=series)
        with self._lock:
            self._copies.update(fresh)
        return result

