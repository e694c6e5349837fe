"""Ways an alert event (or a dam release notice's transition, or a step of a town's order) leaves the platform, one module each:
`email`, `webhook`.

Both are per-channel deliveries from the delivery outbox (`Delivery` rows, retried by the
dispatcher). Browsers hear of alert events through the change log (`alert.changed`) and the one
live publisher in dashboard.live, sequenced like every other live message.
"""


class TransportError(Exception):
    """Sending failed. `permanent`: trying again will not help (the channel is misconfigured)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def notification_id(notification: dict) -> str:
    """What receivers de-duplicate by (X-Mizumori-Event): the alert event's id, `release-<id>` for
    a release notice's transition (releases.selectors.release_notification_documents), `order-<id>`
    for a step of an evacuation order (orders.documents.order_notification_documents), or
    `digest-<id>,<id>,…` for a digest of one station's updates (alerts.selectors.digest_document)."""
    if "release_event" in notification:
        return f"release-{notification['release_event']['id']}"
    if "order_event" in notification:
        return f"order-{notification['order_event']['id']}"
    if "digest" in notification:
        return "digest-" + ",".join(str(each["event"]["id"]) for each in notification["notifications"])
    return str(notification["event"]["id"])


def sender_for(kind: str):
    from . import email, webhook

    return {"email": email.send, "webhook": webhook.send}[kind]
