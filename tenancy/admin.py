from django.contrib import admin

from .models import IngestToken, Membership, Municipality


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Municipality)
class MunicipalityAdmin(admin.ModelAdmin):
    list_display = ["code", "slug", "name_ja", "name_en"]
    search_fields = ["code", "slug", "name_ja", "name_en"]
    prepopulated_fields = {"slug": ["name_en"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "municipality", "role", "created_at"]
    list_filter = ["municipality", "role"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]


@admin.register(IngestToken)
class IngestTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `manage.py create_ingest_token` (the secret is shown once, there)."""

    list_display = ["prefix", "municipality", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["municipality"]
    readonly_fields = ["municipality", "prefix", "digest", "created_at", "created_by", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        from .services import ingest_token_revoke

        for token in queryset:
            ingest_token_revoke(token=token)
