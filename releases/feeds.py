"""`/releases/feed.atom`: dam release notices in force or ended in the last days, each entry linking
its CAP message (as the alert feed does)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse

from alerts.feeds import CapLinkedAtomFeed

from .models import ADVICE_EN, ADVICE_JA, DamRelease
from .selectors import releases_recent


class ReleaseFeed(Feed):
    feed_type = CapLinkedAtomFeed
    title = "Mizumori 放流通知 / dam release notices"
    subtitle = "ダムの放流(公開情報)/ Dam releases"
    link = "/"
    author_name = "Mizumori"

    def feed_url(self):
        return settings.SITE_URL.rstrip("/") + reverse("releases-feed")

    def items(self):
        return releases_recent()

    def item_title(self, release: DamRelease) -> str:
        state_ja, state_en = ("放流中", "in progress") if release.in_force() else ("終了", "ended")
        return f"【放流{state_ja}】{release.dam.name_ja} {release.reach} / Dam release {state_en}: {release.dam.name_en}"

    def item_description(self, release: DamRelease) -> str:
        discharge = release.current_discharge if release.current_discharge is not None else release.planned_discharge
        return f"{release.reach}: {discharge:g} m³/s — {ADVICE_JA} / {ADVICE_EN}"

    def item_link(self, release: DamRelease) -> str:
        return settings.SITE_URL.rstrip("/") + reverse("api-release-cap", args=[release.pk])

    def item_guid(self, release: DamRelease) -> str:
        return settings.SITE_URL.rstrip("/") + reverse("api-release-detail", args=[release.pk])

    item_guid_is_permalink = False

    def item_pubdate(self, release: DamRelease):
        return release.created_at

    def item_updateddate(self, release: DamRelease):
        return release.updated_at

    def item_author_name(self, release: DamRelease) -> str:
        return release.municipality.name_ja
