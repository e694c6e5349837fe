"""NGSI-v2 state: subscriptions (Orion-style, owned by a town) and the mapping of incoming Orion
notifications onto our stations."""

from __future__ import annotations

import math
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from outbound.destinations import destination_problem
from sensors.models import Station
from tenancy.models import IngestToken, Municipality


def new_subscription_id() -> str:
    # Orion's ids are 24 hex digits (a MongoDB ObjectId); clients sometimes validate that shape.
    return secrets.token_hex(12)


class Subscription(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        INACTIVE = "inactive", "inactive"
        # Set after `max_fails` consecutive failed deliveries; PATCH status=active re-arms it.
        FAILED = "failed", "failed"

    class AttrsFormat(models.TextChoices):
        NORMALIZED = "normalized", "normalized"
        KEY_VALUES = "keyValues", "keyValues"

    public_id = models.CharField(max_length=24, unique=True, default=new_subscription_id, editable=False)
    municipality = models.ForeignKey(
        Municipality,
        on_delete=models.CASCADE,
        related_name="ngsi_subscriptions",
        help_text="The town that owns (and manages) this subscription.",
    )
    service = models.ForeignKey(
        Municipality,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The Fiware-Service it was created in: only that town's stations. Empty: every station "
        "the owner may see.",
    )
    # Exactly one of these is the identity the subscription reads as (see selectors.subscription_owner_viewer).
    owner_token = models.ForeignKey(IngestToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    description = models.CharField(max_length=1024, blank=True)

    # subject
    entities = models.JSONField(help_text='[{"id" | "idPattern": ..., "type" | "typePattern": ...}]')
    condition_attrs = models.JSONField(default=list, blank=True)
    condition_expression = models.JSONField(
        default=dict, blank=True, help_text='{"q": ..., "georel": ..., "geometry": ..., "coords": ...}'
    )
    alteration_types = models.JSONField(default=list, blank=True)

    # notification
    url = models.CharField(max_length=2048)
    http_custom = models.BooleanField(default=False, help_text="Given as httpCustom (with headers / qs).")
    custom_headers = models.JSONField(default=dict, blank=True)
    custom_qs = models.JSONField(default=dict, blank=True)
    notify_attrs = models.JSONField(default=list, blank=True)
    except_attrs = models.JSONField(default=list, blank=True)
    attrs_format = models.CharField(max_length=12, choices=AttrsFormat.choices, default=AttrsFormat.NORMALIZED)
    only_changed_attrs = models.BooleanField(default=False)
    covered = models.BooleanField(default=False)
    max_fails_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Consecutive failed deliveries before 'failed'; empty: the platform default."
    )

    expires = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    throttling = models.PositiveIntegerField(default=0, help_text="Minimum seconds between two notifications.")

    # delivery record (Orion's names in the API)
    times_sent = models.PositiveBigIntegerField(default=0)
    last_notification = models.DateTimeField(null=True, blank=True)
    last_success = models.DateTimeField(null=True, blank=True)
    last_success_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_failure = models.DateTimeField(null=True, blank=True)
    last_failure_reason = models.CharField(max_length=500, blank=True)
    fails_counter = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["status", "expires"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(owner_token__isnull=True) | Q(owner_user__isnull=True),
                name="ngsi_subscription_one_owner",
            ),
        ]

    def __str__(self):
        return f"{self.public_id} {self.municipality.slug} -> {self.url}"

    def clean(self):
        # Deliveries check again before every send; this only spares an operator a silent failure.
        problem = destination_problem(self.url, resolve_names=False)
        if problem:
            raise ValidationError({"url": problem})

    def is_expired(self, now=None) -> bool:
        return self.expires is not None and self.expires <= (now or timezone.now())

    def shown_status(self, now=None) -> str:
        """Orion shows 'expired' whatever the stored status once `expires` has passed."""
        return "expired" if self.is_expired(now) else self.status


class NotifyMapping(models.Model):
    """Which attribute of which incoming NGSI entity is a reading of which of our stations.

    Used by `POST /ngsi/notify` (an Orion subscription of another platform pointing at us). A
    gateway token may feed only stations its own town owns, so a mapping onto another town's
    station is never applied for it.
    """

    entity_id = models.CharField(max_length=256, blank=True, help_text="Exact entity id, or leave empty and…")
    entity_id_pattern = models.CharField(
        max_length=256, blank=True, help_text="…a regular expression the whole entity id must match."
    )
    entity_type = models.CharField(max_length=256, blank=True, help_text="Empty: any type.")
    attribute = models.CharField(max_length=256, help_text="The attribute holding the reading, e.g. 'waterLevel'.")
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="ngsi_notify_mappings")
    time_attribute = models.CharField(
        max_length=256,
        blank=True,
        help_text="Attribute with the observation time. Empty: the attribute's TimeInstant metadata, "
        "then the entity's dateObserved or TimeInstant, then the time of receipt.",
    )
    scale = models.FloatField(default=1.0, help_text="stored value = incoming value × scale + offset")
    offset = models.FloatField(default=0.0)
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("notify mapping")
        verbose_name_plural = _("notify mappings")
        ordering = ["station", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(entity_id="") & ~Q(entity_id_pattern="")) | (~Q(entity_id="") & Q(entity_id_pattern="")),
                name="ngsi_notifymapping_id_or_pattern",
            ),
            models.UniqueConstraint(
                fields=["entity_id", "entity_id_pattern", "entity_type", "attribute", "station"],
                name="ngsi_notifymapping_unique",
            ),
        ]

    def __str__(self):
        source = self.entity_id or f"/{self.entity_id_pattern}/"
        return f"{source}.{self.attribute} -> {self.station.code}"

    def clean(self):
        from .filters import compile_pattern
        from .errors import BadRequest

        errors = {}
        if bool(self.entity_id) == bool(self.entity_id_pattern):
            errors["entity_id"] = "Give either an entity id or an id pattern, not both."
        if self.entity_id_pattern:
            try:
                compile_pattern(self.entity_id_pattern, "the id pattern")
            except BadRequest as exc:
                errors["entity_id_pattern"] = exc.description
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if value is None or not math.isfinite(value):
                errors[name] = "Must be a finite number."
        if self.scale == 0:
            errors["scale"] = "A scale of 0 would store every reading as the offset."
        if errors:
            raise ValidationError(errors)

    def matches(self, entity_id: str, entity_type: str, pattern) -> bool:
        if self.entity_type and self.entity_type != entity_type:
            return False
        if self.entity_id:
            return self.entity_id == entity_id
        return pattern is not None and pattern.fullmatch(entity_id) is not None
