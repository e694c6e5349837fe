from django.contrib import admin

from .models import Alert, AlertEvent, AlertRule, Delivery, LevelDefinition, LevelScheme, NotificationChannel


class LevelDefinitionInline(admin.TabularInline):
    model = LevelDefinition
    extra = 0


@admin.register(LevelScheme)
class LevelSchemeAdmin(admin.ModelAdmin):
    list_display = ["version", "name", "valid_from", "is_active"]
    inlines = [LevelDefinitionInline]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["station", "name", "kind", "direction", "value", "level", "window", "is_enabled", "is_default"]
    list_filter = ["kind", "is_enabled", "is_default", "station__municipality"]
    search_fields = ["station__code", "name"]
    list_select_related = ["station"]
    raw_id_fields = ["station"]
    readonly_fields = ["is_default", "evaluated_until", "created_at"]


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "level", "value", "observed_at", "actor", "note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["pk", "station", "rule", "level", "peak_level", "state", "opened_at", "updated_at"]
    list_filter = ["state", "level", "rule__kind", "station__municipality"]
    search_fields = ["station__code"]
    list_select_related = ["station", "rule"]
    date_hierarchy = "opened_at"
    inlines = [AlertEventInline]
    # The lifecycle moves through services (evaluation, acknowledge, resolve) so every change is an event.
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["municipality", "kind", "label", "target", "scope", "digest_window", "enabled", "failing_since", "last_error"]
    autocomplete_fields = ["stations"]
    list_filter = ["kind", "enabled", "municipality", ("failing_since", admin.EmptyFieldListFilter)]
    search_fields = ["target", "label"]
    readonly_fields = ["failing_since", "last_error", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "pk", "event", "release_transition", "order_event", "channel", "state", "attempts", "next_attempt_at",
        "digest_at", "last_error", "sent_at",
    ]
    list_filter = ["state", "channel__kind"]
    list_select_related = ["event", "release_transition", "order_event", "channel", "channel__municipality"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False
