from django.urls import path

from . import views

urlpatterns = [
    path("overview/", views.overview_fragment, name="hq-overview"),
    path("timeline/", views.timeline_page, name="hq-timeline"),
    path("reports/situation/", views.report_page, name="hq-report"),
    path("reports/situation.pdf", views.report_pdf, name="hq-report-pdf"),
]
