from django.contrib import admin

from .models import NotifyMapping, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Clients manage their subscriptions through /ngsi/v2/subscriptions; operators look and pause here."""

    list_display = [
        "public_id", "municipality", "service", "description", "url", "status", "expires", "times_sent",
        "fails_counter", "last_notification",
    ]
    list_filter = ["status", "municipality", "attrs_format"]
    search_fields = ["public_id", "description", "url"]
    list_select_related = ["municipality", "service"]
    readonly_fields = [
        "public_id", "owner_token", "owner_user", "times_sent", "last_notification", "last_success",
        "last_success_code", "last_failure", "last_failure_reason", "fails_counter", "created_at", "updated_at",
    ]
    actions = ["deactivate"]

    def has_add_permission(self, request):
        # Created through the API, where the URL allow-list and the subject are validated.
        return False

    @admin.action(description="Deactivate selected subscriptions")
    def deactivate(self, request, queryset):
        queryset.update(status=Subscription.Status.INACTIVE)


@admin.register(NotifyMapping)
class NotifyMappingAdmin(admin.ModelAdmin):
    list_display = ["__str__", "entity_type", "station", "time_attribute", "scale", "offset", "is_active"]
    list_filter = ["is_active", "station__municipality"]
    search_fields = ["entity_id", "entity_id_pattern", "entity_type", "attribute", "station__code"]
    list_select_related = ["station"]
    raw_id_fields = ["station"]
