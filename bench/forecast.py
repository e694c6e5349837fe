"""Forecast benchmarks (docs/performance.md, "Forecasts"). Prints figures; asserts nothing.

    .venv/bin/python bench/forecast.py               # embedded default (SQLite)
    DATABASE_URL=postgres://... .venv/bin/python bench/forecast.py

1. Skill on held-out demo storms: the demo basin's weather (dashboard/demo/weather.py) is run from
   the start of its 60-day history through the current (design) storm and HELD_OUT_LATER of the
   storms `simulate_storm --loop` brings after it. Each gauge's model is trained only on readings
   before the fourth past storm; the fourth and fifth past storms, the design storm and the later
   ones are held out. Scored by forecasts.backtest (no look-ahead) against persistence and the
   linear trend, over the whole held-out span and over the storms alone (48 h from each start,
   24 h for the daily later storms) — once without and once with forecast rain (hourly issues of
   the next 6 hours at each rain gauge: what the simulation will rain, times a log-normal error of
   FORECAST_RAIN_ERROR per issue; a forecast that knows the timing but not the amount).
2. Training time for every demo gauge (forecasts.learn.fit on 60 days of 10-minute readings).
3. One refresh (forecasts.services.forecasts_refresh) of 300 gauges with stored models.

Runs in a throw-away test database created the way the test suite creates it.
"""

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.db import connection  # noqa: E402

ANCHOR = datetime(2026, 11, 20, tzinfo=UTC)
REFRESH_GAUGES = 300
STORM_SPAN = timedelta(hours=48)
HELD_OUT_LATER = 12
FORECAST_RAIN_ERROR = 0.3


def simulate(weather, end):
    from dashboard.demo.hydrology import BasinRun
    from forecasts.learn import Series

    run = BasinRun(weather.storms_until, weather.history_start)
    pairs = {}
    for snapshot in run.run_until(end):
        t = snapshot.at.timestamp()
        for code, value in snapshot.values.items():
            if value is not None:
                pairs.setdefault(code, []).append((t, value))
    return {code: Series.of(values) for code, values in pairs.items()}


def f3(value) -> str:
    return "   —" if value is None or value != value else f"{value:.3f}"


def rain_forecasts(series, seed=13, every=6, horizon=36):
    """Per rain gauge: hourly issues of the next 6 hours, the simulated rain times a log-normal error."""
    from forecasts.learn import RainForecasts

    rng = np.random.default_rng(seed)
    result = {}
    for code, rain in series.items():
        if "-P" not in code:
            continue
        rows = []
        for k in range(0, len(rain.times) - 1, every):
            factor = float(np.exp(rng.normal(0, FORECAST_RAIN_ERROR)))
            rows += [(rain.times[k], rain.times[k + h], rain.values[k + h] * factor)
                     for h in range(1, horizon + 1) if k + h < len(rain.times)]
        result[code] = RainForecasts.of(rows)
    return result


