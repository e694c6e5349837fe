"""The forecast as the station page draws it: a band (80 %) and a dashed median after "now",
added to the chart JSON that static/mizumori/station.js draws, and the crossing text.

Shown to town staff only: on the public pages a predicted time could be read as an order or as
fact (docs/api.md, "Forecasts"). The API serves it, with its notice, to whoever may see the gauge."""

from __future__ import annotations

from .api import forecast_json
from .selectors import forecasts_for_stations

BAND_FILL = "rgba(106, 27, 154, 0.16)"
FORECAST_COLOUR = "#6a1b9a"


def station_page_forecast(station, chart: dict, viewer) -> dict | None:
    """Extend `chart` (the hydrograph / storage chart of a station the viewer may see) with the
    forecast, and return the forecast document for the page's text; None when there is none to show."""
    if viewer.is_anonymous or chart.get("chart") not in ("hydrograph", "storage"):
        return None
    forecast = forecasts_for_stations([station.pk]).get(station.pk)
    if forecast is None or not forecast.points:
        return None
    document = forecast_json(station, forecast)
    times = [point[0] for point in forecast.points]
    existing = len(chart["x"])
    start = forecast.based_on.timestamp()
    last_value = None
    if existing and chart["series"][0]["values"][-1] is not None:
        last_value = chart["series"][0]["values"][-1]
    if not existing or times[0] <= chart["x"][-1]:
        return document
    # The band starts at the last reading, so it joins the observed line.
    anchor = [None] * existing
    if last_value is not None and chart["x"][-1] == start:
        anchor[-1] = last_value
    chart["x"] = chart["x"] + times
    for series in chart["series"]:
        series["values"] = series["values"] + [None] * len(times)
    scale = chart["series"][0]["scale"]
    for key, index, label_ja, label_en in (
        ("forecast_upper", 3, "予測 上限(90%)", "Forecast upper (90 %)"),
        ("forecast_lower", 2, "予測 下限(10%)", "Forecast lower (10 %)"),
        ("forecast_median", 1, "予測 中央値", "Forecast median"),
    ):
        chart["series"].append(
            {
                "key": key, "type": "line", "scale": scale, "colour": FORECAST_COLOUR,
                "label_ja": label_ja, "label_en": label_en,
                "values": anchor + [point[index] for point in forecast.points],
                "dash": [6, 4] if key == "forecast_median" else [],
                "width": 2 if key == "forecast_median" else 1,
            }
        )
    upper = len(chart["series"]) - 2  # uPlot numbers series from 1 (0 is x)
    chart["bands"] = [{"series": [upper, upper + 1], "fill": BAND_FILL}]
    chart["x_range"][1] = max(chart["x_range"][1], times[-1])
    return document
