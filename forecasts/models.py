from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .learn import PREALERT_LEADS, WARNING_MINUTES, WARNING_PROBABILITY

from sensors.models import Station


class Method(models.TextChoices):
    ARX = "arx", "learned ARX (upstream gauges, basin rain)"
    TREND = "trend", "linear trend (too little history for a learned model)"


class ForecastModel(models.Model):
    """One trained version of a gauge's forecasting model, kept with its training window and skill.

    Versions are kept (not overwritten) so that a forecast can say which model made it and a
    retrain can be compared with the one before; only the newest active version serves.
    """

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="forecast_models")
    version = models.PositiveIntegerField()
    method = models.CharField(max_length=10, choices=Method.choices)
    trained_at = models.DateTimeField()
    train_since = models.DateTimeField(null=True, blank=True)
    train_until = models.DateTimeField(null=True, blank=True)
    step_seconds = models.PositiveIntegerField()
    readings_at_training = models.PositiveIntegerField(
        default=0, help_text="The gauge's readings when it was trained: a retrain is due after enough new ones."
    )
    inputs = models.JSONField(default=dict, help_text='{"upstream": [codes], "rain": [codes]}')
    # The skill's one home is `skill`; `params` holds the rest (learn.ArxModel.as_params).
    params = models.JSONField(default=dict, help_text="The learned coefficients, spread model and quantiles.")
    skill = models.JSONField(default=list, help_text="Per lead: NSE, RMSE and persistence RMSE on held-out data.")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("forecast model")
        verbose_name_plural = _("forecast models")
        ordering = ["station", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["station", "version"], name="forecast_model_unique_version"),
        ]

    def __str__(self):
        return f"{self.station.code} v{self.version} ({self.method})"


class StationForecast(models.Model):
    """The current forecast of one gauge, recomputed from the change log when its inputs change."""

    station = models.OneToOneField(Station, on_delete=models.CASCADE, primary_key=True, related_name="forecast")
    model = models.ForeignKey(ForecastModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    method = models.CharField(max_length=10, choices=Method.choices)
    issued_at = models.DateTimeField()
    based_on = models.DateTimeField(help_text="The time of the gauge's reading the forecast starts from.")
    step_seconds = models.PositiveIntegerField()
    level_now = models.FloatField(null=True, blank=True, help_text="The value of the reading the forecast starts from.")
    points = models.JSONField(default=list, help_text="[[epoch seconds, median, lower, upper], ...] (80 % interval).")
    crossing = models.JSONField(null=True, blank=True, help_text="The next threshold the median reaches, and when.")
    danger_probability_1h = models.FloatField(
        null=True, blank=True, help_text="Probability of reaching 氾濫危険水位 (level 4) within one hour."
    )
    forecast_rain = models.BooleanField(default=False, help_text="Made by the model that also reads forecast rain.")
    exceedance = models.JSONField(
        default=list, blank=True,
        help_text='Per threshold above the current value: {"name", "level", "value", "within": {"60": P, ...}, "by_step": [P, ...]}.',
    )

    def __str__(self):
        return f"{self.station_id} forecast at {self.based_on:%Y-%m-%d %H:%M}"

    class Meta:
        verbose_name = _("station forecast")
        verbose_name_plural = _("station forecasts")


class PrealertSetting(models.Model):
    """A town's choice for forecast warnings: its HQ board lists a gauge when the warning rule
    (forecasts.predict.warning: the probability of crossing a threshold of at least `min_level`
    within `lead_minutes`, sustained over the gauge's last forecasts, is at least `min_probability`);
    its trigger rules on forecasts read the same probability (within their own minutes). Staff
    only: a pre-alert is a forecast, never shown to the public as fact."""

    municipality = models.OneToOneField(
        "tenancy.Municipality", on_delete=models.CASCADE, primary_key=True, related_name="forecast_prealert"
    )
    min_probability = models.FloatField(default=WARNING_PROBABILITY, validators=[MinValueValidator(0.01), MaxValueValidator(1.0)])
    lead_minutes = models.PositiveSmallIntegerField(default=WARNING_MINUTES, choices=[(m, f"{m} min") for m in PREALERT_LEADS])
    min_level = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(5)])

    def __str__(self):
        return f"{self.municipality_id}: P >= {self.min_probability} within {self.lead_minutes} min"

    class Meta:
        verbose_name = _("pre-alert setting")
        verbose_name_plural = _("pre-alert settings")


class RainForecast(models.Model):
    """Rain forecast to fall at a rain gauge, as a source posts it (POST /api/v1/rain-forecasts: a
    town's gateway relaying a forecast-rain product for its gauges). One row per interval of an
    issue: the amount forecast to fall from the issue's previous interval end (or its issue time) to
    `valid_at`. A model reads only issues made at or before the time it forecasts from."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="rain_forecasts")
    issued_at = models.DateTimeField()
    valid_at = models.DateTimeField()
    value = models.FloatField(help_text="mm")
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["station", "issued_at", "valid_at"], name="rain_forecast_unique_interval"),
        ]
        indexes = [models.Index(fields=["station", "issued_at"], name="rain_forecast_issue")]

    def __str__(self):
        return f"{self.station_id} issued {self.issued_at:%Y-%m-%d %H:%M} for {self.valid_at:%H:%M}: {self.value} mm"
