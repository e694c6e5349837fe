"""Issue 16 item 5: the agency's Atom feed at an operator-set URL, polled through the outbound policy
with size limits and timeouts. A local HTTP server serves the feed and the documents: no network."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jma.feed import MAX_DOCUMENTS_PER_POLL, jma_feed_poll
from jma.models import JmaFeedDocument, JmaWarning

from .test_jma import RIVER, in_force, weather

FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">
<title>高頻度（随時）</title><id>urn:test:feed</id><updated>2026-11-22T01:10:00Z</updated>
{entries}
</feed>"""
ENTRY = """<entry><title>{title}</title><id>{href}</id><updated>{updated}</updated>
<author><name>水森地方気象台</name></author><link type="application/xml" href="{href}"/>
<content type="text">{title}</content></entry>"""


def feed(*entries) -> bytes:
    return FEED.format(entries="".join(ENTRY.format(title=t, href=h, updated=u) for t, h, u in entries)).encode()


class Site:
    """Serves `pages` (path -> bytes, or a callable giving (status, bytes)); records each path asked for."""

    def __init__(self):
        self.pages: dict[str, object] = {}
        self.asked: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                site.asked.append(self.path)
                page = site.pages.get(self.path)
                status, body = page() if callable(page) else (200, page) if page is not None else (404, b"no")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the poller gave up waiting (the timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.JMA_FEED_TIMEOUT_SECONDS = 1
    served = Site()
    settings.JMA_FEED_URL = f"{served.base}/feed.xml"
    yield served
    served.close()


def test_off_by_default(db, settings):
    settings.JMA_FEED_URL = ""
    assert jma_feed_poll().error == "JMA_FEED_URL is not set"
    with pytest.raises(CommandError, match="JMA_FEED_URL"):
        call_command("import_jma_xml", "--feed")


def test_the_feed_s_warning_documents_are_applied_once_each_and_others_not_fetched(site, towns):
    site.pages["/feed.xml"] = feed(
        ("気象特別警報・警報・注意報", f"{site.base}/vpww53.xml", "2026-11-22T01:00:00Z"),
        ("指定河川洪水予報", "/vxko50.xml", "2026-11-22T01:10:00Z"),  # relative: resolved against the feed
        ("府県天気予報（Ｒ１）", f"{site.base}/vpfd50.xml", "2026-11-22T01:05:00Z"),  # not a warning: not fetched
    )
    site.pages["/vpww53.xml"] = weather()
    site.pages["/vxko50.xml"] = RIVER.encode()
    report = jma_feed_poll()
    assert report.error is None and report.refused == [] and report.failed == []
    assert report.applied == ["水森県気象警報・注意報: town-a, town-b", "水森川氾濫警戒情報: town-b"]
    assert in_force(towns[0]) == ["大雨警報", "洪水注意報"] and in_force(towns[1]) == ["氾濫警戒情報"]
    assert sorted(site.asked) == ["/feed.xml", "/vpww53.xml", "/vxko50.xml"]

    site.asked.clear()
    again = jma_feed_poll()
    assert (again.applied, again.already_seen, site.asked) == ([], 2, ["/feed.xml"])

    # The same document listed with a new `updated` (a correction) is fetched again.
    site.pages["/feed.xml"] = feed(("指定河川洪水予報", "/vxko50.xml", "2026-11-22T01:20:00Z"))
    site.asked.clear()
    assert jma_feed_poll().applied == ["水森川氾濫警戒情報: town-b"] and site.asked == ["/feed.xml", "/vxko50.xml"]


def test_the_command_polls_the_feed(site, towns):
    site.pages["/feed.xml"] = feed(("気象警報・注意報（Ｈ２７）", "/a.xml", "2026-11-22T01:00:00Z"))
    site.pages["/a.xml"] = weather()
    out, err = StringIO(), StringIO()
    call_command("import_jma_xml", "--feed", stdout=out, stderr=err)
    assert "applied 水森県気象警報・注意報: town-a, town-b" in out.getvalue()
    assert "1 applied, 0 refused, 0 failed" in out.getvalue() and err.getvalue() == ""
    with pytest.raises(CommandError, match="--feed"):
        call_command("import_jma_xml", "--loop")


def test_hosts_outside_the_outbound_policy_are_never_asked(site, settings, towns):
    # A document on another (non-public) host than the listed one: refused, and never requested.
    site.pages["/feed.xml"] = feed(("気象警報・注意報", "http://10.0.0.7/x.xml", "2026-11-22T01:00:00Z"),
                                   ("気象警報・注意報", "http://169.254.169.254/latest/meta-data", "2026-11-22T01:00:00Z"))
    report = jma_feed_poll()
    assert [line.split(": ")[1] for line in report.refused] == ["RefusedDestination", "RefusedDestination"]
    assert "10.0.0.7:80 is a non-public address and is not listed in OUTBOUND_ALLOWED_HOSTS" in report.refused[0]
    assert JmaWarning.objects.count() == 0
    # The feed itself on a host not listed: nothing is asked at all.
    settings.OUTBOUND_ALLOWED_HOSTS = []
    site.asked.clear()
    refused = jma_feed_poll()
    assert "not listed in OUTBOUND_ALLOWED_HOSTS" in refused.error and site.asked == []


def test_oversized_hostile_and_broken_answers_are_refused_or_retried(site, towns, monkeypatch):
    monkeypatch.setattr("jma.feed.MAX_BYTES", 4096)
    billion_laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
                      b'<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">&lol2;</Report>')

    def slow():
        time.sleep(1.5)
        return 200, weather()

    site.pages["/feed.xml"] = feed(
        ("気象警報・注意報", "/huge.xml", "u1"), ("気象警報・注意報", "/laughs.xml", "u2"),
        ("気象警報・注意報", "/gone.xml", "u3"), ("気象警報・注意報", "/busy.xml", "u4"),
        ("気象警報・注意報", "/slow.xml", "u5"), ("気象警報・注意報", "/nul.xml", "u6"),
    )
    site.pages["/huge.xml"] = b"<a>" + b"x" * 10_000 + b"</a>"
    site.pages["/laughs.xml"] = billion_laughs
    site.pages["/busy.xml"] = lambda: (503, b"busy")
    site.pages["/slow.xml"] = slow
    site.pages["/nul.xml"] = weather().replace("町A".encode(), "町\x00A".encode())
    report = jma_feed_poll()
    refused = dict(line.split(": ", 1) for line in (r.removeprefix(site.base) for r in report.refused))
    assert refused["/huge.xml"] == "ResponseTooLarge: the answer announces 10007 bytes, more than 4096"
    assert refused["/laughs.xml"].startswith("ReportError: refused: DTDForbidden")
    assert refused["/gone.xml"] == "FeedError: HTTP 404"
    assert refused["/nul.xml"].startswith("ReportError")
    failed = sorted(line.removeprefix(site.base).split(": ")[0] for line in report.failed)
    assert failed == ["/busy.xml", "/slow.xml"]  # 503 and a timeout: asked again next poll
    assert JmaWarning.objects.count() == 0
    assert set(JmaFeedDocument.objects.values_list("outcome", flat=True)) == {
        f"refused: {why}" for why in refused.values()}
    site.asked.clear()
    jma_feed_poll()
    assert sorted(site.asked) == ["/busy.xml", "/feed.xml", "/slow.xml"]


@pytest.mark.parametrize("body, error", [
    (b"<html>not a feed</html>", "not an Atom feed"),
    (b"<feed xmlns='http://www.w3.org/2005/Atom'><entry>", "not well-formed XML"),
    (b'<!DOCTYPE feed SYSTEM "file:///etc/passwd"><feed xmlns="http://www.w3.org/2005/Atom"/>', "refused"),
])
def test_a_feed_that_is_not_atom_is_an_error_and_changes_nothing(site, towns, body, error):
    site.pages["/feed.xml"] = body
    report = jma_feed_poll()
    assert error in report.error and report.applied == [] and site.asked == ["/feed.xml"]


def test_a_feed_with_too_many_new_documents_is_worked_through_over_several_polls(site, towns):
    count = MAX_DOCUMENTS_PER_POLL + 5
    site.pages["/feed.xml"] = feed(*[("気象警報・注意報", f"/d{n}.xml", "u") for n in range(count)])
    first = jma_feed_poll()
    assert len(first.refused) == MAX_DOCUMENTS_PER_POLL  # all 404 here: refused, remembered
    second = jma_feed_poll()
    assert (len(second.refused), second.already_seen) == (5, MAX_DOCUMENTS_PER_POLL)
