"""The HQ page of a gauge's backtest: the same table as `manage.py forecast_backtest`."""

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import render

from sensors.models import Station
from sensors.selectors import station_get
from tenancy.selectors import viewer_for_request

from .backtest import table_steps
from .selectors import FORECAST_KINDS, active_models
from .services import station_backtest

CACHE_SECONDS = 600  # a backtest trains a model: seconds of CPU, not per page view


@login_required
def backtest_page(request, code: str):
    try:
        station = station_get(viewer=viewer_for_request(request), code=code)
    except Station.DoesNotExist:
        raise Http404("No such station.") from None
    if station.kind not in FORECAST_KINDS:
        raise Http404("No forecast for this station.")
    model = active_models([station.pk]).get(station.pk)
    key = f"forecast-backtest:{station.pk}:{model.pk if model else 0}"
    report = cache.get(key)
    if report is None:
        try:
            report = station_backtest(station)
        except ValueError:
            report = None
        cache.set(key, report, CACHE_SECONDS)
    steps = table_steps(report or {})
    return render(
        request,
        "forecasts/backtest.html",
        {"station": station, "report": report, "steps": steps, "model": model, "methods": ("model", "persistence", "trend")},
    )