def skill(stations, series, weather, forecasts=None):
    from dashboard.demo import region
    from forecasts import backtest, learn
    from forecasts.predict import ThresholdLine
    from forecasts.selectors import forecast_inputs

    later = [weather.later_storm(n) for n in range(1, HELD_OUT_LATER + 1)]
    held_out = list(weather.past_storms[3:]) + [weather.current_storm] + later
    since = (weather.past_storms[3].start - timedelta(days=1)).timestamp()
    until = (later[-1].start + timedelta(hours=18)).timestamp()
    storm_windows = [(s.start.timestamp(), (s.start + STORM_SPAN).timestamp()) for s in held_out[:3]]
    storm_windows += [(s.start.timestamp(), (s.start + timedelta(hours=24)).timestamp()) for s in later]
    print("with forecast rain" if forecasts else "without forecast rain")
    print(f"held out: storms starting {', '.join(s.start.strftime('%m-%d %H:%M') for s in held_out)} (scales "
          f"{', '.join(f'{s.scale:.2f}' for s in held_out)}); trained on readings before {datetime.fromtimestamp(since, UTC):%m-%d}")
    print(f"{'gauge':8} {'NSE 1h':>7} {'3h':>6} | storms: {'model 1h':>8} {'3h':>6} {'pers 3h':>7} {'trend 3h':>8} | "
          f"氾濫危険水位 hits/miss/false, lead")
    danger_totals = {"crossings": 0, "early": 0, "hits": 0, "false_alarms": 0}
    by_level = {}
    for spec in region.STATIONS:
        if spec.kind != "river" or spec.code not in series:
            continue
        station = stations[spec.code]
        codes = forecast_inputs(station).as_json()
        inputs = learn.Inputs(series[spec.code], [series[c] for c in codes["upstream"] if c in series],
                              [series[c] for c in codes["rain"] if c in series],
                              [forecasts[c] for c in codes["rain"] if c in (forecasts or {})],
                              [series[c] for c in codes.get("tide", []) if c in series])
        thresholds = [ThresholdLine(t.name, t.label_ja, t.label_en, t.level, t.value) for t in spec.thresholds]
        report = backtest.backtest(inputs, 600.0, thresholds, since=since, until=until)
        model, issue, level, predicted, observed = backtest.predictions(inputs, 600.0, since=since, until=until)
        in_storm = np.zeros(len(issue), dtype=bool)
        for start, end in storm_windows:
            in_storm |= (issue >= start) & (issue <= end)

        def nse(method, lead):
            return learn.skill_scores(observed[in_storm, lead], predicted[method][in_storm, lead])["nse"]

        def rmse(method, lead):
            return learn.skill_scores(observed[in_storm, lead], predicted[method][in_storm, lead])["rmse"] or np.inf

        # Leads (of 36) at which the model does no better than persistence or the trend on the storms.
        worse = [h + 1 for h in range(observed.shape[1]) if rmse("model", h) >= min(rmse("persistence", h), rmse("trend", h))]

        danger = next((t for t in report["thresholds"] if t["level"] == 4), None)
        text = "—"
        if danger:
            d = danger["model"]
            text = f"{d['hits']}/{d['misses']}/{d['false_alarms']}, {d['median_lead_minutes'] or 0:.0f} min"
            danger_totals["crossings"] += d["crossings"]
            danger_totals["hits"] += d["hits"]
            danger_totals["false_alarms"] += d["false_alarms"]
            warn = backtest._warnings(level, predicted["model"], 600.0, danger["value"])  # noqa: SLF001
            own = inputs.own
            crossed = np.flatnonzero((own.values[1:] >= danger["value"]) & (own.values[:-1] < danger["value"])) + 1
            for index in crossed:
                tc = own.times[index]
                if not (issue[0] < tc <= issue[-1]):
                    continue
                window = (issue >= tc - 3 * 3600) & (issue < tc) & warn
                if window.any() and tc - issue[window].min() >= 1800:
                    danger_totals["early"] += 1
        steps = report["steps"]
        print(f"{spec.code:8} {f3(steps[5]['model']['nse']):>7} {f3(steps[17]['model']['nse']):>6} | storms: "
              f"{f3(nse('model', 5)):>8} {f3(nse('model', 17)):>6} {f3(nse('persistence', 17)):>7} {f3(nse('trend', 17)):>8} "
              f"6h {f3(nse('model', 35)):>6} | {text} | not better at steps {worse or '—'}")
        for t in report["thresholds"]:
            totals = by_level.setdefault(t["level"], {"crossings": 0, "hits": 0, "false_alarms": 0, "leads": []})
            for key in ("crossings", "hits", "false_alarms"):
                totals[key] += t["model"][key]
            if t["model"]["median_lead_minutes"] is not None:
                totals["leads"].append(t["model"]["median_lead_minutes"])
    for level, totals in sorted(by_level.items()):
        print(f"level-{level} thresholds, all river gauges: {totals['crossings']} crossings, {totals['hits']} warned "
              f"(within 3 h), {totals['false_alarms']} false-alarm episodes, median of gauges' median leads "
              f"{np.median(totals['leads']) if totals['leads'] else float('nan'):.0f} min")
    c = danger_totals
    print(f"氾濫危険水位 crossings: {c['crossings']}, detected ≥ 30 min ahead: {c['early']}, "
          f"false alarms: {c['false_alarms']} (of {c['hits'] + c['false_alarms']} warning episodes)")


