"""The one destination policy of alert webhooks and NGSI notifications (issue 10 item 2): on save
(a clear error for the admin) and at delivery, after resolving, with nothing sent to a refused
address and nothing it could answer shown to the admin."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.models import Delivery, NotificationChannel
from alerts.services import deliveries_dispatch, notification_channel_save
from outbound import http as outbound_http
from outbound.destinations import (
    RefusedDestination,
    as_address,
    checked_addresses,
    destination_problem,
)
from tests.alerts.conftest import make_event
from tests.conftest import make_station
from tests.dashboard.test_town_admin import admin_a  # noqa: F401 (fixture)

TRICKY = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://localhost.:{port}/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00::1]/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.1/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",  # shared address space (CGNAT)
    "http://0.0.0.0:{port}/hook",
    "http://[::]:{port}/hook",
    "http://[::1]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::ffff:7f00:1]:{port}/hook",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[2002:7f00:1::]:{port}/hook",  # 6to4 around 127.0.0.1
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",  # reserved
    "http://2130706433:{port}/hook",  # decimal 127.0.0.1
    "http://0x7f000001:{port}/hook",  # hex
    "http://0x7f.0.0.1:{port}/hook",
    "http://0177.0.0.1:{port}/hook",  # octal
    "http://0177.1:{port}/hook",
    "http://127.1:{port}/hook",
    "http://017700000001:{port}/hook",
    "http://allowed.example@127.0.0.1:{port}/hook",  # userinfo: the host is 127.0.0.1
    "http://user:pass@allowed.example/hook",
    "http://127.0.0.1:{port}#@allowed.example/hook",
    "http://127.0.0.1:{port}\\@allowed.example/hook",
    "http://allowed.example\r\nX-Injected: 1/hook",
    "ftp://allowed.example/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/",
    "//allowed.example/hook",
    "http:///hook",
    "http://allowed.example:99999/hook",
    "",
]


@pytest.fixture
def public_wildcard(settings):
    """Every public host allowed, as a careless operator might configure it: still nothing inside."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["*", "allowed.example"]
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = []


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self):
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "host": self.headers["Host"]})
                self.send_response(200 if not self.path.startswith("/redirect") else 302)
                if self.path.startswith("/redirect"):
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "16")
                self.end_headers()
                self.wfile.write(b"internal-secret!")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.mark.parametrize("url", TRICKY)
def test_tricky_urls_are_refused(public_wildcard, receiver, url):
    url = url.format(port=receiver.port)
    assert destination_problem(url) is not None, url
    with pytest.raises(RefusedDestination):
        outbound_http.post(url, b"{}", {}, timeout=2)
    assert receiver.requests == []


def test_spellings_are_read_as_the_resolver_reads_them():
    assert str(as_address("2130706433")) == str(as_address("0x7f.1")) == str(as_address("0177.0.0.1")) == "127.0.0.1"
    assert str(as_address("::ffff:169.254.169.254")) == "169.254.169.254"
    assert as_address("deadbeef") is None and as_address("example.org") is None


def test_an_explicitly_listed_internal_address_is_allowed(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{receiver.port}"]
    url = f"http://127.0.0.1:{receiver.port}/hook"
    assert destination_problem(url) is None
    assert outbound_http.post(url, b"{}", {}, timeout=5) == 200
    # Another port of the same address is not covered.
    assert "not listed" in destination_problem(f"http://127.0.0.1:{receiver.port + 1}/hook")


def test_the_old_setting_name_is_read_as_part_of_the_same_list(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = [f"127.0.0.1:{receiver.port}"]
    assert destination_problem(f"http://127.0.0.1:{receiver.port}/hook") is None


def test_a_listed_name_pointed_inside_is_refused_at_delivery(settings, receiver, monkeypatch):
    settings.OUTBOUND_ALLOWED_HOSTS = ["hooks.example"]
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: real(
        "127.0.0.1" if host == "hooks.example" else host, *args, **kwargs))
    problem = destination_problem(f"http://hooks.example:{receiver.port}/hook")
    assert "resolves to the non-public address 127.0.0.1" in problem
    with pytest.raises(RefusedDestination):
        outbound_http.post(f"http://hooks.example:{receiver.port}/hook", b"{}", {}, timeout=2)
    assert receiver.requests == []


def test_the_connection_goes_to_the_checked_address_with_the_urls_host(settings, receiver, monkeypatch):
    settings.OUTBOUND_ALLOWED_HOSTS = ["hooks.example", f"127.0.0.1:{receiver.port}"]
    answers = iter(["127.0.0.1"])  # the first lookup (the check) says 127.0.0.1 ...
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "hooks.example":
            return real(next(answers, "10.9.9.9"), *args, **kwargs)  # ... any later one would say otherwise
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert checked_addresses(f"http://hooks.example:{receiver.port}/hook")[0].compressed == "127.0.0.1"
    answers = iter(["127.0.0.1"])
    assert outbound_http.post(f"http://hooks.example:{receiver.port}/hook?a=1", b"{}", {}, timeout=5) == 200
    assert receiver.requests == [{"path": "/hook?a=1", "host": f"hooks.example:{receiver.port}"}]


def test_redirects_are_not_followed(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{receiver.port}"]
    assert outbound_http.post(f"http://127.0.0.1:{receiver.port}/redirect", b"{}", {}, timeout=5) == 302
    assert [r["path"] for r in receiver.requests] == ["/redirect"]


# --- alert webhook channels --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", TRICKY[:30])
def test_a_town_admin_cannot_save_a_webhook_to_an_internal_address(public_wildcard, towns, url):
    with pytest.raises(ValidationError) as excinfo:
        notification_channel_save(municipality=towns[0], kind="webhook", target=url.format(port=8251), secret="s")
    assert "refused" in str(excinfo.value.message_dict.get("target", ""))
    assert not NotificationChannel.objects.exists()


@pytest.mark.django_db
def test_the_town_admin_page_says_why_a_webhook_target_is_refused(client, public_wildcard, towns, admin_a):  # noqa: F811
    client.force_login(admin_a)
    page = client.post("/hq/admin/channels/", {"kind": "webhook", "target": "http://169.254.169.254/latest/meta-data/",
                                               "secret": "s3cret", "scope": "visible", "enabled": "on"}, follow=True)
    assert "non-public address" in page.content.decode()
    assert not NotificationChannel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_delivery_to_a_name_resolving_to_loopback_is_refused_and_shows_no_response(settings, towns, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = ["*"]
    station = make_station(towns[0], "R1")
    # Saved when the policy allowed it (or written around it): the delivery checks again.
    channel = NotificationChannel.objects.create(municipality=towns[0], kind="webhook", secret="s",
                                                 target=f"http://localhost:{receiver.port}/hook")
    Delivery.objects.create(event=make_event(station), channel=channel, next_attempt_at=timezone.now(),
                            created_at=timezone.now() - timedelta(seconds=1))
    deliveries_dispatch(worker_id="w")
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.FAILED
    assert delivery.last_error.startswith("refused: localhost resolves to the non-public address 127.0.0.1")
    assert "internal-secret" not in delivery.last_error and "200" not in delivery.last_error
    assert receiver.requests == []
    channel.refresh_from_db()
    assert channel.last_error == delivery.last_error
