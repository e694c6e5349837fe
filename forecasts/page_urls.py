from django.urls import path

from . import views

urlpatterns = [
    path("<str:code>/", views.backtest_page, name="forecast-backtest"),
]
