import math
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_noop, gettext_lazy as _

from tenancy.models import Municipality


class Visibility(models.TextChoices):
    PRIVATE = "private", gettext_noop("private (owner town only)")
    SHARED = "shared", gettext_noop("shared with named municipalities")
    REGION = "region", gettext_noop("region (every town on the platform)")
    PUBLIC = "public", gettext_noop("public")


class StationKind(models.TextChoices):
    RIVER = "river", "river water level"
    RAIN = "rain", "rain gauge"
    RESERVOIR = "reservoir", "reservoir / dam / irrigation pond"
    TIDE = "tide", "tide gauge (潮位)"


# Readings outside these bounds cannot come from a working sensor of that kind: a river stage
# (m above the gauge datum, which may be below sea level), a 10-minute rainfall amount (the world
# record is about 40 mm), a reservoir storage rate in percent of capacity, and a tide level (m above
# the station's datum, usually T.P.: Japan's highest storm surges reached about 4 m above T.P., the
# lowest spring tides about 3 m below; the bounds leave room for a tsunami at the gauge and datums
# such as 観測基準面 that sit a few metres below T.P.).
PHYSICAL_LIMITS = {
    StationKind.RIVER: (-50.0, 200.0),
    StationKind.RAIN: (0.0, 300.0),
    StationKind.RESERVOIR: (0.0, 200.0),
    StationKind.TIDE: (-15.0, 30.0),
}


class StationQuerySet(models.QuerySet):
    def visible_to(self, viewer):
        """Restrict to what `viewer` may see; the only way tenant stations leave the database.

        Anyone: public. Any town on the platform: region. The owner town: everything it owns. A town
        named in an active sharing grant (for the station or a group holding it): shared stations.
        """
        if viewer.is_platform_admin:
            return self
        rule = Q(visibility=Visibility.PUBLIC)
        if viewer.is_member:
            towns = viewer.municipality_ids
            rule |= (
                Q(visibility=Visibility.REGION)
                | Q(municipality_id__in=towns)
                | Q(visibility=Visibility.SHARED, pk__in=shared_station_ids(towns))
            )
        return self.filter(rule)


class TrendLookback:
    """`Station.trend_lookback`: not a relation, but it speaks Django's prefetcher protocol
    (`get_prefetch_querysets`, as a generic foreign key does), so `prefetch_related` and
    `prefetch_related_objects` with `sensors.trends.trend_readings_prefetch()` load the look-back of
    every station of a list with one `trend_readings_of` (arrays, no model instance per reading) and
    attach it where `station_trend` reads it. A `Prefetch` of the observations built a model instance
    per reading before: 24,000 of them for a list of 2,000 stations reporting every 5 minutes."""

    def is_cached(self, station) -> bool:
        from .trends import TREND_READINGS_ATTR

        return hasattr(station, TREND_READINGS_ATTR)

    def get_prefetch_querysets(self, instances, querysets=None):
        from .trends import TREND_READINGS_ATTR, trend_lookbacks

        if querysets:
            raise ValueError("The trend look-back takes no queryset: it is read by sensors.trends.trend_readings_of.")
        # (related objects, each one's key, each station's key, one per station, where it goes, set as an attribute)
        return trend_lookbacks(instances), _lookback_station_id, _station_pk, True, TREND_READINGS_ATTR, True


def _lookback_station_id(lookback) -> int:
    return lookback.station_id


def _station_pk(station) -> int:
    return station.pk


