from django.apps import AppConfig


class TimelineConfig(AppConfig):
    name = "timeline"
    verbose_name = "Timeline (as-of maps, event timeline, HQ overview, situation reports)"