def training_time(stations, series, forecasts, weather_anchor):
    from dashboard.demo import region
    from forecasts import learn
    from forecasts.selectors import forecast_inputs

    wall, cpu = time.perf_counter(), time.process_time()
    models = {}
    for spec in region.STATIONS:
        if spec.kind not in ("river", "reservoir") or spec.code not in series:
            continue
        codes = forecast_inputs(stations[spec.code]).as_json()
        inputs = learn.Inputs(series[spec.code], [series[c] for c in codes["upstream"] if c in series],
                              [series[c] for c in codes["rain"] if c in series],
                              [forecasts[c] for c in codes["rain"] if c in forecasts],
                              [series[c] for c in codes.get("tide", []) if c in series])
        own = series[spec.code].until(weather_anchor)
        models[spec.code] = learn.fit(inputs, 600.0, since=own.times[0], until=own.times[-1])
    print(f"training {len(models)} demo gauges (60 days each, with forecast rain: two models each): "
          f"{time.perf_counter() - wall:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU; {sum(m is None for m in models.values())} fell back to the trend")
    return models


def refresh_300(model):
    """300 gauges in one town, each with one upstream gauge and one rain gauge, 8 hours of readings."""
    from forecasts.models import ForecastModel, Method
    from forecasts.services import forecasts_refresh
    from sensors.models import Observation, Station, StationState
    from tenancy.models import Municipality

    town = Municipality.objects.create(code="990094", slug="bench-forecast", name_ja="ベンチ町", name_en="Bench Town")
    gauges = Station.objects.bulk_create(
        Station(code=f"F{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind=kind, municipality=town,
                lon=140 + i / 1000, lat=35, unit="mm" if kind == "rain" else "m", visibility="public")
        for i, kind in enumerate(["river"] * REFRESH_GAUGES + ["river", "rain"])
    )
    upstream, rain = gauges[-2], gauges[-1]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    times = [now - timedelta(minutes=10 * k) for k in range(48, 0, -1)]
    Observation.objects.bulk_create(
        Observation(station=g, observed_at=t, value=1.0 + 0.01 * k if g.kind == "river" else 0.5, received_at=now, source="import")
        for g in gauges for k, t in enumerate(times)
    )
    StationState.objects.bulk_create(StationState(station=g, value=1.0, observed_at=times[-1]) for g in gauges)
    params = model.as_json()
    ForecastModel.objects.bulk_create(
        ForecastModel(station=g, version=1, method=Method.ARX, trained_at=now, step_seconds=600,
                      inputs={"upstream": [upstream.code], "rain": [rain.code]}, params=params, skill=model.skill)
        for g in gauges[:REFRESH_GAUGES]
    )
    ids = [g.pk for g in gauges[:REFRESH_GAUGES]]
    for label in ("first", "second"):
        wall, cpu = time.perf_counter(), time.process_time()
        stored = forecasts_refresh(ids)
        print(f"refresh of {REFRESH_GAUGES} gauges ({label} run, {connection.vendor}): {time.perf_counter() - wall:.2f} s wall, "
              f"{time.process_time() - cpu:.2f} s CPU, {len(stored)} forecasts stored")


def main():
    from dashboard.demo.seed import demo_seed
    from dashboard.demo.weather import Weather
    from forecasts import learn

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        summary = demo_seed(history=False)
        weather = Weather(anchor=ANCHOR)
        started = time.perf_counter()
        series = simulate(weather, weather.later_storm(HELD_OUT_LATER).start + timedelta(hours=24))
        print(f"simulated the demo basin ({len(series)} stations) in {time.perf_counter() - started:.1f} s")
        skill(summary.stations, series, weather)
        forecasts = rain_forecasts(series)
        skill(summary.stations, series, weather, forecasts)
        models = training_time(summary.stations, series, forecasts, weather.anchor.timestamp())
        # A model with one upstream gauge and one rain gauge, for the refresh benchmark.
        inputs = learn.Inputs(series["KWS-R05"], [series["KWS-R04"]], [series["KWS-P05"]])
        one_one = learn.fit(inputs, 600.0, since=inputs.own.times[0], until=inputs.own.times[-1])
        del models
        refresh_300(one_one)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
