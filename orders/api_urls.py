from django.urls import path

from . import api

urlpatterns = [
    path("districts", api.DistrictListAPI.as_view(), name="api-districts"),
    path("orders", api.OrderListAPI.as_view(), name="api-orders"),
    path("orders/<int:order_id>/change", api.OrderChangeAPI.as_view(), name="api-order-change"),
    path("orders/<int:order_id>/lift", api.OrderLiftAPI.as_view(), name="api-order-lift"),
    path("orders/<int:order_id>/cap", api.OrderCapAPI.as_view(), name="api-order-cap"),
    path("order-drafts", api.OrderDraftListAPI.as_view(), name="api-order-drafts"),
    path("order-drafts/<int:draft_id>/confirm", api.OrderDraftConfirmAPI.as_view(), name="api-order-draft-confirm"),
    path("order-drafts/<int:draft_id>/withdraw", api.OrderDraftWithdrawAPI.as_view(), name="api-order-draft-withdraw"),
    path("recommendations", api.RecommendationListAPI.as_view(), name="api-recommendations"),
    path(
        "recommendations/<int:recommendation_id>/issue", api.RecommendationIssueAPI.as_view(), name="api-recommendation-issue"
    ),
    path(
        "recommendations/<int:recommendation_id>/dismiss",
        api.RecommendationDismissAPI.as_view(),
        name="api-recommendation-dismiss",
    ),
]
