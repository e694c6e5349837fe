"""A database or Redis outage answers 503 with Retry-After: JSON under /api/ and /ngsi/, a short
plain page elsewhere; never Django's 500 HTML (issue 10 item 3). Errors under /api/ are JSON.

The outage is real at the connection level: the default connection is pointed at a closed port
(PostgreSQL) or an unopenable file (SQLite), so the driver's own error comes through Django. The
machine's shared PostgreSQL is never touched.
"""

import json
import socket
from contextlib import contextmanager

import pytest
import redis.exceptions
from django.db import OperationalError, connection
from django.test import Client, override_settings

from sensors.models import Observation
from tenancy.models import Membership

OUTAGE_RETRY_AFTER = "15"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def database_down():
    """Every new connection to the default database fails while inside, as during a restart."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-mizumori-outage/db.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@contextmanager
def failing_sql(fragment: str, message: str = "the database system is shutting down"):
    """Statements containing `fragment` fail as if the server went away in the middle of a request."""

    def wrapper(execute, sql, params, many, context):
        if fragment in sql:
            raise OperationalError(message)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def assert_api_503(response):
    assert response.status_code == 503
    assert response["Retry-After"] == OUTAGE_RETRY_AFTER
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    assert body["error"] == "service_unavailable"
    assert "retry after 15 s" in body["detail"]
    return body


@pytest.fixture
def operator(towns):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("a-operator", password="pw-a-operator-123")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.OPERATOR)
    Membership.objects.create(user=user, municipality=towns[1], role=Membership.Role.VIEWER)
    return user


@pytest.mark.django_db(transaction=True)
def test_api_reads_answer_503_json_while_the_database_is_down(stations, client):
    with database_down():
        assert_api_503(client.get("/api/v1/stations"))
        assert_api_503(client.get("/api/v1/stations/A-PUBLIC/observations"))
        assert_api_503(client.get("/api/v1/alerts"))
    # And it comes back by itself once the database answers again.
    assert client.get("/api/v1/stations").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_gateway_posting_during_the_outage_gets_503_and_can_retry(stations, token_a, client):
    body = {"observations": [{"station": "A-PUBLIC", "observed_at": "2026-11-22T09:00:00+09:00", "value": 1.5}]}
    post = lambda: client.post(
        "/api/v1/observations", json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token_a}",
    )
    with database_down():
        assert_api_503(post())
    assert Observation.objects.count() == 0
    assert json.loads(post().content)["accepted"] == 1
    assert Observation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_ngsi_answers_503_in_orion_shape(stations, client):
    with database_down():
        response = client.get("/ngsi/v2/entities")
    assert response.status_code == 503
    assert response["Retry-After"] == OUTAGE_RETRY_AFTER
    body = json.loads(response.content)
    assert body["error"] == "ServiceUnavailable"
    assert "retry after 15 s" in body["description"]


@pytest.mark.django_db(transaction=True)
def test_pages_answer_a_short_plain_503_page(stations, operator):
    anonymous, staff = Client(), Client()
    staff.force_login(operator)
    with database_down():
        for client, path in ((anonymous, "/"), (anonymous, "/stations/A-PUBLIC/"), (staff, "/hq/")):
            response = client.get(path)
            assert response.status_code == 503, path
            assert response["Retry-After"] == OUTAGE_RETRY_AFTER
            assert response["Content-Type"] == "text/html; charset=utf-8"
            text = response.content.decode()
            assert "一時的に利用できません" in text and "Temporarily unavailable" in text
            assert "Traceback" not in text and "Server Error" not in text


@pytest.mark.django_db(transaction=True)
def test_an_outage_inside_another_middleware_is_503_too(stations, operator):
    """The session is saved by SessionMiddleware after the view: Django turns an error there into
    a 500 by handler500, which must still say 503 and not show Django's error page."""
    client = Client(raise_request_exception=False)
    client.force_login(operator)
    with failing_sql('UPDATE "django_session"'):
        response = client.post("/hq/town/", {"municipality": operator.memberships.last().municipality_id})
    assert response.status_code == 503
    assert response["Retry-After"] == OUTAGE_RETRY_AFTER
    assert "一時的に利用できません" in response.content.decode()


class RaisingMiddleware:
    error: BaseException = OperationalError("server closed the connection unexpectedly")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OperationalError("server closed the connection unexpectedly"), 503),
        (redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379."), 503),
        (RuntimeError("a bug"), 500),
    ],
)
def test_errors_raised_by_any_middleware_are_json_under_api(settings, error, status, monkeypatch):
    monkeypatch.setattr(RaisingMiddleware, "error", error)
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.RaisingMiddleware"]
    client = Client(raise_request_exception=False)
    api = client.get("/api/v1/stations")
    assert api.status_code == status
    assert api["Content-Type"] == "application/json"
    assert "detail" in json.loads(api.content)
    ngsi = client.get("/ngsi/v2/entities")
    assert (ngsi.status_code, ngsi["Content-Type"]) == (status, "application/json")
    assert set(json.loads(ngsi.content)) == {"error", "description"}
    page = client.get("/")
    assert page.status_code == status
    if status == 503:
        assert page["Retry-After"] == OUTAGE_RETRY_AFTER
        assert "一時的に利用できません" in page.content.decode()


@pytest.mark.django_db
def test_a_redis_outage_in_a_view_is_503(stations, client, monkeypatch):
    import sensors.api

    def redis_down(**kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(sensors.api, "station_feature_collection", redis_down)
    assert_api_503(client.get("/api/v1/stations"))


@override_settings(OUTAGE_RETRY_AFTER_SECONDS=120)
@pytest.mark.django_db(transaction=True)
def test_retry_after_follows_the_setting(stations, client):
    with database_down():
        response = client.get("/api/v1/stations")
    assert (response.status_code, response["Retry-After"]) == (503, "120")


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nothing-here", "/api/v1/stations/", "/api/v2/stations", "/api/", "/api/v1/alerts/not-a-number"],
)
@pytest.mark.django_db
def test_unknown_paths_under_api_are_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"detail": "No API endpoint at this path."}


@pytest.mark.django_db
def test_unknown_pages_stay_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
