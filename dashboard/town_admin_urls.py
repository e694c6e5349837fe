from django.urls import path

from . import town_admin, town_admin_triggers

urlpatterns = [
    path("sharing/", town_admin.sharing_page, name="town-admin-sharing"),
    path("audit/", town_admin.audit_page, name="town-admin-audit"),
    path("usage/", town_admin.usage_page, name="town-admin-usage"),
    path("thresholds/", town_admin.thresholds_page, name="town-admin-thresholds"),
    path("tokens/", town_admin.tokens_page, name="town-admin-tokens"),
    path("members/", town_admin.members_page, name="town-admin-members"),
    path("channels/", town_admin.channels_page, name="town-admin-channels"),
    path("shelters/", town_admin.shelters_page, name="town-admin-shelters"),
    path("triggers/", town_admin_triggers.triggers_page, name="town-admin-triggers"),
]
