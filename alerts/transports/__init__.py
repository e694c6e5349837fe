"""Ways an alert event leaves the platform, one module each: `email`, `webhook`.

Both are per-channel deliveries from the delivery outbox (`Delivery` rows, retried by the
dispatcher). Browsers hear of alert events through the change log (`alert.changed`) and the one
live publisher in dashboard.live, sequenced like every other live message.
"""


class TransportError(Exception):
    """Sending failed. `permanent`: trying again will not help (the channel is misconfigured)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def sender_for(kind: str):
    from . import email, webhook

    return {"email": email.send, "webhook": webhook.send}[kind]
