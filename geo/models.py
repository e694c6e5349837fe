from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Basin(models.Model):
    """A river basin (流域): the area whose rain drains to one river. Public geography, not tenant data."""

    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    geometry = models.JSONField(help_text="GeoJSON Polygon or MultiPolygon, [lon, lat].")

    class Meta:
        verbose_name = _("basin")
        verbose_name_plural = _("basins")
        ordering = ["name_en"]

    def __str__(self):
        return self.name_en


class River(models.Model):
    """A river course drawn on the map. Public geography, not tenant data."""

    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    basin = models.ForeignKey(Basin, null=True, blank=True, on_delete=models.SET_NULL, related_name="rivers")
    geometry = models.JSONField(help_text="GeoJSON LineString or MultiLineString, [lon, lat].")

    class Meta:
        verbose_name = _("river")
        verbose_name_plural = _("rivers")
        ordering = ["name_en"]

    def __str__(self):
        return self.name_en


class HazardZone(models.Model):
    """An area on a hazard map (ハザードマップ), e.g. an assumed inundation area. Public geography."""

    class Kind(models.TextChoices):
        INUNDATION = "inundation", "inundation (洪水浸水想定区域)"
        STORM_SURGE = "storm_surge", "storm surge (高潮浸水想定区域)"
        LANDSLIDE = "landslide", "landslide (土砂災害警戒区域)"

    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INUNDATION)
    depth_min_m = models.FloatField(null=True, blank=True, help_text="Assumed inundation depth band, lower bound.")
    depth_max_m = models.FloatField(null=True, blank=True, help_text="Assumed inundation depth band, upper bound.")
    municipality = models.ForeignKey(
        "tenancy.Municipality", null=True, blank=True, on_delete=models.SET_NULL, related_name="hazard_zones"
    )
    geometry = models.JSONField(help_text="GeoJSON Polygon or MultiPolygon, [lon, lat].")
    source = models.CharField(max_length=200, blank=True, help_text="Where the zone came from (file, survey, year).")

    class Meta:
        verbose_name = _("hazard zone")
        verbose_name_plural = _("hazard zones")
        ordering = ["kind", "name_en"]

    def __str__(self):
        return f"{self.name_en} ({self.kind})"


class Shelter(models.Model):
    """An evacuation shelter (指定避難所). Its status is public: residents need it most."""

    class Status(models.TextChoices):
        CLOSED = "closed", "closed"
        OPEN = "open", "open"
        FULL = "full", "full"

    code = models.CharField(max_length=40, unique=True)
    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.PROTECT, related_name="shelters")
    lon = models.FloatField()
    lat = models.FloatField()
    address = models.CharField(max_length=200, blank=True)
    capacity = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CLOSED)
    # Which hazards the shelter is designated for (指定緊急避難場所 per 災害種別, as the national standard
    # dataset lists them): True designated, False not designated, None not known (imported without it).
    # A flood order recommends only shelters with for_flood True.
    for_flood = models.BooleanField("洪水", null=True, blank=True)
    for_landslide = models.BooleanField("崖崩れ、土石流及び地滑り", null=True, blank=True)
    for_storm_surge = models.BooleanField("高潮", null=True, blank=True)
    for_earthquake = models.BooleanField("地震", null=True, blank=True)
    for_tsunami = models.BooleanField("津波", null=True, blank=True)
    for_large_fire = models.BooleanField("大規模な火事", null=True, blank=True)
    for_inland_flood = models.BooleanField("内水氾濫", null=True, blank=True)
    for_volcano = models.BooleanField("火山現象", null=True, blank=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)
    status_updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("shelter")
        verbose_name_plural = _("shelters")
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} {self.name_en} ({self.status})"

    def suitable_for(self, hazard: str) -> bool | None:
        """Designated for `hazard` (one of SHELTER_HAZARDS: "flood", "landslide", ...)? None: not known."""
        if hazard not in SHELTER_HAZARDS:
            raise ValueError(f"unknown hazard {hazard!r}; one of {', '.join(SHELTER_HAZARDS)}")
        return getattr(self, f"for_{hazard}")


# The 災害種別 of the national standard dataset, in its column order; Shelter.for_<hazard> each.
SHELTER_HAZARDS = (
    "flood", "landslide", "storm_surge", "earthquake", "tsunami", "large_fire", "inland_flood", "volcano",
)