class Station(models.Model):
    code = models.CharField(
        max_length=40,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "Letters, digits, '.', '_' and '-' only.")],
    )
    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=StationKind.choices)
    municipality = models.ForeignKey(Municipality, on_delete=models.PROTECT, related_name="stations")
    lon = models.FloatField(validators=[MinValueValidator(-180), MaxValueValidator(180)])
    lat = models.FloatField(validators=[MinValueValidator(-90), MaxValueValidator(90)])
    river_name = models.CharField("river or basin", max_length=100, blank=True)
    unit = models.CharField(
        max_length=20, help_text="m (river stage, tide level), mm (rainfall per reading), % (storage rate)"
    )
    datum = models.CharField(
        max_length=40,
        blank=True,
        help_text="What a level of 0 means: the reference datum of a stage or tide reading, e.g. "
        "'T.P.' (東京湾平均海面) or 'D.L.'. Empty: the gauge's own zero.",
    )
    expected_interval = models.DurationField(
        null=True,
        blank=True,
        default=timedelta(minutes=10),
        help_text="How often the station reports. Empty for gauges that report only above a start level.",
    )
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    is_active = models.BooleanField(default=True)
    # Plausibility limits (sensors.plausibility): empty means the default of the station's kind;
    # `seed_plausibility_limits` fills them from the station's history.
    plausible_min = models.FloatField(
        null=True, blank=True, help_text="Readings below are stored flagged 'range'. Empty: the kind's default."
    )
    plausible_max = models.FloatField(
        null=True, blank=True, help_text="Readings above are stored flagged 'range'. Empty: the kind's default."
    )
    max_step = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Largest believable change between two readings (station unit), plus max rate per hour "
        "× the hours between them; a larger jump is flagged 'suspect'. Empty: the kind's default.",
    )
    max_rate_per_hour = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Believable change per hour on top of max step. Empty: the kind's default.",
    )
    flatline_readings = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="This many identical readings in a row are flagged 'flatline' (a stuck sensor); 0 turns "
        "the check off. Empty: the kind's default (rivers 144, rain and reservoirs off).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = StationQuerySet.as_manager()
    # The readings its trend is judged on, for station lists (sensors.trends.trend_readings_prefetch).
    trend_lookback = TrendLookback()

    class Meta:
        verbose_name = _("station")
        verbose_name_plural = _("stations")
        ordering = ["code"]
        indexes = [models.Index(fields=["municipality", "kind"]), models.Index(fields=["visibility"])]

    def __str__(self):
        return f"{self.code} {self.name_en}"

    @property
    def physical_limits(self) -> tuple[float, float]:
        return PHYSICAL_LIMITS[StationKind(self.kind)]


