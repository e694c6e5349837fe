from django.urls import path, re_path

from . import api

# Mounted at /ngsi/ (config/urls.py): Orion's paths below it, so NGSI clients take /ngsi as the broker URL.
urlpatterns = [
    path("version", api.VersionAPI.as_view(), name="ngsi-version"),
    path("v2", api.ResourcesAPI.as_view(), name="ngsi-resources"),
    path("v2/entities", api.EntityListAPI.as_view(), name="ngsi-entities"),
    path("v2/entities/", api.EntityListSlashAPI.as_view()),
    path("v2/entities/<str:entity_id>", api.EntityAPI.as_view(), name="ngsi-entity"),
    path("v2/entities/<str:entity_id>/attrs", api.EntityAttrsAPI.as_view(), name="ngsi-entity-attrs"),
    path("v2/entities/<str:entity_id>/attrs/<str:attr_name>", api.AttributeAPI.as_view(), name="ngsi-entity-attr"),
    path(
        "v2/entities/<str:entity_id>/attrs/<str:attr_name>/value",
        api.AttributeValueAPI.as_view(),
        name="ngsi-entity-attr-value",
    ),
    path("v2/op/update", api.BatchUpdateAPI.as_view(), name="ngsi-op-update"),
    path("v2/op/query", api.BatchQueryAPI.as_view(), name="ngsi-op-query"),
    path("v2/op/notify", api.OpNotifyAPI.as_view(), name="ngsi-op-notify"),
    path("v2/types", api.TypeListAPI.as_view(), name="ngsi-types"),
    path("v2/types/", api.TypeListSlashAPI.as_view()),
    path("v2/types/<str:entity_type>", api.TypeAPI.as_view(), name="ngsi-type"),
    path("v2/subscriptions", api.SubscriptionListAPI.as_view(), name="ngsi-subscriptions"),
    path("v2/subscriptions/", api.SubscriptionListSlashAPI.as_view()),
    path("v2/subscriptions/<str:subscription_id>", api.SubscriptionAPI.as_view(), name="ngsi-subscription"),
    path("v2/registrations", api.RegistrationListAPI.as_view(), name="ngsi-registrations"),
    path("v2/registrations/", api.RegistrationListSlashAPI.as_view()),
    path("v2/registrations/<str:registration_id>", api.RegistrationAPI.as_view(), name="ngsi-registration"),
    path("notify", api.NotifyAPI.as_view(), name="ngsi-notify"),
    re_path(r"^.*$", api.service_not_found),
]
