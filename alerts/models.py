"""Alert state and its invariants: level schemes, rules, alerts with their audit trail, notification outbox."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_noop, gettext_lazy as _

from outbound.destinations import destination_problem
from sensors.models import Station, StationKind
from tenancy.models import Municipality

LEVEL_VALIDATORS = [MinValueValidator(1), MaxValueValidator(5)]


class LevelScheme(models.Model):
    """One version of the national 5-level evacuation scale (警戒レベル): words change with policy, so they are data."""

    version = models.CharField(max_length=40, unique=True, help_text="e.g. '2021-05' (避難勧告 abolished).")
    name = models.CharField(max_length=200)
    valid_from = models.DateField()
    is_active = models.BooleanField(
        default=False, help_text="The scheme new alerts use. Exactly one scheme should be active."
    )

    class Meta:
        verbose_name = _("level scheme")
        verbose_name_plural = _("level schemes")
        ordering = ["-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="levelscheme_one_active"
            ),
        ]

    def __str__(self):
        return f"{self.version}{' (active)' if self.is_active else ''}"


class LevelDefinition(models.Model):
    """One level of a scheme, in two vocabularies (read through `alerts.vocabulary`).

    `name_*` / `action_*` are the *order* words (高齢者等避難, 避難指示, 緊急安全確保): what a town says
    when it issues an evacuation order at this level. Only orders use them. `gauge_*` are the words
    of *equivalent information* (警戒レベル相当情報): what a gauge's reading corresponds to
    (「警戒レベル4相当」), what was reached, and plain-language advice (やさしい日本語). Every gauge
    state and gauge alert uses these, never the order words.
    """

    scheme = models.ForeignKey(LevelScheme, on_delete=models.CASCADE, related_name="levels")
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    name_ja = models.CharField(max_length=100, help_text="Order name, e.g. 避難指示 (orders only).")
    name_en = models.CharField(max_length=100, help_text="Order name in English (orders only).")
    action_ja = models.CharField(max_length=300, help_text="What the order asks (orders only).")
    action_en = models.CharField(max_length=300, help_text="What the order asks, in English (orders only).")
    gauge_name_ja = models.CharField(max_length=100, blank=True, help_text="Gauge state, e.g. 警戒レベル4相当.")
    gauge_name_en = models.CharField(max_length=100, blank=True, help_text="e.g. Level 4 equivalent.")
    gauge_reached_ja = models.CharField(max_length=200, blank=True, help_text="What the reading reached.")
    gauge_reached_en = models.CharField(max_length=200, blank=True)
    gauge_advice_ja = models.CharField(max_length=300, blank=True, help_text="Plain-language advice (やさしい日本語).")
    gauge_advice_en = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["scheme", "level"]
        constraints = [
            models.UniqueConstraint(fields=["scheme", "level"], name="leveldefinition_unique_level"),
        ]

    def __str__(self):
        return f"L{self.level} {self.name_ja} / {self.name_en}"


class AlertRule(models.Model):
    """When a station's readings open an alert, at which level, and when the alert ends.

    Threshold and rain rules without their own `value` use the station's threshold ladder (every
    `sensors.Threshold` with a level and the same `window`), read at evaluation time, so editing a
    threshold needs no rule edit. A rule with a `value` is a single step at `level`.
    """

    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "threshold crossing (the reading)"
        RATE_OF_RISE = "rate_of_rise", "rate of rise (m/h over a window)"
        RAIN_ACCUMULATION = "rain_accumulation", "rain accumulation (window, or the storm event when empty)"
        STALE = "stale", "stale sensor (no data)"

    class Direction(models.TextChoices):
        RISING = "rising", "rising (at or above)"
        FALLING = "falling", "falling (at or below)"

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=100)
    is_enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False, editable=False, help_text="Created from the station's thresholds by the rule sync."
    )
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.RISING)
    value = models.FloatField(
        null=True,
        blank=True,
        help_text="Trigger value (station unit; mm for rain; m/h for rate of rise). Empty on threshold and "
        "rain rules: the station's thresholds with a level are the steps.",
    )
    level = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=LEVEL_VALIDATORS, help_text="Alert level when `value` is met."
    )
    window = models.DurationField(
        null=True,
        blank=True,
        help_text="Rain: accumulation window (empty = since the last 6 h dry spell). Rate of rise: "
        "the window the rise is measured over.",
    )
    min_duration = models.DurationField(
        default=timedelta(0), help_text="The condition must hold this long before the level changes."
    )
    min_readings = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="…and over at least this many readings."
    )
    hysteresis = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0)],
        help_text="A level is left only when the value is this far back below its threshold.",
    )
    clear_hold = models.DurationField(
        default=timedelta(0),
        help_text="A level is left only after the value has stayed below threshold − margin this long.",
    )
    immediate_level = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=LEVEL_VALIDATORS,
        help_text="Levels from this one up are raised by the first reading that meets them, without "
        "waiting for confirmation (empty: every level waits).",
    )
    stale_factor = models.FloatField(
        default=3.0,
        validators=[MinValueValidator(1)],
        help_text="Stale rules: silent for longer than expected interval × this factor.",
    )
    # Where evaluation got to: readings at or before this time have been stepped through already.
    evaluated_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        ordering = ["station", "kind", "window", "pk"]
        constraints = [
            # One default rule per measure, so the sync is idempotent. Two constraints because NULLs are
            # distinct in a unique index (and SQLite cannot say otherwise).
            models.UniqueConstraint(
                fields=["station", "kind", "window"],
                condition=Q(is_default=True, window__isnull=False),
                name="alertrule_one_default_per_window",
            ),
            models.UniqueConstraint(
                fields=["station", "kind"],
                condition=Q(is_default=True, window__isnull=True),
                name="alertrule_one_default_without_window",
            ),
        ]

    def __str__(self):
        return f"{self.station.code}: {self.name}"

    def clean(self):
        errors = {}
        if (self.value is None) != (self.level is None) and self.kind != self.Kind.STALE:
            errors["level"] = "Give both a value and a level, or neither (then the station's thresholds apply)."
        if self.kind == self.Kind.RATE_OF_RISE:
            if self.value is None:
                errors["value"] = "A rate-of-rise rule needs a rate in m/h."
            if not self.window:
                errors["window"] = "A rate-of-rise rule needs a window (10, 30 or 60 minutes)."
        if self.kind == self.Kind.STALE and self.level is None:
            errors["level"] = "A stale-sensor rule needs a level."
        if self.kind == self.Kind.RAIN_ACCUMULATION and self.station_id and self.station.kind != StationKind.RAIN:
            errors["kind"] = "Rain accumulation applies to rain gauges only."
        if self.window is not None and self.window <= timedelta(0):
            errors["window"] = "Must be positive."
        if errors:
            raise ValidationError(errors)


class Alert(models.Model):
    """One episode of a rule being met at a station, from opening to resolution; its level moves."""

    class State(models.TextChoices):
        OPEN = "open", "open"
        ACKNOWLEDGED = "acknowledged", "acknowledged"
        RESOLVED = "resolved", "resolved"

    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="alerts")
    rule = models.ForeignKey(AlertRule, on_delete=models.PROTECT, related_name="alerts")
    level_scheme = models.ForeignKey(
        LevelScheme, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts",
        help_text="The scheme whose words this alert was issued with.",
    )
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    peak_level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    state = models.CharField(max_length=15, choices=State.choices, default=State.OPEN)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The rule's measure (reading, rain total, m/h or minutes of silence) at the latest evaluation.
    last_value = models.FloatField(null=True, blank=True)
    last_observed_at = models.DateTimeField(null=True, blank=True)
    rate_of_rise = models.FloatField(null=True, blank=True, help_text="m/h over the last 30 minutes.")
    next_level = models.PositiveSmallIntegerField(null=True, blank=True)
    time_to_next_level = models.DurationField(null=True, blank=True)
    time_to_next_level_uncertainty = models.DurationField(null=True, blank=True)
    # QC flags, never silences: an implausible jump high enough is raised at once for HQ, marked
    # unconfirmed until the next reading confirms it (fields cleared) or withdraws it (the alert goes
    # back to `unconfirmed_from_level`, or resolves from 0). The public never sees it meanwhile.
    unconfirmed_at = models.DateTimeField(
        null=True, blank=True, help_text="Time of the suspect reading that raised the level, until confirmed."
    )
    unconfirmed_from_level = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The level before the unconfirmed raise (0: no alert was open)."
    )

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["station", "rule"], condition=~Q(state="resolved"), name="alert_one_unresolved_per_rule"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "level"]),
            models.Index(fields=["station", "state"]),
            models.Index(fields=["updated_at"]),
        ]

    def __str__(self):
        return f"#{self.pk} {self.station_id} L{self.level} {self.state}"

    @property
    def is_resolved(self) -> bool:
        return self.state == self.State.RESOLVED

    def apply_metrics(self, *, value: float | None, observed_at, metrics: dict) -> None:
        """The measure and forecast of an evaluation (or of a past event's snapshot, for as-of reads)."""
        self.last_value = value
        self.last_observed_at = observed_at
        self.rate_of_rise = metrics.get("rate_of_rise_per_hour")
        forecast = metrics.get("forecast")
        self.next_level = forecast["level"] if forecast else None
        self.time_to_next_level = timedelta(seconds=forecast["eta_seconds"]) if forecast else None
        self.time_to_next_level_uncertainty = timedelta(seconds=forecast["uncertainty_seconds"]) if forecast else None


class AlertEvent(models.Model):
    """Every transition of an alert, system or human: the audit trail, and the unit of notification."""

    class Kind(models.TextChoices):
        OPENED = "opened", "opened"
        ESCALATED = "escalated", "escalated"
        DEESCALATED = "deescalated", "de-escalated"
        ACKNOWLEDGED = "acknowledged", "acknowledged"
        RESOLVED = "resolved", "resolved"
        NOTE = "note", "note"

    # Kinds that change what the public and the towns should do; these are notified and become CAP messages.
    NOTIFIED_KINDS = (Kind.OPENED, Kind.ESCALATED, Kind.DEESCALATED, Kind.RESOLVED)

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=15, choices=Kind.choices)
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    value = models.FloatField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True, help_text="Time of the reading that caused it.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="alert_events",
        help_text="Empty: the system.",
    )
    at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    # Snapshot of the derived metrics at the time, so a CAP message version always reads the same.
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "actor"], condition=Q(kind="acknowledged"), name="alertevent_one_ack_per_user"
            ),
        ]
        indexes = [models.Index(fields=["alert", "at"])]

    def __str__(self):
        return f"alert {self.alert_id} {self.kind} L{self.level} at {self.at:%Y-%m-%d %H:%M}"


