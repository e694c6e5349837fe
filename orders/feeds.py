"""`/orders/feed.atom`: evacuation orders as Atom, newest change first (in force and recently lifted),
each entry linking its CAP 1.2 document. Orders are public: the same feed for whoever asks."""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from tenancy.selectors import ANONYMOUS

from .models import Order
from .selectors import order_feed_list, order_words

FEED_ENTRIES = 50


class OrderFeed(Feed):
    feed_type = Atom1Feed
    title = "Mizumori 避難情報 / evacuation orders"
    subtitle = "市町村が発令した避難情報(発令中と最近の解除)/ Orders issued by the towns (in force and recently lifted)"
    link = "/"

    def feed_url(self):
        return settings.SITE_URL.rstrip("/") + reverse("orders-feed")

    def items(self):
        return order_feed_list(viewer=ANONYMOUS, limit=FEED_ENTRIES)

    def item_title(self, order: Order) -> str:
        words = order_words(order.level, order.level_scheme)
        ja, en = ("解除", "lifted") if order.lifted_at else ("発令中", "in force")
        return (
            f"【{words.title_ja}】{order.municipality.name_ja} {ja} / "
            f"{words.title_en}: {order.municipality.name_en} ({en})"
        )

    def item_description(self, order: Order) -> str:
        words = order_words(order.level, order.level_scheme)
        districts = list(order.districts.all())
        return (
            "、".join(d.name_ja for d in districts) + f" — {words.action_ja} / "
            + ", ".join(d.name_en for d in districts) + f" — {words.action_en}"
        )

    def item_link(self, order: Order) -> str:
        return settings.SITE_URL.rstrip("/") + reverse("api-order-cap", args=[order.pk])

    def item_guid(self, order: Order) -> str:
        return f"{settings.SITE_URL.rstrip('/')}/api/v1/orders/{order.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, order: Order):
        return order.issued_at

    def item_updateddate(self, order: Order):
        return order.updated_at

    def item_categories(self, order: Order):
        return [f"level-{order.level}", "lifted" if order.lifted_at else "in-force", order.municipality.slug]
