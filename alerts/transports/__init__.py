"""Ways an alert event leaves the platform, one module each: `live` (Channels groups), `email`, `webhook`.

`email` and `webhook` are per-channel deliveries from the outbox (`Delivery` rows, retried by the
dispatcher); `live` is a best-effort broadcast to connected browsers, which re-sync through the REST
API after a reconnect.
"""


class TransportError(Exception):
    """Sending failed. `permanent`: trying again will not help (the channel is misconfigured)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def sender_for(kind: str):
    from . import email, webhook

    return {"email": email.send, "webhook": webhook.send}[kind]
