from django.contrib import admin

from .models import ForecastModel, PrealertSetting, StationForecast


@admin.register(ForecastModel)
class ForecastModelAdmin(admin.ModelAdmin):
    list_display = ("station", "version", "method", "trained_at", "train_since", "train_until")
    list_filter = ("method",)
    readonly_fields = [field.name for field in ForecastModel._meta.fields]


@admin.register(StationForecast)
class StationForecastAdmin(admin.ModelAdmin):
    list_display = ("station", "method", "based_on", "danger_probability_1h")
    readonly_fields = [field.name for field in StationForecast._meta.fields]


@admin.register(PrealertSetting)
class PrealertSettingAdmin(admin.ModelAdmin):
    list_display = ("municipality", "min_probability", "lead_minutes", "min_level")
