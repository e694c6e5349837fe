from django.contrib import admin

from .models import OutboxEvent
from .services import failed_events_retry


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "handler", "created_at", "attempts", "failed_at")
    list_filter = ("handler", "kind")
    readonly_fields = [field.name for field in OutboxEvent._meta.fields]
    actions = ["retry"]

    @admin.action(description="Retry selected failed events")
    def retry(self, request, queryset):
        count = failed_events_retry(ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} event(s) will be retried.")

    def has_add_permission(self, request):
        return False
