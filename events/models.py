from django.db import models
from django.utils.translation import gettext_lazy as _


class OutboxEvent(models.Model):
    """One domain event waiting for one handler (rows are per handler, so a handler that fails is
    retried alone and the others are not run twice).

    Written by `events.emit` inside the writer's transaction, so an event exists exactly when the
    change it describes was committed; deleted by the drain in the same transaction as the
    handler's own writes, so a handler's effect is applied once even when a worker dies mid-batch
    (its transaction rolls back and the rows become claimable again).
    """

    kind = models.CharField(max_length=40, help_text="What happened, e.g. station.changed.")
    handler = models.CharField(max_length=60, help_text="Registered handler that must process it.")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    # Retries back off: a failing handler's rows wait until this time.
    available_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Set after the last allowed attempt: kept for the operator, never claimed again.
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            models.Index(
                fields=["handler", "available_at"], name="outbox_claimable",
                condition=models.Q(failed_at__isnull=True),
            ),
        ]

    def __str__(self):
        return f"{self.kind} → {self.handler} #{self.pk}"
