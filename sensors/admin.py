from django.contrib import admin

from .models import Observation, RejectedMessage, Station, StationState, Threshold


class ThresholdInline(admin.TabularInline):
    model = Threshold
    extra = 0


class StationStateInline(admin.StackedInline):
    model = StationState
    can_delete = False
    readonly_fields = ["value", "observed_at", "quality", "level", "repeats", "accumulations", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Station)
class StationAdmin(admin.ModelAdmin):
    list_display = ["code", "name_ja", "name_en", "kind", "municipality", "visibility", "is_active"]
    list_filter = ["kind", "visibility", "municipality", "is_active"]
    search_fields = ["code", "name_ja", "name_en", "river_name"]
    list_select_related = ["municipality"]
    inlines = [ThresholdInline, StationStateInline]


@admin.register(Observation)
class ObservationAdmin(admin.ModelAdmin):
    list_display = ["station", "observed_at", "value", "quality", "source", "received_at"]
    list_filter = ["quality", "source", "station__kind"]
    search_fields = ["station__code"]
    list_select_related = ["station"]
    date_hierarchy = "observed_at"
    raw_id_fields = ["station"]
    # History is evidence: corrections go through re-ingestion, not hand edits.
    readonly_fields = ["station", "observed_at", "value", "received_at", "source"]
    show_full_result_count = False


@admin.register(RejectedMessage)
class RejectedMessageAdmin(admin.ModelAdmin):
    list_display = ["received_at", "source", "topic", "reason", "payload_bytes"]
    list_filter = ["source"]
    search_fields = ["topic", "reason"]
    date_hierarchy = "received_at"
    readonly_fields = ["received_at", "source", "topic", "payload_excerpt", "payload_bytes", "reason"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False
