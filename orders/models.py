"""Evacuation decisions: districts, the orders a town issues for them, the trigger rules of its manual,
and the recommendations those rules raise.

Only a municipality issues 高齢者等避難 (level 3), 避難指示 (level 4) and 緊急安全確保 (level 5), for
districts; a gauge merely reaches the level those orders are decided on. The words of each level come
from the versioned scheme (alerts.LevelScheme) that was active when the order was issued, so a later
revision of the scale never rewrites what residents were told.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

ORDER_LEVELS = (3, 4, 5)
LEVEL_VALIDATORS = [MinValueValidator(3), MaxValueValidator(5)]


class District(models.Model):
    """An evacuation district (避難単位: 地区 / 町丁目) of one town: the area an order names."""

    code = models.CharField(
        max_length=40,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "Letters, digits, '.', '_' and '-' only.")],
    )
    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.PROTECT, related_name="districts")
    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    geometry = models.JSONField(help_text="GeoJSON Polygon or MultiPolygon, [lon, lat] (RFC 7946).")

    class Meta:
        verbose_name = _("district")
        verbose_name_plural = _("districts")
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} {self.name_ja} / {self.name_en}"


class Order(models.Model):
    """An evacuation order of one town for some of its districts, from issue until it is lifted."""

    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.PROTECT, related_name="orders")
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    districts = models.ManyToManyField(District, related_name="orders")
    shelters = models.ManyToManyField("geo.Shelter", blank=True, related_name="orders")
    reason = models.TextField(blank=True)
    level_scheme = models.ForeignKey(
        "alerts.LevelScheme", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The scheme whose words this order speaks (the active one when issued).",
    )
    issued_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("evacuation order")
        verbose_name_plural = _("evacuation orders")
        ordering = ["-issued_at", "-pk"]
        indexes = [models.Index(fields=["municipality", "lifted_at"])]

    def __str__(self):
        state = "lifted" if self.lifted_at else "in force"
        return f"order {self.pk} L{self.level} {self.municipality_id} ({state})"

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


class OrderEvent(models.Model):
    """One transition of an order: its history, its audit trail (who, when, on what evidence) and
    one CAP message version each."""

    class Kind(models.TextChoices):
        ISSUED = "issued", "issued"
        RAISED = "raised", "raised"
        LOWERED = "lowered", "lowered"
        EXTENDED = "extended", "districts changed"
        LIFTED = "lifted", "lifted"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    districts = models.JSONField(default=list, help_text="District codes in force after this step.")
    shelters = models.JSONField(default=list, help_text="Shelter codes linked after this step.")
    reason = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True, help_text="What the decision was shown (gauge, reading ...).")
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["order", "at", "pk"]

    def __str__(self):
        return f"order {self.order_id} {self.kind} L{self.level} by {self.actor_name} at {self.at:%Y-%m-%d %H:%M}"


# The weather agency's products a rule may watch (jma/: 気象警報・注意報, 指定河川洪水予報, 土砂災害警戒情報),
# in the agency's own words. A 特別警報 of the same phenomenon also satisfies its 警報 (jma.selectors).
JMA_TRIGGER_WARNINGS = (
    "大雨警報", "洪水警報", "高潮警報", "土砂災害警戒情報", "氾濫警戒情報", "氾濫危険情報", "氾濫発生情報",
)


class TriggerRule(models.Model):
    """One line of the town's 避難情報の判断・伝達マニュアル: when gauge G reaches threshold T (or is
    forecast to within M minutes), recommend level L for districts D. The gauge may belong to a
    neighbouring town that shares it with this one (upstream gauges are why towns share).

    Or, instead of a gauge, when the weather agency has a warning W in force for the town (e.g.
    土砂災害警戒情報 → 避難指示 for the hillside districts, as the national guideline reads)."""

    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.CASCADE, related_name="trigger_rules")
    station = models.ForeignKey(
        "sensors.Station", null=True, blank=True, on_delete=models.CASCADE, related_name="trigger_rules",
        help_text="The gauge watched; empty for a rule on a JMA warning.",
    )
    threshold = models.CharField(
        max_length=40, blank=True, help_text="The station's threshold by machine name, e.g. 'evacuation_decision'."
    )
    jma_warning = models.CharField(
        max_length=20, blank=True, choices=[(name, name) for name in JMA_TRIGGER_WARNINGS],
        help_text="The JMA warning in force for the rule's town that fires it (instead of a gauge).",
    )
    forecast_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(24 * 60)],
        help_text="Also fire when the forecast reaches the threshold within this many minutes. Empty: readings only.",
    )
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    districts = models.ManyToManyField(District, related_name="trigger_rules")
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    fired_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When it last recommended; it fires again only after the gauge has gone back below the "
        "threshold (or the warning was lifted).",
    )

    class Meta:
        verbose_name = _("trigger rule")
        verbose_name_plural = _("trigger rules")
        ordering = ["municipality", "station", "level"]
        constraints = [
            models.CheckConstraint(
                name="trigger_rule_gauge_or_jma",
                condition=(
                    models.Q(station__isnull=False, jma_warning="") & ~models.Q(threshold="")
                ) | models.Q(station__isnull=True, threshold="", forecast_minutes__isnull=True) & ~models.Q(jma_warning=""),
            ),
        ]

    def __str__(self):
        if self.station_id is None:
            return f"JMA {self.jma_warning} → L{self.level}"
        return f"{self.station_id}:{self.threshold} → L{self.level}"


class Recommendation(models.Model):
    """What a trigger (or an operator, by hand) proposes to the town's HQ, until it is issued or dismissed."""

    class State(models.TextChoices):
        OPEN = "open", "open"
        ISSUED = "issued", "issued"
        DISMISSED = "dismissed", "dismissed"

    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.CASCADE, related_name="recommendations")
    rule = models.ForeignKey(TriggerRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="recommendations")
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    districts = models.ManyToManyField(District, related_name="recommendations")
    evidence = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField()
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dismiss_reason = models.CharField(max_length=300, blank=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="recommendations")

    class Meta:
        verbose_name = _("recommendation")
        verbose_name_plural = _("recommendations")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["municipality", "state"])]

    def __str__(self):
        return f"recommendation {self.pk} L{self.level} ({self.state})"


