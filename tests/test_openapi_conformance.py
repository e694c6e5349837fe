"""The API answers as /api/schema/ says (issue 10 item 10): schemathesis generates requests from the
schema and calls the app through WSGI as an anonymous caller, a gateway (token) and a town's
operator (session with CSRF token); no 5xx, and every status, content type, header and body is
declared. Bounded: a fixed number of examples per operation, derandomized (the same requests on
every run)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import get_token
from django.test import RequestFactory
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alerts.models import Alert
from tests.alerts.conftest import make_event
from tests.conftest import make_station

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 3


@pytest.fixture
def api_schema(db):
    # As Django's test client does: the requests run inside the test's transaction, which closing
    # the connection at the end of each request would end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def identities(towns, stations, token_a, client):
    """Headers and cookies of each caller: anonymous, town A's gateway, town A's operator."""
    from django.contrib.auth import get_user_model

    from tenancy.models import Membership

    operator = get_user_model().objects.create_user("a-operator", password="pw-a-operator-123")
    Membership.objects.create(user=operator, municipality=towns[0], role=Membership.Role.OPERATOR)
    client.force_login(operator)
    csrf = get_token(RequestFactory().get("/"))
    make_station(towns[0], "A-EXTRA")
    make_event(stations["a-public"])
    assert Alert.objects.exists()
    return {
        "anonymous": ({}, {}),
        "gateway": ({"Authorization": f"Bearer {token_a}"}, {}),
        "operator": ({"X-CSRFToken": csrf}, {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}),
    }


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_declared_in_the_schema(case, identities):
    # Who calls is the identity's business alone: drop the credentials schemathesis generated from the
    # security schemes, keep everything else it generated.
    generated_headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.cookies = {k: v for k, v in (case.cookies or {}).items() if k not in ("sessionid", "csrftoken")}
    for identity, (headers, cookies) in identities.items():
        # Compression is tested in tests/test_compression.py; here the bodies are read as documented.
        case.headers = {**generated_headers, **headers, "Accept-Encoding": "identity"}
        response = case.call(cookies=cookies)
        case.validate_response(response, checks=CHECKS)
        if (case.method, case.path) == WRITES_OF.get(identity):
            # The gateway's token and the operator's session (with its CSRF token) really authenticate.
            assert response.status_code not in (401, 403), (identity, case.path, response.text)


WRITES_OF = {
    "gateway": ("POST", "/api/v1/observations"),
    "operator": ("POST", "/api/v1/alerts/{alert_id}/acknowledge"),
}
