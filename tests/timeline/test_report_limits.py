"""A big town's report stays readable: gauges that stayed low are counted, not listed; events beyond
the limit leave out the low level changes first."""

from datetime import timedelta

from django.utils import timezone

from timeline import reports
from timeline.selectors import TimelineEvent


def peak(code, level):
    return reports.GaugePeak(code=code, name_ja=code, name_en=code, municipality="t", unit="m",
                             peak_value=1.0, peak_at=None, peak_level=level)


def event(index, kind, level, previous=None):
    return TimelineEvent(id=str(index), at=timezone.now() + timedelta(seconds=index), kind=kind, municipality="t",
                         subject="S", name_ja="S", name_en="S", summary_ja="", summary_en="", level=level,
                         previous_level=previous)


def test_small_towns_list_every_gauge_big_ones_those_that_rose(monkeypatch):
    monkeypatch.setattr(reports, "PEAKS_LISTED_ALL", 3)
    few = [peak("A", 0), peak("B", 3)]
    assert reports._listed_peaks(few) == {"peaks": few, "peaks_below": 0, "peaks_unlisted": []}
    many = [peak("A", 0), peak("B", 3), peak("C", None), peak("D", 2), peak("E", 1)]
    listed = reports._listed_peaks(many)
    assert [p.code for p in listed["peaks"]] == ["B", "D"] and listed["peaks_below"] == 3


def test_events_beyond_the_limit_drop_low_level_changes_first(monkeypatch):
    monkeypatch.setattr(reports, "REPORT_MAX_EVENTS", 3)
    events = [event(0, "level.up", 1, 0), event(1, "alert.opened", 2), event(2, "level.up", 2, 1),
              event(3, "level.down", 0, 1), event(4, "shelter.status", None), event(5, "level.up", 3, 2)]
    assert [e.id for e in reports._listed_events(events)] == ["1", "2", "4"]
    assert reports._listed_events(events[:3]) == events[:3]


def test_a_town_where_hundreds_rose_lists_the_most_severe_and_counts_the_rest(monkeypatch):
    monkeypatch.setattr(reports, "PEAKS_LISTED_ALL", 3)
    monkeypatch.setattr(reports, "PEAKS_LISTED_MAX", 2)
    many = [peak("A", 4), peak("B", 4), peak("C", 4), peak("D", 3), peak("E", 2), peak("F", 1)]
    listed = reports._listed_peaks(many)
    assert [p.code for p in listed["peaks"]] == ["A", "B"]
    assert listed["peaks_unlisted"] == [(4, 1), (3, 1), (2, 1)] and listed["peaks_below"] == 1
