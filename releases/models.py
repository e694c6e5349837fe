"""Dam release notices (放流通知): a dam's operator announces that it releases (or will release) water,
so that people keep away from the river downstream. Public information from the moment it is posted."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# What the public is told, whatever the operator writes: the plain advice of every release notice.
ADVICE_JA = "川に近づかないでください。"
ADVICE_EN = "Keep away from the river."


class DamReleaseQuerySet(models.QuerySet):
    def in_force(self, now: datetime | None = None):
        now = now or timezone.now()
        return self.filter(ended_at__isnull=True, started_at__lte=now).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))


class DamRelease(models.Model):
    municipality = models.ForeignKey(
        "tenancy.Municipality", on_delete=models.PROTECT, related_name="dam_releases", help_text="The dam's town."
    )
    dam = models.ForeignKey("sensors.Station", on_delete=models.PROTECT, related_name="releases",
                            help_text="The dam, a reservoir station of the owning town.")
    river = models.ForeignKey("geo.River", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              help_text="The river downstream, drawn on the map.")
    reach = models.CharField("affected reach", max_length=200, help_text="e.g. 水森川 水森ダム下流〜河口")
    districts = models.JSONField(default=list, blank=True, help_text="Affected districts (names).")
    downstream = models.ManyToManyField("tenancy.Municipality", related_name="+", blank=True,
                                        help_text="Towns whose HQs are told.")
    started_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Planned end; the notice ends by itself then.")
    planned_discharge = models.FloatField(help_text="m³/s")
    current_discharge = models.FloatField(null=True, blank=True, help_text="m³/s")
    message = models.TextField(blank=True, max_length=1000)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    ended_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    objects = DamReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self):
        return f"release {self.pk} at {self.dam.code}"

    def in_force(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.ended_at is None and self.started_at <= now and (self.ends_at is None or self.ends_at > now)


class ReleaseTransition(models.Model):
    """One change of a notice that the downstream towns' HQs are told of (e-mail, webhooks): posted,
    discharge updated, ended. Written with the change itself; alerts' delivery outbox sends it once
    per channel."""

    class Kind(models.TextChoices):
        POSTED = "posted", "posted"
        UPDATED = "updated", "discharge updated"
        ENDED = "ended", "ended"

    release = models.ForeignKey(DamRelease, on_delete=models.CASCADE, related_name="transitions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    at = models.DateTimeField()
    current_discharge = models.FloatField(null=True, blank=True, help_text="m³/s at the time of the change")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self):
        return f"release {self.release_id} {self.kind}"
