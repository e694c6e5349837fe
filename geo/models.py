from django.db import models


class Basin(models.Model):
    """A river basin (流域): the area whose rain drains to one river. Public geography, not tenant data."""

    name_ja = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)
    geometry = models.JSONField(help_text="GeoJSON Polygon or MultiPolygon, [lon, lat].")

    class Meta:
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
        ordering = ["name_en"]

    def __str__(self):
        return self.name_en
