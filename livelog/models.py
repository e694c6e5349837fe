"""The live layer's sequence and replay buffer, in the database rather than in Redis, so that neither
the numbers browsers hold nor what they missed is lost when Redis restarts (issue 10 item 5)."""

from django.db import models


class LiveStream(models.Model):
    """One row: names this database's run of sequence numbers, and how far old messages were trimmed.

    `name` changes only when the table is new (a new database), which is exactly when numbers a
    browser holds stop meaning anything."""

    name = models.CharField(max_length=32, unique=True)
    # Every message with a number up to this one has been deleted: a client behind it needs a snapshot.
    trimmed_through = models.BigIntegerField(default=0)

    def __str__(self):
        return f"live stream {self.name} (trimmed through {self.trimmed_through})"


class LiveMessage(models.Model):
    """A message as it was published to one audience group; its id is the message's `seq`.

    Written by the live publisher inside the change-log drain's transaction, together with the
    removal of the events it describes, so a message exists exactly when it was handed to the
    channel layer and its events are done."""

    group = models.CharField(max_length=100)
    # The message without "seq" (the id is the number; it is known only once the row is inserted).
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["group", "id"], name="livemessage_group_seq")]

    def __str__(self):
        return f"{self.group} #{self.pk}"

    def as_message(self) -> dict:
        return {**self.body, "seq": self.pk}