class Threshold(models.Model):
    """One level of a station's warning scale, as data: names and levels change with national policy."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="thresholds")
    name = models.CharField(max_length=40, help_text="Machine name, e.g. 'flood_caution'.")
    label_ja = models.CharField(max_length=60)
    label_en = models.CharField(max_length=60)
    level = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(5)],
        help_text="Alert-level equivalent (1-5) when reached; empty for thresholds below the scale "
        "(e.g. 水防団待機水位).",
    )
    value = models.FloatField()
    window = models.DurationField(
        null=True,
        blank=True,
        help_text="For rain gauges: the accumulation window the value applies to (e.g. 1 hour). "
        "Empty: compared with the reading itself.",
    )
    margin = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="How far the value must fall back below this threshold to leave its level (station "
        "unit). Empty: the rule's margin (hysteresis).",
    )
    valid_from = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="Since when `value` is in force (empty: since the station began); earlier values are "
        "its revisions.",
    )

    class Meta:
        # By level, not by value: a form's rows must not move when a value is edited.
        ordering = ["station", "window", models.F("level").asc(nulls_first=True), "pk"]
        constraints = [
            models.UniqueConstraint(fields=["station", "name"], name="threshold_unique_name_per_station"),
        ]

    def __str__(self):
        return f"{self.station.code} {self.name} {self.value}"

    def value_at(self, when: datetime | None) -> float:
        """The value in force at `when` (a reading's time); None means now. Uses prefetched
        `revisions` when present, so judging a batch of readings costs no query per reading."""
        if when is None or self.valid_from is None or when >= self.valid_from:
            return self.value
        for revision in self.revisions.all():
            if (revision.valid_from is None or revision.valid_from <= when) and when < revision.valid_to:
                return revision.value
        return self.value


class ThresholdRevision(models.Model):
    """A value a threshold had before an edit, and when it was in force: [valid_from, valid_to).

    History lives beside the threshold rather than as one row per version, so every read of the
    current value (map, API, ingestion's level) stays one row per threshold; only judging a past
    reading (alert replay, charts, CAP of old alerts) looks here.
    """

    threshold = models.ForeignKey(Threshold, on_delete=models.CASCADE, related_name="revisions")
    value = models.FloatField()
    valid_from = models.DateTimeField(null=True, blank=True, help_text="Empty: since the station began.")
    valid_to = models.DateTimeField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who replaced this value.",
    )

    class Meta:
        ordering = ["threshold", "valid_to"]
        indexes = [models.Index(fields=["threshold", "valid_to"])]

    def __str__(self):
        return f"{self.threshold_id} {self.value} until {self.valid_to:%Y-%m-%d %H:%M}"

    def clean(self):
        from django.core.exceptions import ValidationError

        if not math.isfinite(self.value):
            raise ValidationError({"value": "Threshold value must be a finite number."})


class Observation(models.Model):
    class Quality(models.TextChoices):
        OK = "ok", "ok"
        SUSPECT = "suspect", "suspect (implausible jump: a spike until the next reading confirms it)"
        RANGE = "range", "range (outside the station's plausible range)"
        FLATLINE = "flatline", "flatline (identical readings for too long: a stuck sensor)"

    class Source(models.TextChoices):
        HTTP = "http", "HTTP API"
        CSV = "csv", "CSV upload"
        MQTT = "mqtt", "MQTT"
        NGSI = "ngsi", "NGSI"
        SIMULATOR = "sim", "storm simulator"
        IMPORT = "import", "bulk import"
        SEED = "seed", "demo seed"

    # No index of its own: the unique (station, observed_at) index serves lookups by station.
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="observations", db_index=False)
    observed_at = models.DateTimeField()
    value = models.FloatField()
    quality = models.CharField(max_length=10, choices=Quality.choices, default=Quality.OK)
    received_at = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices)

    # On PostgreSQL the table is range-partitioned by month of observed_at (migration 0006,
    # sensors/partitions.py); there the primary key is (id, observed_at), id staying unique by its
    # sequence.
    class Meta:
        verbose_name = _("observation")
        verbose_name_plural = _("observations")
        ordering = ["station", "observed_at"]
        constraints = [
            # Also the index for time-range reads of one station.
            models.UniqueConstraint(fields=["station", "observed_at"], name="observation_unique_station_time"),
        ]

    def __str__(self):
        return f"{self.station_id} {self.observed_at.isoformat()} {self.value}"


class StationState(models.Model):
    """The latest reading per station, kept current on ingest so the map never scans history."""

    station = models.OneToOneField(Station, on_delete=models.CASCADE, primary_key=True, related_name="state")
    value = models.FloatField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    quality = models.CharField(max_length=10, choices=Observation.Quality.choices, default=Observation.Quality.OK)
    level = models.PositiveSmallIntegerField(null=True, blank=True)
    # The reading before the latest (the trend is judged over a window: sensors.trends).
    previous_value = models.FloatField(null=True, blank=True)
    previous_at = models.DateTimeField(null=True, blank=True)
    # The last reading not flagged as suspect: what the next reading's plausibility is judged against.
    reference_value = models.FloatField(null=True, blank=True)
    reference_at = models.DateTimeField(null=True, blank=True)
    # How many readings in a row, ending at the latest, had the latest's value (flatline check).
    repeats = models.PositiveIntegerField(default=0)
    # For rain gauges: the amount in each threshold window ending at observed_at, {"3600": 12.5}.
    accumulations = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Changed (to a random value) whenever a reading older than the latest one is stored or the state
    # is rebuilt from history: copies of the station's recent readings made before are then stale
    # (alerts.recent). Appending newer readings leaves it alone.
    history_mark = models.BigIntegerField(default=0, db_default=0)

    def __str__(self):
        return f"{self.station_id}: {self.value} at {self.observed_at} (level {self.level})"


class RejectedMessage(models.Model):
    """A message an ingestion adapter could not store (fully), kept so operators can see what and why.

    Bounded on purpose: the payload is only an excerpt, decoded with undecodable bytes replaced, so a
    hostile or broken gateway cannot fill the database or break the admin page.
    """

    TOPIC_MAX_LENGTH = 500
    EXCERPT_MAX_LENGTH = 2000
    REASON_MAX_LENGTH = 2000

    received_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=10, choices=Observation.Source.choices, default=Observation.Source.MQTT)
    topic = models.CharField(max_length=TOPIC_MAX_LENGTH, blank=True)
    payload_excerpt = models.TextField(blank=True, help_text="The start of the payload as text (not the whole of it).")
    payload_bytes = models.PositiveIntegerField(default=0, help_text="Size of the whole payload.")
    reason = models.TextField()

    class Meta:
        verbose_name = _("rejected message")
        verbose_name_plural = _("rejected messages")
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.received_at:%Y-%m-%d %H:%M:%S} {self.source} {self.topic}: {self.reason[:80]}"


class StationGroup(models.Model):
    """A town's named set of its own stations (e.g. "upper-basin river gauges"), shared as one."""

    municipality = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="station_groups")
    name = models.CharField(max_length=100)
    stations = models.ManyToManyField(Station, related_name="groups", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["municipality", "name"]
        constraints = [models.UniqueConstraint(fields=["municipality", "name"], name="station_group_unique_name")]

    def __str__(self):
        return f"{self.municipality.slug}: {self.name}"


class SharingGrantQuerySet(models.QuerySet):
    def active(self):
        return self.filter(withdrawn_at__isnull=True)


class SharingGrant(models.Model):
    """A town's decision to let a named neighbour see one station or a group of its stations.

    Kept after withdrawal as the record of who shared what, when, and who took it back.
    """

    station = models.ForeignKey(Station, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    group = models.ForeignKey(StationGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    grantor = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="grants_given")
    grantee = models.ForeignKey(Municipality, on_delete=models.CASCADE, related_name="grants_received")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = SharingGrantQuerySet.as_manager()

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(station__isnull=False, group__isnull=True) | Q(station__isnull=True, group__isnull=False),
                name="sharing_grant_station_xor_group",
            ),
            models.CheckConstraint(condition=~Q(grantor=models.F("grantee")), name="sharing_grant_not_to_self"),
            models.UniqueConstraint(
                fields=["station", "grantee"], condition=Q(withdrawn_at__isnull=True),
                name="sharing_grant_one_active_per_station",
            ),
            models.UniqueConstraint(
                fields=["group", "grantee"], condition=Q(withdrawn_at__isnull=True),
                name="sharing_grant_one_active_per_group",
            ),
        ]

    def __str__(self):
        subject = self.station.code if self.station_id else f"group {self.group}"
        state = "withdrawn" if self.withdrawn_at else "active"
        return f"{subject} → {self.grantee.slug} ({state})"


def shared_station_ids(municipality_ids):
    """Subquery: ids of stations shared with any of these towns by an active grant."""
    active = SharingGrant.objects.active().filter(grantee_id__in=municipality_ids)
    direct = active.filter(station__isnull=False).values("station_id")
    grouped = StationGroup.stations.through.objects.filter(
        stationgroup_id__in=active.filter(group__isnull=False).values("group_id")
    ).values("station_id")
    return Station.objects.filter(Q(pk__in=direct) | Q(pk__in=grouped)).values("pk")


class CatalogStamp(models.Model):
    """One row whose `stamp` changes whenever any station, threshold or threshold revision row is
    written, by database triggers (migration 0009_perf_catalog_stamp), so every write path counts,
    `QuerySet.update` and raw SQL included. Ingestion (`sensors.catalog`) and alert evaluation keep
    stations and thresholds in per-process caches and reload them when the stamp they read differs
    from the one they loaded with. It also changes when stored readings are updated or deleted
    (migration 0014: corrections, data repair, a demo reseed; ingestion only inserts), which the
    evaluator's copies of recent readings (alerts.recent) rely on.

    The stamp is random rather than a counter: a process that loaded inside a transaction which then
    rolled back has cached data under a stamp the database never commits, and must never meet it again.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    stamp = models.BigIntegerField(default=0)


class TideHarmonics(models.Model):
    """A tide gauge's astronomical-tide baseline (天文潮位): harmonic constants as data, so the
    anomaly (潮位偏差 = observed − predicted) that shows a storm surge can be read (sensors.tide).
    Kept beside the station rather than on it: the station table stays as it is."""

    station = models.OneToOneField(Station, on_delete=models.CASCADE, related_name="tide_harmonics")
    mean_level = models.FloatField(help_text="Z0: the mean sea level, m above the station's datum.")
    epoch = models.DateTimeField(help_text="The time the constituents' phases refer to.")
    constituents = models.JSONField(help_text='[{"name": "M2", "amplitude": m, "phase": degrees at the epoch}, …]')
    source = models.CharField(max_length=200, blank=True, help_text="e.g. 'fitted from 2025 readings' or a table's name.")
    updated_at = models.DateTimeField()

    def __str__(self):
        return f"tide harmonics of {self.station_id}"