# Longer than a day would hold a de-escalation or an end back for too long to be worth sending.
MAX_DIGEST_WINDOW = timedelta(hours=24)


class NotificationChannel(models.Model):
    """Where a town wants its alerts: every alert of a station the town may see goes to its enabled channels."""

    class Kind(models.TextChoices):
        # Marked, not translated: the labels are in the migrations; pages translate them when shown.
        EMAIL = "email", gettext_noop("e-mail")
        WEBHOOK = "webhook", gettext_noop("webhook (JSON POST, HMAC-signed)")

    class Scope(models.TextChoices):
        VISIBLE = "visible", gettext_noop("every station the town may see")
        OWN = "own", gettext_noop("the town's own stations only")
        SUBSCRIBED = "subscribed", gettext_noop("own stations and the neighbours' stations subscribed to")

    municipality = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.VISIBLE)
    # A downstream town subscribes to a neighbour's upstream gauge shared with it. Visibility still
    # decides: once the share is withdrawn, the subscription has no effect.
    stations = models.ManyToManyField(
        Station, blank=True, related_name="subscribed_channels",
        help_text="With scope 'subscribed': other towns' stations whose alerts this channel gets.",
    )
    label = models.CharField(max_length=100, blank=True)
    target = models.CharField(max_length=500, help_text="E-mail address or https:// URL.")
    secret = models.CharField(max_length=200, blank=True, help_text="Webhook HMAC-SHA256 key.")
    enabled = models.BooleanField(default=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="Set when a delivery failed for good; cleared by the next success."
    )
    last_error = models.CharField(max_length=500, blank=True)
    digest_window = models.DurationField(
        null=True, blank=True,
        help_text="Rate limit per station: after a message, further same-or-lower-level updates of the "
        "station within this time go as one digest at its end (a new alert or a higher level goes at once). "
        "Empty: ALERT_DIGEST_WINDOW_SECONDS; 0: every update at once.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")
        ordering = ["municipality", "kind", "pk"]

    def __str__(self):
        return f"{self.municipality.slug} {self.kind} {self.label or self.target}"

    @property
    def digest_minutes(self) -> int | None:
        return None if self.digest_window is None else int(self.digest_window.total_seconds() // 60)

    def clean(self):
        if self.kind == self.Kind.WEBHOOK:
            if not self.target.startswith(("https://", "http://")):
                raise ValidationError({"target": "A webhook target is an http(s):// URL."})
            if not self.secret:
                raise ValidationError({"secret": "A webhook needs a secret to sign its body."})
            # Checked again, after resolving, before every delivery; this tells the admin now.
            problem = destination_problem(self.target, resolve_names=True)
            if problem:
                raise ValidationError({"target": f"This webhook target is refused: {problem}."})
        if self.digest_window is not None and not timedelta(0) <= self.digest_window <= MAX_DIGEST_WINDOW:
            raise ValidationError({"digest_window": "Between 0 and 24 hours / 0〜24時間で指定してください."})
        if self.kind == self.Kind.EMAIL and "@" not in self.target:
            raise ValidationError({"target": "An e-mail channel's target is an address."})


class Delivery(models.Model):
    """The outbox: one notification for one channel, delivered at most once when it succeeds. A
    notification is an alert event, a dam release notice's transition (releases app) or a step of a
    town's evacuation order (orders app): exactly one of them."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"

    event = models.ForeignKey(AlertEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    release_transition = models.ForeignKey(
        "releases.ReleaseTransition", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    order_event = models.ForeignKey(
        "orders.OrderEvent", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=500, blank=True)
    claimed_by = models.CharField(max_length=200, null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    # Batched by the channel's rate limit: sent with the station's other updates in one digest at
    # this time (also its first next_attempt_at). Empty: a message of its own.
    digest_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="delivery_once_per_event_channel"),
            models.UniqueConstraint(
                fields=["release_transition", "channel"], name="delivery_once_per_release_transition_channel"
            ),
            models.UniqueConstraint(fields=["order_event", "channel"], name="delivery_once_per_order_event_channel"),
            models.CheckConstraint(
                condition=Q(event__isnull=False, release_transition__isnull=True, order_event__isnull=True)
                | Q(event__isnull=True, release_transition__isnull=False, order_event__isnull=True)
                | Q(event__isnull=True, release_transition__isnull=True, order_event__isnull=False),
                name="delivery_of_one_event_transition_or_order_step",
            ),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self):
        if self.event_id:
            subject = f"event {self.event_id}"
        elif self.release_transition_id:
            subject = f"release transition {self.release_transition_id}"
        else:
            subject = f"order step {self.order_event_id}"
        return f"{subject} → channel {self.channel_id}: {self.state} ({self.attempts})"
