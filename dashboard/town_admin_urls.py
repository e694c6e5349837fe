from django.urls import path

from . import town_admin, town_admin_stations, town_admin_triggers

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
    path("stations/", town_admin_stations.stations_page, name="town-admin-stations"),
    path("stations/new/", town_admin_stations.station_new, name="town-admin-station-new"),
    # "<code>/edit/", so no station code ("new" is a valid one) can shadow the add page.
    path("stations/<str:code>/edit/", town_admin_stations.station_edit, name="town-admin-station-edit"),
]
