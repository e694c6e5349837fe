from django.contrib import admin

from .models import Basin, River


@admin.register(Basin)
class BasinAdmin(admin.ModelAdmin):
    list_display = ["name_en", "name_ja"]
    search_fields = ["name_en", "name_ja"]


@admin.register(River)
class RiverAdmin(admin.ModelAdmin):
    list_display = ["name_en", "name_ja", "basin"]
    search_fields = ["name_en", "name_ja"]
