"""Warnings and advisories of the Japan Meteorological Agency (気象庁) in force for each town, as the
agency words them: public information, shown attributed to the agency, never reworded."""

from django.db import models


class JmaWarning(models.Model):
    """One kind (大雨警報, 洪水注意報, 氾濫警戒情報 ...) in force in one town, from the latest report of its
    warning type (e.g. 気象警報・注意報（市町村等）) that named the town."""

    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.CASCADE, related_name="jma_warnings")
    warning_type = models.CharField(max_length=60, help_text="Warning@type of the report, e.g. 気象警報・注意報（市町村等）")
    name = models.CharField(max_length=60, help_text="The agency's words, e.g. 大雨警報")
    code = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=30, help_text="発表 / 継続 / 特別警報から警報 ...")
    area_name = models.CharField(max_length=60, blank=True)
    report_title = models.CharField(max_length=120)
    reported_at = models.DateTimeField()
    office = models.CharField(max_length=60, blank=True, help_text="PublishingOffice, e.g. 気象庁予報部")

    class Meta:
        ordering = ["municipality__code", "warning_type", "code", "name"]
        indexes = [models.Index(fields=["municipality", "warning_type"])]

    def __str__(self):
        return f"{self.name} ({self.municipality_id})"


class JmaReportState(models.Model):
    """The time of the latest report applied per town and warning type: an older report arriving
    late (a directory read out of order, a feed replay) never overrides a newer one."""

    municipality = models.ForeignKey("tenancy.Municipality", on_delete=models.CASCADE, related_name="+")
    warning_type = models.CharField(max_length=60)
    reported_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["municipality", "warning_type"], name="jma_state_once")]


class JmaFeedDocument(models.Model):
    """A document the Atom feed listed and the poller has dealt with (applied, or refused for good),
    with the entry's `updated`: the feed lists the same documents minute after minute, and each is
    fetched once. A fetch that failed for a passing reason (timeout, 5xx) is not recorded, so the
    next poll tries again."""

    url = models.CharField(max_length=2048, unique=True)
    updated = models.CharField(max_length=40, help_text="The feed entry's atom:updated, as written.")
    title = models.CharField(max_length=120, blank=True)
    outcome = models.CharField(max_length=300, help_text="'applied: <towns>' or why it was refused.")
    fetched_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["fetched_at"])]

    def __str__(self):
        return f"{self.url} ({self.outcome})"