class OrderPolicy(models.Model):
    """How a town issues orders (part of its 判断・伝達マニュアル, edited by its admins): with
    `second_person`, an order one operator drafts is issued only when another operator of the town
    confirms it (the four-eyes rule some towns keep for 避難情報)."""

    municipality = models.OneToOneField("tenancy.Municipality", on_delete=models.CASCADE, related_name="order_policy")
    second_person = models.BooleanField(
        default=False, help_text="Orders are issued only after a second operator of the town confirms the draft."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.municipality_id}: second person {'on' if self.second_person else 'off'}"

    class Meta:
        verbose_name = _("order policy")
        verbose_name_plural = _("order policies")


class OrderDraft(models.Model):
    """An order one operator has asked to issue, waiting for a second operator of the town to confirm
    it (OrderPolicy.second_person). Not an order: not public, no CAP, nothing in force until confirmed."""

    class State(models.TextChoices):
        PENDING = "pending", "waiting for a second operator"
        CONFIRMED = "confirmed", "confirmed and issued"
        WITHDRAWN = "withdrawn", "withdrawn"

    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.CASCADE, related_name="order_drafts")
    level = models.PositiveSmallIntegerField(validators=LEVEL_VALIDATORS)
    districts = models.ManyToManyField(District, related_name="+")
    shelters = models.ManyToManyField("geo.Shelter", blank=True, related_name="+")
    open_shelters = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    recommendation = models.ForeignKey(
        Recommendation, null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    drafted_at = models.DateTimeField()
    drafted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    drafted_by_name = models.CharField(max_length=150, blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_by_name = models.CharField(max_length=150, blank=True)
    withdraw_reason = models.CharField(max_length=300, blank=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts")

    class Meta:
        verbose_name = _("order draft")
        verbose_name_plural = _("order drafts")
        ordering = ["-drafted_at", "-pk"]
        indexes = [models.Index(fields=["municipality", "state"])]

    def __str__(self):
        return f"draft {self.pk} L{self.level} by {self.drafted_by_name} ({self.state})"
