"""The public snapshot's station features follow the live publisher (dashboard.features): a tick applies
what was published since the previous one, and gives the document a full build would give; what
the messages cannot say (a catalog edit, a gap in the log) makes it build everything afresh; private
stations never enter through the messages; stale is judged again every tick."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import live
from events.services import drain_pending
from public.snapshot import encoded_snapshot, public_station_features
from sensors.models import Threshold, Visibility
from sensors.services import station_visibility_set, threshold_set
from tests.conftest import make_station
from tests.dashboard.test_pages import observe as observe_reading

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def calm_machine(settings):
    """The machine running the tests is shared and busy: the page mode must not depend on it."""
    settings.PUBLIC_MINIMAL_CPU_LOAD = 10**6


def observe(code, value, *, minutes_ago=1.0):
    observe_reading(code, value, minutes_ago=minutes_ago)
    drain_pending()  # the live publisher publishes it (tests drain on commit; a test's commit never comes)


def document_text() -> bytes:
    return encoded_snapshot().body


def features(body: bytes) -> dict[str, dict]:
    return {feature["id"]: feature for feature in json.loads(body)["features"]}


def test_a_tick_applies_what_was_published_and_equals_a_full_build(stations, django_assert_max_num_queries):
    observe("A-PUBLIC", 3.3, minutes_ago=2)
    document_text()
    assert public_station_features().last_update == "full"

    observe("A-PUBLIC", 3.6)  # a step the plausibility check accepts: 避難判断水位 (3.5 m) passed
    observe("A-PRIVATE", 4.2)
    observe("A-REGION", 4.2)
    observe("B-SHARED", 4.2)
    # A fixed number of queries whatever the number of stations: no station is read, only messages.
    with django_assert_max_num_queries(12):
        ticked = document_text()
    assert public_station_features().last_update == "changes"
    shown = features(ticked)
    assert sorted(shown) == ["A-PUBLIC", "B-PUBLIC"]  # never a private, region or shared station
    properties = shown["A-PUBLIC"]["properties"]
    assert (properties["value"], properties["level"]) == (3.6, 3)
    assert "visibility" not in properties

    public_station_features().forget()
    assert document_text() == ticked  # byte for byte what building every station gives
    assert public_station_features().last_update == "full"


def test_a_station_made_private_leaves_the_document_at_once(stations):
    observe("A-PUBLIC", 1.2)
    assert "A-PUBLIC" in features(document_text())

    station_visibility_set(station=stations["a-public"], visibility=Visibility.PRIVATE)
    drain_pending()
    assert sorted(features(document_text())) == ["B-PUBLIC"]
    observe("A-PUBLIC", 3.6)
    assert sorted(features(document_text())) == ["B-PUBLIC"]


def test_a_withdrawn_message_takes_a_station_out_between_catalog_changes(stations):
    document_text()
    live._publish(live.PUBLIC_GROUP, {"type": "withdrawn", "stations": ["A-PUBLIC"]})
    assert sorted(features(document_text())) == ["B-PUBLIC"]
    assert public_station_features().last_update == "changes"


def test_an_edited_threshold_builds_every_feature_afresh(stations):
    observe("A-PUBLIC", 2.9)
    assert features(document_text())["A-PUBLIC"]["properties"]["level"] != 2
    threshold = Threshold.objects.get(station=stations["a-public"], name="flood_caution")
    threshold_set(threshold=threshold, value="2.8")
    body = document_text()
    assert public_station_features().last_update == "full"  # no message says a threshold moved; the catalog stamp does
    assert features(body)["A-PUBLIC"]["properties"]["level"] == 2


def test_more_messages_than_the_log_replays_build_every_feature_afresh(stations, monkeypatch):
    document_text()
    monkeypatch.setattr(live, "REPLAY_DEPTH", 1)
    observe("A-PUBLIC", 1.1, minutes_ago=3)
    observe("A-PUBLIC", 1.2, minutes_ago=2)
    body = document_text()
    assert public_station_features().last_update == "full"
    assert features(body)["A-PUBLIC"]["properties"]["value"] == 1.2


def test_a_station_turns_stale_in_the_document_without_a_message(towns):
    make_station(towns[0], "SLOW", expected_interval=timedelta(minutes=10))
    observe("SLOW", 1.0, minutes_ago=15)  # stale after 20 minutes: 5 minutes from now
    seq, stream = live.live_store().current_seq(), live.live_store().stream_id()

    (first,) = json.loads(public_station_features().current(seq=seq, stream=stream).json_array())
    (later,) = json.loads(public_station_features().current(seq=seq, stream=stream, now=timezone.now() + timedelta(minutes=6)).json_array())
    assert first["properties"]["stale"] is False
    assert public_station_features().last_update == "changes"
    assert later["properties"]["stale"] is True
