"""The public snapshot document carries the stations' thresholds as a table (`threshold_sets`), each
feature naming its set by key: the page puts the lists back (static/mizumori/public.js withThresholds,
mirrored by tests.public_page.with_thresholds) and gets the features the live messages carry.
Browser side: tests/e2e/test_map_browser.py (popups show the threshold reached, hostile labels stay
text, malformed tables draw no threshold)."""

from __future__ import annotations

import json

import pytest

from dashboard import live
from dashboard.live import audience_feature, live_store
from events.services import drain_pending
from public import snapshot
from public.snapshot import THRESHOLDS, ThresholdTable, encoded_snapshot, public_station_features
from sensors.models import Threshold
from sensors.services import threshold_set
from tests.dashboard.test_pages import observe as observe_reading
from tests.public_page import with_thresholds

pytestmark = pytest.mark.django_db

HOSTILE_LABEL = '氾濫危険水位</script><img src=x onerror="window.__pwned=1">&amp;'


@pytest.fixture(autouse=True)
def calm_machine(settings):
    settings.PUBLIC_MINIMAL_CPU_LOAD = 10**6


def observe(code, value, *, minutes_ago=1.0):
    observe_reading(code, value, minutes_ago=minutes_ago)
    drain_pending()


def document() -> dict:
    return json.loads(encoded_snapshot().body)


def test_each_threshold_set_is_sent_once_and_the_page_gets_the_live_features_back(stations):
    observe("A-PUBLIC", 3.2)
    observe("B-PUBLIC", 1.0)
    sent = document()

    assert sent["version"] == 2
    assert len(sent["threshold_sets"]) == 1  # both stations have the standard river thresholds
    assert all("thresholds" not in f["properties"] for f in sent["features"])
    (key,) = sent["threshold_sets"]
    assert {f["properties"]["threshold_set"] for f in sent["features"]} == {key}

    # What the page draws is what the live publisher's public message carries for the station.
    restored = {f["id"]: f for f in with_thresholds(sent)["features"]}
    messages, _ = live_store().since([live.PUBLIC_GROUP], 0)
    published = [f for m in messages if m["type"] == "stations" for f in m["features"] if f["id"] == "A-PUBLIC"][-1]
    expected = audience_feature(published, show_sharing=False)
    assert restored["A-PUBLIC"]["properties"]["thresholds"] == expected["properties"]["thresholds"]
    assert [t["name"] for t in restored["A-PUBLIC"]["properties"]["thresholds"]] == [
        "standby", "flood_caution", "evacuation_decision", "flood_danger", "flooding",
    ]


def test_an_edited_threshold_gives_its_station_a_set_of_its_own(stations):
    observe("A-PUBLIC", 2.9)
    before = document()
    threshold_set(threshold=Threshold.objects.get(station=stations["a-public"], name="flood_caution"), value="2.8")
    after = document()

    assert len(before["threshold_sets"]) == 1 and len(after["threshold_sets"]) == 2
    restored = {f["id"]: f["properties"] for f in with_thresholds(after)["features"]}
    caution = {code: next(t["value"] for t in props["thresholds"] if t["name"] == "flood_caution") for code, props in restored.items()}
    assert caution == {"A-PUBLIC": 2.8, "B-PUBLIC": 3.0}
    assert restored["A-PUBLIC"]["level"] == 2


def test_a_hostile_threshold_label_is_escaped_in_the_text_and_kept_as_data(stations):
    Threshold.objects.filter(station=stations["a-public"], name="flood_danger").update(label_ja=HOSTILE_LABEL)
    observe("A-PUBLIC", 1.0)
    text = encoded_snapshot().body.decode()

    assert "<" not in text and ">" not in text and "&" not in text  # as \u003c, \u003e, \u0026
    restored = {f["id"]: f["properties"] for f in with_thresholds(json.loads(text))["features"]}
    labels = [t["label_ja"] for t in restored["A-PUBLIC"]["thresholds"]]
    assert HOSTILE_LABEL in labels


def test_a_tick_splits_only_the_stations_that_changed_and_matches_a_fresh_build(stations, monkeypatch):
    observe("A-PUBLIC", 1.0)
    observe("B-PUBLIC", 1.0)
    encoded_snapshot()
    split = []
    original = ThresholdTable.split

    def counted(entry):
        split.append(json.loads(entry.text)["id"])
        return original(entry)

    monkeypatch.setattr(ThresholdTable, "split", staticmethod(counted))
    observe("A-PUBLIC", 1.2)
    ticked = encoded_snapshot().body
    assert public_station_features().last_update == "changes"
    assert split == ["A-PUBLIC"]

    # Byte for byte what a process that builds everything afresh gives.
    public_station_features().forget()
    monkeypatch.setattr(snapshot, "THRESHOLDS", ThresholdTable())
    assert encoded_snapshot().body == ticked
    assert THRESHOLDS is not snapshot.THRESHOLDS


def test_a_feature_without_thresholds_is_sent_as_it_is():
    from dashboard.features import Entry

    entry = Entry.of({"type": "Feature", "id": "X", "geometry": None, "properties": {"code": "X"}})
    table = ThresholdTable()
    features, sets = table.document_parts([entry])
    assert json.loads(features) == [json.loads(entry.text)] and json.loads(sets) == {}
