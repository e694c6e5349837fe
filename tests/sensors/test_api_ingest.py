"""POST /api/v1/observations: the ingestion contract of DESIGN.md, including hostile input."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.test import override_settings
from django.utils import timezone as dj_timezone

from sensors.models import Observation, Station, StationState
from tenancy.models import IngestToken
from tenancy.services import ingest_token_revoke

URL = "/api/v1/observations"
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def iso(dt: datetime, offset_hours: int = 9) -> str:
    return dt.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def post_json(client, token, body, **extra):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def post_csv(client, token, text, **extra):
    return client.post(URL, data=text, content_type="text/csv", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def stored():
    return sorted(Observation.objects.values_list("station__code", "observed_at", "value"))


@pytest.fixture
def existing(stations, token_a, client):
    """One reading already stored for A-PUBLIC at T0."""
    response = post_json(
        client, token_a, {"observations": [{"station": "A-PUBLIC", "observed_at": iso(T0), "value": 1.0}]}
    )
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    return stored()


def test_mixed_batch_reports_every_item_and_stores_exactly_the_valid_ones(client, existing, token_a):
    t1 = iso(T0 + timedelta(minutes=10))
    body = (
        '{"observations": ['
        f'{{"station": "A-PUBLIC", "observed_at": "{t1}", "value": 1.5}},'  # 0 valid
        f'{{"station": "A-PUBLIC", "observed_at": "{iso(T0, 0)}", "value": 9.9}},'  # 1 duplicate of stored
        f'{{"station": "NOPE", "observed_at": "{t1}", "value": 1.0}},'  # 2 unknown station
        '{"station": "A-PRIVATE", "observed_at": "2026-11-21T21:00:00", "value": 1.0},'  # 3 naive time
        f'{{"station": "A-PRIVATE", "observed_at": "{t1}", "value": NaN}},'  # 4 non-finite
        f'{{"station": "B-PUBLIC", "observed_at": "{t1}", "value": 1.0}},'  # 5 another town's station
        f'{{"station": "A-REGION", "observed_at": "{t1}", "value": 2.25}},'  # 6 valid
        f'{{"station": "A-PUBLIC", "observed_at": "{t1}", "value": 1.5}}'  # 7 duplicate within the batch
        "]}"
    )
    response = post_json(client, token_a, body)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "accepted": 2,
        "duplicates": 2,
        "rejected": [
            {"index": 2, "error": "unknown station 'NOPE' for municipality 'town-a'"},
            {"index": 3, "error": "'observed_at' '2026-11-21T21:00:00' has no UTC offset (add e.g. +09:00 or Z)"},
            {"index": 4, "error": "'value' must be a finite number, got nan"},
            {"index": 5, "error": "unknown station 'B-PUBLIC' for municipality 'town-a'"},
        ],
    }
    assert stored() == sorted(
        existing + [("A-PUBLIC", T0 + timedelta(minutes=10), 1.5), ("A-REGION", T0 + timedelta(minutes=10), 2.25)]
    )
    # The duplicate with a different value did not overwrite what was stored.
    assert Observation.objects.get(station__code="A-PUBLIC", observed_at=T0).value == 1.0


def test_foreign_and_missing_stations_get_the_same_words(client, stations, token_b):
    body = {
        "observations": [
            {"station": "A-PRIVATE", "observed_at": iso(T0), "value": 1.0},
            {"station": "ZZ-DOES-NOT-EXIST", "observed_at": iso(T0), "value": 1.0},
        ]
    }
    errors = [r["error"] for r in post_json(client, token_b, body).json()["rejected"]]
    assert errors == [
        "unknown station 'A-PRIVATE' for municipality 'town-b'",
        "unknown station 'ZZ-DOES-NOT-EXIST' for municipality 'town-b'",
    ]
    assert Observation.objects.count() == 0


@pytest.mark.parametrize(
    "item, error",
    [
        ({"observed_at": "2026-11-21T12:00:00Z", "value": 1}, "missing 'station'"),
        ({"station": "A-PUBLIC", "value": 1}, "missing 'observed_at'"),
        ({"station": "A-PUBLIC"}, "missing 'observed_at', 'value'"),
        ({"station": "", "observed_at": "2026-11-21T12:00:00Z", "value": 1}, "'station' must be a non-empty string"),
        ({"station": 7, "observed_at": "2026-11-21T12:00:00Z", "value": 1}, "'station' must be a non-empty string"),
        ({"station": "A-PUBLIC", "observed_at": "yesterday", "value": 1}, "'observed_at' 'yesterday' is not an ISO 8601 time"),
        ({"station": "A-PUBLIC", "observed_at": 1700000000, "value": 1}, "'observed_at' must be an ISO 8601 string with a UTC offset"),
        ({"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00Z", "value": "1.5"}, "'value' '1.5' is not a number"),
        ({"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00Z", "value": True}, "'value' True is not a number"),
        ({"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00Z", "value": None}, "'value' None is not a number"),
        ({"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00Z", "value": [1]}, "'value' [1] is not a number"),
        ({"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00Z", "value": 1e400}, "'value' must be a finite number, got inf"),
        ({"station": "A-PUBLIC", "observed_at": "1800-01-01T00:00:00Z", "value": 1}, "'observed_at' '1800-01-01T00:00:00Z' is before 1900"),
        ("just a string", "item must be an object with 'station', 'observed_at' and 'value'"),
        ([1, 2, 3], "item must be an object with 'station', 'observed_at' and 'value'"),
        ({"station": "A" * 41, "observed_at": "2026-11-21T12:00:00Z", "value": 1}, "'station' 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA…' is longer than 40 characters"),
        ({"station": "A-PUBLIC", "observed_at": "2" * 100, "value": 1}, "'observed_at' is too long to be an ISO 8601 time"),
    ],
)
def test_invalid_items_are_rejected_with_a_clear_reason(client, stations, token_a, item, error):
    response = post_json(client, token_a, {"observations": [item]})
    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": [{"index": 0, "error": error}]}
    assert Observation.objects.count() == 0


def test_future_readings_beyond_clock_skew_are_rejected(client, stations, token_a):
    now = dj_timezone.now()
    body = {
        "observations": [
            {"station": "A-PUBLIC", "observed_at": iso(now + timedelta(seconds=30)), "value": 1.0},
            {"station": "A-PUBLIC", "observed_at": iso(now + timedelta(hours=2)), "value": 1.0},
        ]
    }
    reply = post_json(client, token_a, body).json()
    assert reply["accepted"] == 1
    assert [r["index"] for r in reply["rejected"]] == [1]
    assert "is in the future" in reply["rejected"][0]["error"]


def test_out_of_order_reading_is_stored_but_does_not_move_latest_state_back(client, stations, token_a):
    late = {"station": "A-PUBLIC", "observed_at": iso(T0), "value": 4.2}
    newer = {"station": "A-PUBLIC", "observed_at": iso(T0 + timedelta(minutes=30)), "value": 3.1}
    post_json(client, token_a, {"observations": [newer]})
    post_json(client, token_a, {"observations": [late]})
    state = StationState.objects.get(station__code="A-PUBLIC")
    assert (state.observed_at, state.value, state.level) == (T0 + timedelta(minutes=30), 3.1, 2)
    assert Observation.objects.filter(station__code="A-PUBLIC").count() == 2


def test_latest_state_level_follows_thresholds(client, stations, token_a):
    # Twenty minutes apart, so each rise is a plausible one (see test_ingest_service for spikes).
    for minutes, value, level in [(0, 1.0, 0), (20, 2.5, 0), (40, 3.0, 2), (60, 3.6, 3), (80, 4.1, 4), (100, 5.2, 5)]:
        post_json(
            client,
            token_a,
            {"observations": [{"station": "A-PUBLIC", "observed_at": iso(T0 + timedelta(minutes=minutes)), "value": value}]},
        )
        assert StationState.objects.get(station__code="A-PUBLIC").level == level, value


def test_csv_batch_is_ingested_with_per_row_errors(client, stations, token_a):
    text = (
        "\ufeffstation,observed_at,value\r\n"
        f"A-PUBLIC,{iso(T0)},1.25\r\n"
        "\r\n"
        f"A-PUBLIC,{iso(T0 + timedelta(minutes=10))},abc\r\n"
        f"A-PUBLIC,{iso(T0 + timedelta(minutes=20))}\r\n"
        f"A-REGION,{iso(T0 + timedelta(minutes=20))},nan\r\n"
        f'"A-PRIVATE","{iso(T0 + timedelta(minutes=30))}", 2.5 \r\n'
        f"A-PUBLIC,{iso(T0)},1.25\r\n"
    )
    response = post_csv(client, token_a, text)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "error": "'value' 'abc' is not a number"},
            {"index": 2, "error": "line 5: expected 3 fields, got 2"},
            {"index": 3, "error": "'value' must be a finite number, got nan"},
        ],
    }
    assert Observation.objects.filter(source=Observation.Source.CSV).count() == 2


def test_csv_columns_may_come_in_any_order(client, stations, token_a):
    text = f"value,station,observed_at\n3.25,A-PUBLIC,{iso(T0)}\n"
    assert post_csv(client, token_a, text).json()["accepted"] == 1
    assert stored() == [("A-PUBLIC", T0, 3.25)]


@pytest.mark.parametrize(
    "body, detail",
    [
        ("{not json", "Malformed JSON at line 1 column 2"),
        ('{"observations": [{"station": "A-PUBLIC"', "Malformed JSON"),
        ("[]", "Body must be a JSON object"),
        ('"observations"', "Body must be a JSON object"),
        ("{}", 'Body has no "observations" list.'),
        ('{"observations": {"station": "A-PUBLIC"}}', '"observations" must be a list.'),
        ('{"observations": [], "observations": []}', "Duplicate key(s)"),
        ("[" * 100_000 + "]" * 100_000, "JSON is nested too deeply."),
        ('{"observations":' + "[" * 100_000 + "]" * 100_000 + "}", "JSON is nested too deeply."),
        (b'{"observations": [{"station": "\xff\xfe"}]}', "Body is not valid UTF-8 (byte 31)."),
        ("", "Empty body"),
    ],
    ids=["broken", "truncated", "list", "string", "no-key", "not-list", "dup-key", "deep-list", "deep-obs",
         "latin1", "empty"],
)
def test_malformed_json_document_is_400_and_stores_nothing(client, existing, token_a, body, detail):
    response = post_json(client, token_a, body)
    assert response.status_code == 400, response.content
    assert detail in response.json()["detail"]
    assert stored() == existing


@pytest.mark.parametrize(
    "text, detail",
    [
        ("", "Empty body"),
        ("station,value\nA-PUBLIC,1\n", "CSV header must be station,observed_at,value"),
        ("station,observed_at,value,extra\n", "CSV header must be station,observed_at,value"),
        ('station,observed_at,value\n"A-PUBLIC,2026-11-21T12:00:00Z,1\n', "Malformed CSV"),
        ("station,observed_at,value\nA-PUBLIC,2026-11-21T12:00:00Z,1\x00\n", "CSV contains a NUL byte."),
    ],
)
def test_malformed_csv_document_is_400_and_stores_nothing(client, existing, token_a, text, detail):
    response = post_csv(client, token_a, text)
    assert response.status_code == 400, response.content
    assert detail in response.json()["detail"]
    assert stored() == existing


def test_csv_in_another_encoding_is_400(client, existing, token_a):
    text = "station,observed_at,value\n水位,2026-11-21T12:00:00Z,1\n".encode("shift_jis")
    response = post_csv(client, token_a, text)
    assert response.status_code == 400
    assert "not valid UTF-8" in response.json()["detail"]
    assert stored() == existing


@override_settings(INGEST_MAX_BATCH=5)
def test_too_many_items_is_413_and_stores_nothing(client, existing, token_a):
    items = [{"station": "A-PUBLIC", "observed_at": iso(T0 + timedelta(minutes=i + 1)), "value": 1.0} for i in range(6)]
    response = post_json(client, token_a, {"observations": items})
    assert response.status_code == 413
    assert "at most 5" in response.json()["detail"]
    text = "station,observed_at,value\n" + "".join(f"{i['station']},{i['observed_at']},1\n" for i in items)
    assert post_csv(client, token_a, text).status_code == 413
    assert stored() == existing


@override_settings(INGEST_MAX_BODY_BYTES=1000)
def test_too_large_body_is_413_and_stores_nothing(client, existing, token_a):
    body = {"observations": [{"station": "A-PUBLIC", "observed_at": iso(T0), "value": 1.0, "pad": "x" * 2000}]}
    response = post_json(client, token_a, body)
    assert response.status_code == 413
    assert stored() == existing


def test_unsupported_content_type_is_415(client, existing, token_a):
    response = client.post(URL, data="a=1", content_type="application/x-www-form-urlencoded",
                           HTTP_AUTHORIZATION=f"Bearer {token_a}")
    assert response.status_code == 415
    assert stored() == existing


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-token", "Bearer a b", "Token abc", "Bearer ünïcode"],
)
def test_missing_or_bad_token_is_401_and_stores_nothing(client, stations, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    body = json.dumps({"observations": [{"station": "A-PUBLIC", "observed_at": iso(T0), "value": 1.0}]})
    response = client.post(URL, data=body, content_type="application/json", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] in {
        "A gateway token is required: 'Authorization: Bearer <token>'.",
        "Authorization header must be 'Bearer <token>'.",
        "Invalid or revoked token.",
        "Token contains non-ASCII characters.",
    }
    assert Observation.objects.count() == 0


def test_revoked_token_is_refused(client, stations, token_a):
    ingest_token_revoke(token=IngestToken.objects.get(digest=IngestToken.digest_of(token_a)))
    response = post_json(client, token_a, {"observations": [{"station": "A-PUBLIC", "observed_at": iso(T0), "value": 1}]})
    assert response.status_code == 401
    assert Observation.objects.count() == 0


def test_logged_in_user_without_token_cannot_ingest(client, stations, user_a):
    client.force_login(user_a)
    body = json.dumps({"observations": [{"station": "A-PUBLIC", "observed_at": iso(T0), "value": 1.0}]})
    response = client.post(URL, data=body, content_type="application/json")
    assert response.status_code == 401
    assert Observation.objects.count() == 0


def test_a_batch_costs_a_fixed_number_of_queries(client, stations, token_a, django_assert_max_num_queries):
    def batch(start, count):
        return {
            "observations": [
                {"station": code, "observed_at": iso(T0 - timedelta(days=10, minutes=start + i)), "value": 1.0 + i / 1000}
                for i in range(count)
                for code in ("A-PUBLIC", "A-REGION", "A-PRIVATE")
            ]
        }

    post_json(client, token_a, batch(0, 2))  # warm-up: creates state rows
    with django_assert_max_num_queries(20):
        assert post_json(client, token_a, batch(100, 10)).json()["accepted"] == 30
    # SQLite caps a statement at 999 parameters, so its bulk INSERTs hold ~160 rows each.
    with django_assert_max_num_queries(12 + 2700 // 150):
        assert post_json(client, token_a, batch(1000, 900)).json()["accepted"] == 2700


def test_between_two_posts_a_revoked_token_a_retired_station_and_a_visibility_change_take_effect(
    client, stations, token_a
):
    # Nothing on the request path is cached beyond what the next request checks: the token is read
    # each time and the station catalog is reloaded when its stamp changes (any write path).
    def post(minutes, token=token_a):
        items = [{"station": code, "observed_at": iso(T0 + timedelta(minutes=minutes)), "value": 1.0}
                 for code in ("A-PUBLIC", "A-PRIVATE")]
        return post_json(client, token, {"observations": items})

    assert post(0).json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    Station.objects.filter(code="A-PUBLIC").update(is_active=False)  # a write no signal sees
    Station.objects.filter(code="A-PRIVATE").update(visibility="public")
    assert post(10).json() == {
        "accepted": 1, "duplicates": 0, "rejected": [{"index": 0, "error": "station 'A-PUBLIC' is inactive"}],
    }
    ingest_token_revoke(token=IngestToken.objects.get(digest=IngestToken.digest_of(token_a)))
    assert post(20).status_code == 401
    assert stored() == [("A-PRIVATE", T0, 1.0), ("A-PRIVATE", T0 + timedelta(minutes=10), 1.0), ("A-PUBLIC", T0, 1.0)]


def test_a_gateway_tick_on_postgresql_is_a_fixed_handful_of_round_trips(client, stations, token_a):
    """Every round trip waits for the scheduler twice on a loaded machine: the token, the catalog
    stamp, the lock of the latest states, one statement for readings and states, the change-log row
    (and BEGIN and COMMIT, which Django does not list)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps the ORM flow")
    codes = ("A-PUBLIC", "A-REGION", "A-PRIVATE")

    def tick(minutes):
        items = [{"station": code, "observed_at": iso(T0 + timedelta(minutes=minutes)), "value": 1.0} for code in codes]
        return post_json(client, token_a, {"observations": items})

    tick(0)  # first readings: state rows are created; the token's last use is written
    with CaptureQueriesContext(connection) as captured:
        assert tick(10).json()["accepted"] == 3
    statements = [query["sql"].split()[0].upper() for query in captured.captured_queries]
    # The test runs inside a transaction, where the request's atomic block is a savepoint.
    statements = [statement for statement in statements if statement not in ("SAVEPOINT", "RELEASE")]
    assert statements == ["SELECT", "SELECT", "SELECT", "WITH", "INSERT"], statements
