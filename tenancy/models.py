import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_noop, gettext_lazy as _


def local_government_check_digit(five: str) -> int:
    """The sixth digit of the 全国地方公共団体コード whose first five are `five` (JIS X 0402)."""
    weighted = sum(int(digit) * weight for digit, weight in zip(five, (6, 5, 4, 3, 2)))
    return (11 - weighted % 11) % 10


def validate_local_government_code(code: str) -> None:
    """全国地方公共団体コード: five digits and a check digit (JIS X 0402)."""
    if len(code) != 6 or not code.isdigit():
        return  # the regex validator reports the shape
    expected = local_government_check_digit(code[:5])
    if int(code[5]) != expected:
        raise ValidationError(f"Check digit of {code} should be {expected}.")


class Municipality(models.Model):
    """A local government on the platform: owns stations, members and ingest tokens."""

    code = models.CharField(
        "local government code",
        max_length=6,
        unique=True,
        validators=[
            RegexValidator(r"^\d{6}$", "A local government code is six digits."),
            validate_local_government_code,
        ],
        help_text="全国地方公共団体コード (6 digits, with check digit).",
    )
    slug = models.SlugField(max_length=40, unique=True)
    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    boundary = models.JSONField(
        null=True, blank=True, help_text="GeoJSON Polygon or MultiPolygon geometry, [lon, lat] (RFC 7946)."
    )

    class Meta:
        verbose_name = _("municipality")
        verbose_name_plural = _("municipalities")
        ordering = ["code"]

    def __str__(self):
        return f"{self.name_en} ({self.slug})"


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", gettext_noop("viewer")
        OPERATOR = "operator", gettext_noop("operator")
        ADMIN = "admin", gettext_noop("admin")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    municipality = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["user", "municipality"], name="membership_unique_user_town")]

    def __str__(self):
        return f"{self.user} @ {self.municipality.slug} ({self.role})"


class IngestToken(models.Model):
    """A bearer token for a sensor gateway. Only a SHA-256 digest is stored; the secret is shown once."""

    municipality = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="ingest_tokens")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="First characters of the token, to recognise it in lists.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("gateway token")
        verbose_name_plural = _("gateway tokens")
        ordering = ["-created_at"]

    def __str__(self):
        state = "revoked" if self.revoked_at else "active"
        return f"{self.prefix}… {self.municipality.slug} {self.label} ({state})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def digest_of(secret: str) -> str:
        return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AuditEvent(models.Model):
    """A security-relevant action, kept for the town's admin and the platform operator."""

    class Action(models.TextChoices):
        LOGIN = "login", gettext_noop("login")
        LOGIN_FAILED = "login_failed", gettext_noop("failed login")
        LOGOUT = "logout", gettext_noop("logout")
        TOWN_SWITCHED = "town_switched", gettext_noop("active town switched")
        SHARING_GRANTED = "sharing_granted", gettext_noop("sharing granted")
        SHARING_WITHDRAWN = "sharing_withdrawn", gettext_noop("sharing withdrawn")
        VISIBILITY_CHANGED = "visibility_changed", gettext_noop("station visibility changed")
        TOKEN_CREATED = "token_created", gettext_noop("gateway token created")
        TOKEN_REVOKED = "token_revoked", gettext_noop("gateway token revoked")
        THRESHOLD_CHANGED = "threshold_changed", gettext_noop("threshold changed")
        ALERT_ACKNOWLEDGED = "alert_acknowledged", gettext_noop("alert acknowledged")
        ALERT_RESOLVED = "alert_resolved", gettext_noop("alert resolved")
        ALERT_NOTE_ADDED = "alert_note_added", gettext_noop("note added to an alert")
        MEMBERSHIP_CHANGED = "membership_changed", gettext_noop("membership changed")
        SHELTER_UPDATED = "shelter_updated", gettext_noop("shelter status changed")
        ORDER_CHANGED = "order_changed", gettext_noop("evacuation order issued, changed or lifted")
        RECOMMENDATION_HANDLED = "recommendation_handled", gettext_noop("evacuation recommendation issued or dismissed")
        TRIGGER_RULE_CHANGED = "trigger_rule_changed", gettext_noop("evacuation trigger rule changed")
        TOWN_ONBOARDED = "town_onboarded", gettext_noop("town created with its first admin")
        STATION_ADDED = "station_added", gettext_noop("station added")
        STATION_EDITED = "station_edited", gettext_noop("station edited or moved")
        STATION_RETIRED = "station_retired", gettext_noop("station retired or reinstated")

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # What the actor typed as a username on a failed login; never a password.
    actor_name = models.CharField(max_length=150, blank=True)
    municipality = models.ForeignKey(
        Municipality, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    target = models.CharField(max_length=200, blank=True, help_text="What was acted on, e.g. a station code.")
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["municipality", "-at"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.actor_name or self.actor_id} {self.target}"


class ApiUsage(models.Model):
    """API calls per town per month, for splitting the platform's running cost."""

    municipality = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="api_usage")
    month = models.DateField(help_text="First day of the month.")
    calls = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["municipality", "month"], name="api_usage_unique_town_month")]
