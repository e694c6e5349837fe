from django.contrib import admin

from .models import Basin, HazardZone, River, Shelter


@admin.register(Basin)
class BasinAdmin(admin.ModelAdmin):
    list_display = ["name_en", "name_ja"]
    search_fields = ["name_en", "name_ja"]


@admin.register(River)
class RiverAdmin(admin.ModelAdmin):
    list_display = ["name_en", "name_ja", "basin"]
    search_fields = ["name_en", "name_ja"]


@admin.register(HazardZone)
class HazardZoneAdmin(admin.ModelAdmin):
    list_display = ["name_en", "name_ja", "kind", "municipality", "source"]
    list_filter = ["kind", "municipality"]
    search_fields = ["name_en", "name_ja"]


@admin.register(Shelter)
class ShelterAdmin(admin.ModelAdmin):
    list_display = ["code", "name_ja", "name_en", "municipality", "capacity", "status", "status_updated_at"]
    list_filter = ["status", "municipality"]
    search_fields = ["code", "name_ja", "name_en", "address"]
