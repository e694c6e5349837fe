from django.contrib import admin

from .models import District, Order, OrderDraft, OrderEvent, OrderPolicy, Recommendation, TriggerRule


@admin.register(District)
class DistrictAdmin(admin.ModelAdmin):
    list_display = ["code", "name_ja", "name_en", "municipality"]
    list_filter = ["municipality"]
    search_fields = ["code", "name_ja", "name_en"]


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "level", "districts", "shelters", "reason", "evidence", "at", "actor", "actor_name"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Read-only here: orders are issued, changed and lifted through the audited services (HQ, API)."""

    list_display = ["pk", "municipality", "level", "issued_at", "updated_at", "lifted_at"]
    list_filter = ["municipality", "level"]
    inlines = [OrderEventInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TriggerRule)
class TriggerRuleAdmin(admin.ModelAdmin):
    list_display = ["station", "threshold", "jma_warning", "forecast_minutes", "level", "municipality", "is_active"]
    list_filter = ["municipality", "is_active"]
    filter_horizontal = ["districts"]


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin):
    list_display = ["pk", "municipality", "level", "state", "created_at", "handled_at", "handled_by"]
    list_filter = ["municipality", "state"]
    readonly_fields = ["evidence"]


@admin.register(OrderPolicy)
class OrderPolicyAdmin(admin.ModelAdmin):
    list_display = ["municipality", "second_person", "updated_at"]


@admin.register(OrderDraft)
class OrderDraftAdmin(admin.ModelAdmin):
    """Read-only: drafts are confirmed or withdrawn through the audited services (HQ board, API)."""

    list_display = ["pk", "municipality", "level", "state", "drafted_by_name", "drafted_at", "handled_by_name", "order"]
    list_filter = ["municipality", "state"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
