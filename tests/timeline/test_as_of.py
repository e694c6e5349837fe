"""As-of reads: what `GET /api/v1/stations?at=` and `GET /api/v1/alerts?at=` say of a past moment
equals what the live API said at that moment (recorded while a storm was replayed through the real
ingestion path, with the clock following the storm)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.services import alert_acknowledge
from sensors.models import StationKind, Threshold, Visibility
from sensors.services import threshold_set
from tenancy.models import Membership
from tests.conftest import make_station

from .conftest import ingest

RIVER = [1.8, 2.2, 2.9, 3.1, 3.6, 9.0, 3.8, 4.1, 4.6, 5.1, 4.7, 3.9, 3.2, 2.6]  # 9.0: an implausible spike
RAIN = [0.0, 2.0, 6.5, 12.0, 14.0, 9.0, 3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def iso(moment) -> str:
    return quote(moment.isoformat())


@pytest.fixture
def storm(towns, stations, clock, django_capture_on_commit_callbacks):
    """Replays a storm every 10 minutes; returns the moments asked about and the live answers then."""
    town_a = towns[0]
    river = make_station(town_a, "A-STORM", visibility=Visibility.PUBLIC)
    rain = make_station(town_a, "A-RAIN", kind=StationKind.RAIN, visibility=Visibility.REGION)
    operator = get_user_model().objects.create_user("a-op", password="pw-a-op-123")
    Membership.objects.create(user=operator, municipality=town_a, role=Membership.Role.OPERATOR)
    viewer = get_user_model().objects.create_user("a-view", password="pw-a-view-123")
    Membership.objects.create(user=viewer, municipality=town_a, role=Membership.Role.VIEWER)
    return {"river": river, "rain": rain, "operator": operator, "viewer": viewer,
            "capture": django_capture_on_commit_callbacks}


def live_answers(client, user) -> dict:
    client.logout()
    public = client.get("/api/v1/stations").json()
    alerts_public = client.get("/api/v1/alerts").json()
    client.force_login(user)
    staff = client.get("/api/v1/stations").json()
    alerts_staff = client.get("/api/v1/alerts").json()
    client.logout()
    return {"public": public, "staff": staff, "alerts_public": alerts_public, "alerts_staff": alerts_staff}


def as_of_answers(client, user, moment) -> dict:
    client.logout()
    public = client.get(f"/api/v1/stations?at={iso(moment)}").json()
    alerts_public = client.get(f"/api/v1/alerts?at={iso(moment)}").json()
    client.force_login(user)
    staff = client.get(f"/api/v1/stations?at={iso(moment)}").json()
    alerts_staff = client.get(f"/api/v1/alerts?at={iso(moment)}").json()
    client.logout()
    return {"public": public, "staff": staff, "alerts_public": alerts_public, "alerts_staff": alerts_staff}


def alert_core(page: dict) -> list[tuple]:
    """What an as-of alert must reproduce (the measure of the latest evaluation is the last transition's)."""
    return sorted(
        (a["id"], a["state"], a["level"], a["peak_level"], a["opened_at"], a["acknowledged_at"], a["resolved_at"])
        for a in page["results"]
        if a["state"] != "resolved"
    )


def test_as_of_answers_equal_the_live_answers_of_then(client, storm, clock):
    capture, river, rain = storm["capture"], storm["river"], storm["rain"]
    start = clock.now
    recorded = []
    for step, (stage, rainfall) in enumerate(zip(RIVER, RAIN)):
        at = start + timedelta(minutes=10 * step)
        clock.now = at + timedelta(seconds=30)
        if step not in (10, 11):  # the rain gauge misses reports: stale for a while
            ingest(rain.code, at, rainfall, capture)
        ingest(river.code, at, stage, capture)
        if step == 6:  # the town raises the flood-caution level mid-storm: a threshold revision
            clock.advance(seconds=30)
            threshold_set(threshold=Threshold.objects.get(station=river, name="flood_caution"), value=3.3,
                          actor=storm["operator"])
        if step == 8:
            from alerts.models import Alert

            clock.advance(seconds=30)
            for alert in Alert.objects.filter(station=river).exclude(state="resolved"):
                alert_acknowledge(alert, storm["operator"])
        if step in (2, 5, 6, 8, 9, 11, 12, 13):
            clock.advance(minutes=2)
            recorded.append((clock.now, live_answers(client, storm["viewer"])))
    # Later, long after the storm, with more readings since.
    clock.now = start + timedelta(hours=6)
    ingest(river.code, clock.now - timedelta(minutes=1), 1.1, capture)
    clock.advance(minutes=1)
    # Silence, 40 minutes after the last rain report: stale, judged then.
    recorded.append((start + timedelta(minutes=10 * 13 + 40), None))

    stale_seen = levels_seen = alerts_seen = 0
    for moment, live in recorded:
        then = as_of_answers(client, storm["viewer"], moment)
        if live is None:
            feature = next(f for f in then["staff"]["features"] if f["id"] == rain.code)
            assert feature["properties"]["stale"] is True
            continue
        assert then["public"] == live["public"]
        assert then["staff"] == live["staff"]
        assert alert_core(then["alerts_staff"]) == alert_core(live["alerts_staff"])
        assert alert_core(then["alerts_public"]) == alert_core(live["alerts_public"])
        by_code = {f["id"]: f["properties"] for f in live["staff"]["features"]}
        stale_seen += by_code[rain.code]["stale"]
        levels_seen += by_code[river.code]["level"] or 0
        alerts_seen += len(alert_core(live["alerts_staff"]))
    # The replay went through the interesting states, so the comparison above meant something.
    assert (stale_seen, bool(levels_seen), bool(alerts_seen)) == (1, True, True)
    assert any(a["acknowledged_at"] for _, live in recorded if live for a in live["alerts_staff"]["results"])
    flood_caution = [
        [t["value"] for t in f["properties"]["thresholds"] if t["name"] == "flood_caution"][0]
        for _, live in recorded if live for f in live["staff"]["features"] if f["id"] == river.code
    ]
    assert 3.0 in flood_caution and 3.3 in flood_caution

    # Playback's compact frames over the same storm say what `?at=` says of each of their moments.
    frames_equal_as_of(client, storm["viewer"], since=start - timedelta(minutes=5), step=timedelta(minutes=5), count=33)


def frames_equal_as_of(client, user, *, since, step, count) -> None:
    """Rebuilds the map from `GET /api/v1/replay/frames` (first frame whole, then changes) and holds
    every moment of it to `GET /api/v1/stations?at=` of that moment, for the user and the public."""
    for who in (user, None):
        client.logout()
        if who:
            client.force_login(who)
        until = since + step * (count - 1)
        answer = client.get("/api/v1/replay/frames", {
            "since": since.isoformat(), "until": until.isoformat(), "step": int(step.total_seconds()),
        })
        assert answer.status_code == 200, answer.content
        fields, frames = answer.json()["fields"], answer.json()["frames"]
        assert len(frames) == count
        shown: dict[str, dict] = {}
        changes = 0
        for index, frame in enumerate(frames):
            moment = since + step * index
            for code, row in frame["stations"].items():
                shown[code] = dict(zip(fields, row))
            changes += len(frame["stations"]) if index else 0
            then = client.get(f"/api/v1/stations?at={iso(moment)}").json()["features"]
            assert shown == {f["id"]: {name: f["properties"].get(name) for name in fields} for f in then}, (who, moment)
        # Later frames carry changes only: far fewer rows than a whole map per moment.
        assert 0 < changes < (count - 1) * len(shown) / 2


def test_as_of_keeps_todays_visibility(client, stations, towns, clock, user_a):
    for code in ("A-PRIVATE", "B-PRIVATE", "B-SHARED", "B-REGION"):
        ingest(code, clock.now - timedelta(minutes=5), 2.5)
    moment = quote(clock.now.isoformat())
    client.force_login(user_a)
    codes = {f["id"] for f in client.get(f"/api/v1/stations?at={moment}").json()["features"]}
    assert codes == {"A-PRIVATE", "A-SHARED", "A-REGION", "A-PUBLIC", "B-SHARED", "B-REGION", "B-PUBLIC"}
    client.logout()
    codes = {f["id"] for f in client.get(f"/api/v1/stations?at={moment}").json()["features"]}
    assert codes == {"A-PUBLIC", "B-PUBLIC"}


def test_replay_frames_keep_todays_visibility(client, stations, towns, clock, user_a):
    for minutes in (30, 20, 10):
        for code in ("A-PRIVATE", "B-PRIVATE", "B-SHARED", "B-REGION", "A-PUBLIC"):
            ingest(code, clock.now - timedelta(minutes=minutes), 2.0 + minutes / 10)
    query = {"since": (clock.now - timedelta(minutes=40)).isoformat(), "until": clock.now.isoformat(), "step": 300}
    client.force_login(user_a)
    frames = client.get("/api/v1/replay/frames", query).json()["frames"]
    assert set(frames[0]["stations"]) == {"A-PRIVATE", "A-SHARED", "A-REGION", "A-PUBLIC", "B-SHARED", "B-REGION", "B-PUBLIC"}
    assert "B-PRIVATE" not in {code for frame in frames for code in frame["stations"]}
    client.logout()
    frames = client.get("/api/v1/replay/frames", query).json()["frames"]
    assert {code for frame in frames for code in frame["stations"]} == {"A-PUBLIC", "B-PUBLIC"}
    assert client.get("/api/v1/replay/frames", {**query, "municipality": "town-b"}).json()["frames"][0]["stations"].keys() == {"B-PUBLIC"}


def test_replay_frames_take_a_fixed_number_of_queries(client, stations, clock):
    for minutes in range(120, 0, -10):
        ingest("A-PUBLIC", clock.now - timedelta(minutes=minutes), 2.0 + minutes / 100)
    since = clock.now - timedelta(hours=2)

    def frames(until):
        return client.get("/api/v1/replay/frames", {"since": since.isoformat(), "until": until.isoformat(), "step": 60})

    frames(since)  # loads the process's as-of catalog
    with CaptureQueriesContext(connection) as short_queries:
        short = frames(since + timedelta(minutes=10))
    with CaptureQueriesContext(connection) as long_queries:
        long = frames(clock.now)
    assert (len(short.json()["frames"]), len(long.json()["frames"])) == (11, 121)
    assert len(long_queries) == len(short_queries) <= 12
    # A moment at which nothing changed lists no station.
    assert long.json()["frames"][1]["stations"] == {}


def test_a_town_slug_change_alone_reaches_the_as_of_map(client, stations, towns, clock):
    ingest("A-PUBLIC", clock.now - timedelta(minutes=5), 2.5)
    moment = {"at": clock.now.isoformat()}

    def town_of_a_public():
        return next(f for f in client.get("/api/v1/stations", moment).json()["features"] if f["id"] == "A-PUBLIC")["properties"]["municipality"]

    assert town_of_a_public() == towns[0].slug  # the process's as-of catalog is loaded now
    type(towns[0]).objects.filter(pk=towns[0].pk).update(slug="town-a-renamed")  # no station row written
    assert town_of_a_public() == "town-a-renamed"


def test_as_of_before_any_reading_has_no_values(client, stations, clock):
    ingest("A-PUBLIC", clock.now - timedelta(minutes=5), 3.2)
    early = quote((clock.now - timedelta(hours=1)).isoformat())
    feature = next(f for f in client.get(f"/api/v1/stations?at={early}").json()["features"] if f["id"] == "A-PUBLIC")
    assert feature["properties"]["value"] is None and feature["properties"]["level"] is None
    now = quote(clock.now.isoformat())
    feature = next(f for f in client.get(f"/api/v1/stations?at={now}").json()["features"] if f["id"] == "A-PUBLIC")
    assert (feature["properties"]["value"], feature["properties"]["level"]) == (3.2, 2)


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("yesterday", "is not an ISO 8601 time"),
        ("2026-11-22T09:00:00", "Needs a UTC offset"),
        ("2026-11-22T09:00:00\x00+09:00", "is not an ISO 8601 time"),
        ("<script>alert(1)</script>", "is not an ISO 8601 time"),
        ("' OR 1=1 --", "is not an ISO 8601 time"),
        ("9" * 5000, "is not an ISO 8601 time"),
        ("0001-01-01T00:00:00+14:00", "outside the representable range"),
        ("1800-01-01T00:00:00Z", "before 1900"),
        ("2999-01-01T00:00:00Z", "in the future"),
        ("", "is not an ISO 8601 time"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/stations", "/api/v1/alerts"])
def test_bad_at_is_a_400_naming_it(client, stations, path, raw, problem):
    response = client.get(path, {"at": raw})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert problem in response.json()["at"]


NOW_ISH = "2026-11-22T09:00:00+09:00"


@pytest.mark.parametrize(
    "query, parameter, problem",
    [
        ({"until": NOW_ISH, "step": "60"}, "since", "Required"),
        ({"since": NOW_ISH, "step": "60"}, "until", "Required"),
        ({"since": NOW_ISH, "until": NOW_ISH}, "step", "Required"),
        ({"since": "yesterday", "until": NOW_ISH, "step": "60"}, "since", "is not an ISO 8601 time"),
        ({"since": "9" * 5000, "until": NOW_ISH, "step": "60"}, "since", "is not an ISO 8601 time"),
        ({"since": NOW_ISH, "until": "2026-11-22T09:00:00\x00+09:00", "step": "60"}, "until", "is not an ISO 8601 time"),
        ({"since": NOW_ISH, "until": "2999-01-01T00:00:00Z", "step": "60"}, "until", "in the future"),
        ({"since": NOW_ISH, "until": NOW_ISH, "step": "0"}, "step", "between 1 and 3600"),
        ({"since": NOW_ISH, "until": NOW_ISH, "step": "１０"}, "step", "integer"),
        ({"since": NOW_ISH, "until": NOW_ISH, "step": "9" * 40}, "step", "integer"),
        ({"since": NOW_ISH, "until": NOW_ISH, "step": "1; DROP TABLE"}, "step", "integer"),
        ({"since": NOW_ISH, "until": "2026-11-22T08:00:00+09:00", "step": "60"}, "until", "before 'since'"),
        ({"since": NOW_ISH, "until": "2026-11-22T13:00:00+09:00", "step": "3600"}, "until", "At most 3 hours"),
        ({"since": NOW_ISH, "until": "2026-11-22T11:00:00+09:00", "step": "1"}, "step", "At most 121 moments"),
        ({"since": NOW_ISH, "until": NOW_ISH, "step": "60", "kind": "volcano"}, "kind", "Must be one of"),
        ({"since": NOW_ISH, "until": NOW_ISH, "step": "60", "municipality": "x" * 200}, "municipality", "slug"),
    ],
)
def test_bad_replay_frames_parameters_are_a_400_naming_them(client, towns, query, parameter, problem):
    response = client.get("/api/v1/replay/frames", query)
    assert response.status_code == 400
    assert problem in str(response.json()[parameter])


def test_readings_up_to_finds_each_newest_reading_however_long_ago(stations, clock):
    """The newest-reading lookup looks in the day before `at` first and further back only for a
    station silent that day: every gap around that bound gives what a plain scan of the table says."""
    from sensors.models import Observation, Station
    from sensors.selectors import NEWEST_LOOKUP_RECENT, readings_up_to

    at = clock.now
    bound = at - NEWEST_LOOKUP_RECENT
    gaps = {  # station code → times of its readings
        "A-PUBLIC": [at - timedelta(minutes=m) for m in (50, 30, 10, 0)],
        "A-REGION": [bound - timedelta(minutes=20), bound],  # newest exactly on the bound
        "A-PRIVATE": [bound - timedelta(minutes=5), bound + timedelta(seconds=1)],  # a second inside it
        "B-PUBLIC": [at - timedelta(days=3, minutes=m) for m in (70, 40, 0)],  # silent for 3 days
        "B-REGION": [at - timedelta(days=45, minutes=m) for m in (20, 0)] + [at + timedelta(minutes=5)],  # another month
    }
    by_code = {station.code: station for station in Station.objects.filter(code__in=gaps)}
    Observation.objects.bulk_create(
        Observation(station=by_code[code], observed_at=moment, value=1.0 + index / 10, received_at=at, source="import")
        for code, moments in gaps.items() for index, moment in enumerate(moments)
    )
    span = timedelta(hours=1)
    spans = {station.pk: span for station in by_code.values()}
    silent = next(s for s in Station.objects.exclude(code__in=gaps))  # no reading at all
    spans[silent.pk] = span

    found = readings_up_to(spans, at)

    for code, station in by_code.items():
        past = [moment for moment in gaps[code] if moment <= at]
        newest = max(past)
        expected = sorted(moment for moment in past if newest - span < moment)
        assert [row[0] for row in found[station.pk]] == expected, code
    assert found.get(silent.pk, []) == []
