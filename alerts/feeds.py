"""`/alerts/feed.atom`: the public's alerts (public stations, level 3 and above) as Atom, each entry
linking its CAP 1.2 document. It is the anonymous view whoever asks: a feed gets copied around."""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from .models import Alert
from .selectors import alert_gauge_words, public_feed_alerts

STATE_WORDS = {
    Alert.State.OPEN: ("発表中", "in force"),
    Alert.State.ACKNOWLEDGED: ("発表中", "in force"),
    Alert.State.RESOLVED: ("解除", "ended"),
}


CAP_MEDIA_TYPE = "application/cap+xml"


class _CapLinks:
    """Stands in for the XML writer while an entry is written: its alternate link is the alert's CAP
    document, and says so with `type` (RFC 4287 §4.2.7.3), so readers know what they will fetch."""

    def __init__(self, handler):
        self._handler = handler

    def addQuickElement(self, name, contents=None, attrs=None):  # noqa: N802 - the writer's method name
        if name == "link" and (attrs or {}).get("rel") == "alternate":
            attrs = {**attrs, "type": CAP_MEDIA_TYPE}
        self._handler.addQuickElement(name, contents, attrs)

    def __getattr__(self, name):
        return getattr(self._handler, name)


class CapLinkedAtomFeed(Atom1Feed):
    def add_item_elements(self, handler, item):
        super().add_item_elements(_CapLinks(handler), item)


class PublicAlertFeed(Feed):
    feed_type = CapLinkedAtomFeed
    title = "Mizumori 公開アラート / public alerts"
    subtitle = "警戒レベル3以上(公開観測所)/ Alert level 3 and above at public gauges"
    link = "/"
    # RFC 4287 §4.1.1: a feed names its author. The platform computes these alerts from the towns'
    # gauges; each entry names the town whose gauge it is.
    author_name = "Mizumori"

    def item_author_name(self, alert: Alert) -> str:
        return alert.station.municipality.name_ja

    def feed_url(self):
        return settings.SITE_URL.rstrip("/") + reverse("alerts-feed")

    def items(self):
        return public_feed_alerts()

    def item_title(self, alert: Alert) -> str:
        words = alert_gauge_words(alert)
        ja, en = STATE_WORDS[alert.state]
        return f"【{words.name_ja}】{alert.station.name_ja} {ja} / {words.name_en}: {alert.station.name_en} ({en})"

    def item_description(self, alert: Alert) -> str:
        words = alert_gauge_words(alert)
        reached = f"{words.reached_ja} / {words.reached_en}" if words.reached_ja else ""
        return f"{alert.station.name_ja} ({alert.station.municipality.name_ja}): {alert.last_value} — {reached}"

    def item_link(self, alert: Alert) -> str:
        return settings.SITE_URL.rstrip("/") + reverse("api-alert-cap", args=[alert.pk])

    def item_guid(self, alert: Alert) -> str:
        return settings.SITE_URL.rstrip("/") + reverse("api-alert-detail", args=[alert.pk])

    item_guid_is_permalink = False

    def item_pubdate(self, alert: Alert):
        return alert.opened_at

    def item_updateddate(self, alert: Alert):
        return alert.updated_at

    def item_categories(self, alert: Alert):
        return [f"level-{alert.level}", alert.state, alert.station.municipality.slug]
