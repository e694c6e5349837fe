"""Polling the weather agency's Atom feed (settings.JMA_FEED_URL): fetch the 気象警報・注意報 and
指定河川洪水予報 documents it lists and apply them as `import_jma_xml` does.

The agency publishes its 防災情報XML as Atom feeds whose entries link to the documents. Every
request — the feed and each document — goes through the outbound policy (`outbound/`,
OUTBOUND_ALLOWED_HOSTS: the operator lists the agency's host or a local mirror), with a timeout and
a size limit, and redirects are not followed. A document is fetched once per `updated` of its entry
(`JmaFeedDocument`); one that failed for a passing reason is tried again at the next poll.
"""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import ParseError, fromstring
from django.conf import settings
from django.utils import timezone

from outbound import http as outbound_http
from outbound.destinations import RefusedDestination

from .models import JmaFeedDocument
from .parser import MAX_BYTES, ReportError, parse_report
from .services import jma_report_apply

logger = logging.getLogger(__name__)

ATOM_NS = "{http://www.w3.org/2005/Atom}"
FEED_MAX_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 5000
# Documents fetched per poll at most: a feed that suddenly lists thousands of new documents (a
# replay, a misconfigured mirror) is worked through over several polls, not in one long one.
MAX_DOCUMENTS_PER_POLL = 100
# The entry titles of the reports `jma.parser` reads (気象特別警報・警報・注意報, 気象警報・注意報（Ｈ２７）,
# 指定河川洪水予報); the agency's feeds list many other kinds (forecasts, earthquakes...) never fetched.
WANTED_TITLES = ("警報・注意報", "指定河川洪水予報")
# How long a dealt-with document is remembered; the agency's feeds cover a few days at most.
REMEMBER_FOR = timedelta(days=7)
ACCEPT = "application/atom+xml, application/xml;q=0.9, */*;q=0.1"


class FeedError(ValueError):
    """A feed or document that will not become readable by asking again (a 404, not Atom...)."""


class TransientError(Exception):
    """An answer worth asking again for later (5xx, 429)."""


@dataclass(frozen=True)
class FeedEntry:
    url: str
    updated: str
    title: str


@dataclass
class PollReport:
    entries: int = 0  # entries of wanted kinds in the feed
    applied: list[str] = field(default_factory=list)  # "<title>: <towns>"
    refused: list[str] = field(default_factory=list)  # "<url>: <why>" (remembered: not fetched again)
    failed: list[str] = field(default_factory=list)  # "<url>: <why>" (tried again at the next poll)
    already_seen: int = 0
    error: str | None = None  # the feed itself failed


def _text(element, name: str) -> str:
    child = element.find(f"{ATOM_NS}{name}")
    return (child.text or "").strip() if child is not None else ""


def parse_feed(data: bytes, base_url: str) -> list[FeedEntry]:
    """The feed's entries whose title is of a wanted kind, with their document URL (the `alternate`
    link, or the only link; relative URLs resolved against the feed's)."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise FeedError(f"refused: {type(exc).__name__} (DTDs and entities are not allowed)") from None
    except (ParseError, ValueError) as exc:
        raise FeedError(f"not well-formed XML: {str(exc)[:120]}") from None
    if root.tag != f"{ATOM_NS}feed":
        raise FeedError("not an Atom feed (root element / namespace)")
    entries = root.findall(f"{ATOM_NS}entry")
    if len(entries) > MAX_ENTRIES:
        raise FeedError(f"more than {MAX_ENTRIES} entries")
    wanted = []
    for entry in entries:
        title = _text(entry, "title")
        if not any(part in title for part in WANTED_TITLES):
            continue
        links = entry.findall(f"{ATOM_NS}link")
        link = next((link for link in links if link.get("rel", "alternate") == "alternate"), None)
        href = (link.get("href") or "").strip() if link is not None else ""
        if not href:
            continue
        wanted.append(FeedEntry(url=urljoin(base_url, href), updated=_text(entry, "updated")[:40], title=title[:120]))
    return wanted


def _fetch(url: str, *, max_bytes: int) -> bytes:
    """The body of a 200 answer; RefusedDestination / ResponseTooLarge / FeedError (permanent),
    OSError / http.client.HTTPException / TransientError (try again later)."""
    status, body = outbound_http.get(
        url, timeout=settings.JMA_FEED_TIMEOUT_SECONDS, max_bytes=max_bytes, headers={"Accept": ACCEPT}
    )
    if status >= 500 or status == 429:
        raise TransientError(f"HTTP {status}")
    if status != 200:
        raise FeedError(f"HTTP {status}")
    return body


PERMANENT = (RefusedDestination, outbound_http.ResponseTooLarge, FeedError, ReportError)
TRANSIENT = (OSError, http.client.HTTPException, TransientError)


def jma_feed_poll(url: str | None = None) -> PollReport:
    """Read the feed at `url` (default settings.JMA_FEED_URL), fetch the documents not dealt with
    yet and apply them oldest first. Never raises for what a server sends: the report says it."""
    report = PollReport()
    url = url or settings.JMA_FEED_URL
    if not url:
        report.error = "JMA_FEED_URL is not set"
        return report
    try:
        entries = parse_feed(_fetch(url, max_bytes=FEED_MAX_BYTES), url)
    except (*PERMANENT, *TRANSIENT) as exc:
        report.error = f"{url}: {type(exc).__name__}: {exc}"[:300]
        logger.warning("JMA feed not read: %s", report.error)
        return report
    report.entries = len(entries)
    seen = dict(
        JmaFeedDocument.objects.filter(url__in=[entry.url for entry in entries]).values_list("url", "updated")
    )
    fresh = [entry for entry in entries if seen.get(entry.url) != entry.updated]
    report.already_seen = len(entries) - len(fresh)
    parsed = []
    for entry in dict((entry.url, entry) for entry in fresh).values():  # a URL listed twice: once
        if len(parsed) + len(report.refused) + len(report.failed) >= MAX_DOCUMENTS_PER_POLL:
            break
        try:
            parsed.append((entry, parse_report(_fetch(entry.url, max_bytes=MAX_BYTES))))
        except PERMANENT as exc:
            why = f"{type(exc).__name__}: {exc}"[:250]
            report.refused.append(f"{entry.url}: {why}")
            _remember(entry, f"refused: {why}")
        except TRANSIENT as exc:
            report.failed.append(f"{entry.url}: {type(exc).__name__}: {exc}"[:300])
    for entry, document in sorted(parsed, key=lambda pair: pair[1].reported_at):
        result = jma_report_apply(document)
        towns = ", ".join(result.towns) or "no town here"
        report.applied.append(f"{document.title}: {towns}")
        _remember(entry, f"applied: {towns}")
    JmaFeedDocument.objects.filter(fetched_at__lt=timezone.now() - REMEMBER_FOR).delete()
    return report


def _remember(entry: FeedEntry, outcome: str) -> None:
    JmaFeedDocument.objects.update_or_create(
        url=entry.url,
        defaults={"updated": entry.updated, "title": entry.title, "outcome": outcome[:300], "fetched_at": timezone.now()},
    )
