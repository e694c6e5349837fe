"""Writes of forecasts: training a gauge's model (a new version each time) and refreshing the
stored forecasts of the gauges whose inputs changed (from the change-log drain)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from sensors.models import Station

from . import learn, predict
from .models import ForecastModel, Method, StationForecast
from .selectors import FORECAST_KINDS, active_models, forecast_inputs, newest_models, rain_forecasts_of, readings_of

logger = logging.getLogger(__name__)

TRAINING_WINDOW = timedelta(days=90)
# A retrain is due after this many new readings of the gauge (a day of 10-minute readings) ...
RETRAIN_AFTER_READINGS = 144
# ... or when the model is this old.
RETRAIN_AFTER = timedelta(days=1)
# A forecast starts only from a reading this fresh relative to the newest reading of the batch:
# at most STALE_STEPS of the gauge's own steps (or STALE_AFTER, whichever is longer) behind.
STALE_STEPS = 3
STALE_AFTER = timedelta(minutes=30)
KEEP_VERSIONS = 10  # older versions of a gauge's model are deleted on retraining


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class GaugeData:
    station: Station
    inputs: learn.Inputs
    step: float


def gauge_data(station: Station, codes: dict, *, since=None, until=None) -> GaugeData:
    """The readings a gauge's model reads, for the input stations named in `codes`."""
    wanted = codes.get("upstream", []) + codes.get("rain", []) + codes.get("tide", [])
    by_code = {s.code: s for s in Station.objects.filter(code__in=wanted)}
    upstream = [by_code[c] for c in codes.get("upstream", []) if c in by_code]
    rain = [by_code[c] for c in codes.get("rain", []) if c in by_code]
    tide = [by_code[c] for c in codes.get("tide", []) if c in by_code]
    series = readings_of([station.pk] + [s.pk for s in upstream + rain + tide], since=since, until=until)
    forecasts = rain_forecasts_of([s.pk for s in rain], since=since, until=until)
    own = series[station.pk]
    inputs = learn.Inputs(
        own, [series[s.pk] for s in upstream], [series[s.pk] for s in rain], [forecasts[s.pk] for s in rain],
        [series[s.pk] for s in tide],
    )
    return GaugeData(station, inputs, predict.step_of(station, own))


def forecast_train(station: Station, *, until: datetime | None = None, window: timedelta = TRAINING_WINDOW) -> ForecastModel:
    """Train a new version of the gauge's model on its history up to `until` (default: all of it).
    Too little history gives a `trend` version, which says so."""
    inputs = forecast_inputs(station)
    codes = inputs.as_json()
    until = until or timezone.now()
    data = gauge_data(station, codes, since=until - window, until=until)
    own = data.inputs.own
    model = None
    if len(own.times):
        model = learn.fit(data.inputs, data.step, since=float(own.times[0]), until=float(own.times[-1]))
    with transaction.atomic():
        version = (ForecastModel.objects.filter(station=station).aggregate(v=Max("version"))["v"] or 0) + 1
        record = ForecastModel(
            station=station,
            version=version,
            trained_at=timezone.now(),
            step_seconds=round(data.step),
            readings_at_training=station.observations.count(),
            inputs=codes,
        )
        if model is None:
            record.method = Method.TREND
            record.note = (
                f"{len(own.times)} readings: too little history for a learned model "
                f"(needs {learn.MIN_TRAINING_ROWS} complete rows); straight-line trend of the last hour instead."
            )
        else:
            record.method = Method.ARX
            record.train_since, record.train_until = _utc(own.times[0]), _utc(own.times[-1])
            record.params = model.as_params()
            record.skill = model.skill
            record.note = f"{model.rows} training rows, {len(codes['upstream'])} upstream gauges, {len(codes['rain'])} rain gauges."
            if model.forecast_rain_model is not None:
                record.note += f" A second model also reads forecast rain ({model.forecast_rain_model.rows} rows with an issue)."
        record.save()
        stale = ForecastModel.objects.filter(station=station, version__lte=version - KEEP_VERSIONS)
        stale.delete()
    return record


def forecast_train_many(stations=None) -> list[ForecastModel]:
    stations = stations if stations is not None else Station.objects.filter(is_active=True, kind__in=FORECAST_KINDS)
    trained = [forecast_train(station) for station in stations]
    forecasts_refresh([model.station_id for model in trained])
    return trained


def forecasts_retrain_due(*, now: datetime | None = None) -> list[ForecastModel]:
    """Retrain every gauge whose model is missing, old, cannot be decoded, or behind by enough new
    readings (periodic)."""
    now = now or timezone.now()
    stations = list(Station.objects.filter(is_active=True, kind__in=FORECAST_KINDS))
    models = active_models([s.pk for s in stations])
    due = []
    for station in stations:
        model = models.get(station.pk)
        if (
            model is None
            or (model.method == Method.ARX and model.params.get("features_version", 1) != learn.FEATURES_VERSION)
            or (model.method == Method.ARX and _arx_of(model) is None)
            or now - model.trained_at >= RETRAIN_AFTER
            or station.observations.count() - model.readings_at_training >= RETRAIN_AFTER_READINGS
        ):
            due.append(station)
    return forecast_train_many(due) if due else []


def _input_codes(model: ForecastModel) -> list[str]:
    return model.inputs.get("upstream", []) + model.inputs.get("rain", []) + model.inputs.get("tide", [])


def forecasts_refresh(changed_station_ids, *, dependants: bool = True) -> list[StationForecast]:
    """Recompute the forecasts of the gauges among `changed_station_ids` and (unless `dependants`
    is false) of every gauge whose model reads one of them; one query for all their recent readings."""
    changed = set(changed_station_ids)
    if not changed:
        return []
    candidates = list(newest_models().filter(station__is_active=True).only("pk", "station_id", "inputs"))
    if not candidates:
        return []  # no gauge has a model: nothing to refresh, and no more queries for the batch
    codes_changed = set(Station.objects.filter(pk__in=changed).values_list("code", flat=True))
    target_ids = [
        model.pk
        for model in candidates
        if model.station_id in changed
        or dependants and codes_changed.intersection(_input_codes(model))
    ]
    # Coefficients and skill are loaded only for versions this process has not decoded yet (_arx_of).
    targets = list(ForecastModel.objects.filter(pk__in=target_ids).defer("params", "skill"))
    if not targets:
        return []
    input_codes = {code for model in targets for code in _input_codes(model)}
    stations_by_code = {s.code: s for s in Station.objects.filter(code__in=input_codes)}
    latest = dict(
        Station.objects.filter(pk__in=[m.station_id for m in targets] + [s.pk for s in stations_by_code.values()])
        .exclude(state__observed_at=None)
        .values_list("pk", "state__observed_at")
    )
    # Back far enough for every input of the forecasts at the last WARNING_PERSISTENCE readings:
    # levels over the longest lag, rain over the longest total (the antecedent 24 h of an extended model).
    step = max(m.step_seconds for m in targets)
    level_lookback = timedelta(seconds=(max(learn.OWN_LAGS) + learn.WARNING_PERSISTENCE) * step * 2)
    rain_lookback = timedelta(seconds=max(learn.RAIN_WINDOWS + learn.ANTECEDENT_WINDOWS) + learn.WARNING_PERSISTENCE * step * 2)

    def is_fresh(model) -> bool:
        """A gauge that has fallen silent while its inputs report gets no forecast: one starting
        from its last reading would predict a past nobody can check against the present."""
        own = latest.get(model.station_id)
        if own is None:
            return False
        codes = model.inputs.get("upstream", []) + model.inputs.get("rain", [])
        newest = max([own] + [latest[stations_by_code[c].pk] for c in codes if c in stations_by_code and stations_by_code[c].pk in latest])
        return newest - own <= max(STALE_STEPS * timedelta(seconds=model.step_seconds), STALE_AFTER)

    fresh = [m for m in targets if is_fresh(m)]
    if not fresh:
        StationForecast.objects.filter(station_id__in=[m.station_id for m in targets]).delete()
        return []
    oldest = min(latest[m.station_id] for m in fresh)
    rain_ids = {stations_by_code[c].pk for m in fresh for c in m.inputs.get("rain", []) if c in stations_by_code}
    level_ids = ({m.station_id for m in fresh} | {s.pk for s in stations_by_code.values()}) - rain_ids
    series = readings_of(level_ids, since=oldest - level_lookback) | readings_of(rain_ids, since=oldest - rain_lookback)
    # Only issues recent enough to serve the forecast times (learn.FORECAST_RAIN_MAX_AGE).
    forecasts = rain_forecasts_of(rain_ids, since=oldest - learn.WARNING_PERSISTENCE * timedelta(seconds=step))
    _arx_load([m for m in fresh if m.method == Method.ARX])
    thresholds = _thresholds_of([m.station_id for m in fresh])
    now = timezone.now()
    results = []
    for model in fresh:
        upstream = [series[stations_by_code[c].pk] for c in model.inputs.get("upstream", []) if c in stations_by_code]
        rain_stations = [stations_by_code[c].pk for c in model.inputs.get("rain", []) if c in stations_by_code]
        tide = [series[stations_by_code[c].pk] for c in model.inputs.get("tide", []) if c in stations_by_code]
        inputs = learn.Inputs(series[model.station_id], upstream, [series[pk] for pk in rain_stations],
                              [forecasts[pk] for pk in rain_stations], tide)
        result = forecast_compute(model, inputs, at=latest[model.station_id].timestamp(), thresholds=thresholds.get(model.station_id, []))
        results.append((model, result))
    stored = [
        StationForecast(
            station_id=model.station_id,
            model=model,
            method=result.method,
            issued_at=now,
            based_on=_utc(result.based_on),
            step_seconds=model.step_seconds,
            level_now=result.level_now,
            forecast_rain=result.forecast_rain,
            points=[[round(v, 4) if i else v for i, v in enumerate(p)] for p in result.points],
            crossing=result.crossing,
            danger_probability_1h=result.danger_probability_1h,
            exceedance=result.exceedance_by_threshold,
        )
        for model, result in results
        if result is not None
    ]
    # Replaced as a set: one DELETE and one INSERT for the batch, not a round trip per gauge.
    with transaction.atomic():
        StationForecast.objects.filter(station_id__in=[m.station_id for m in targets]).delete()
        StationForecast.objects.bulk_create(stored)
    return stored


def forecast_current(station: Station) -> StationForecast | None:
    """The gauge's stored forecast, brought up to its newest reading first when it is behind: the
    change-log handlers run in no fixed order, so a reader acting on the same batch (the trigger
    rules) must not act on the forecast of the reading before."""
    forecast = StationForecast.objects.filter(station=station).first()
    state = getattr(station, "state", None)
    observed_at = state.observed_at if state is not None else None
    if observed_at is not None and (forecast is None or forecast.based_on < observed_at):
        forecasts_refresh([station.pk], dependants=False)
        forecast = StationForecast.objects.filter(station=station).first()
    return forecast


_LOADED: dict[tuple, learn.ArxModel | None] = {}
LOADED_MAX = 2000


def _arx_key(model: ForecastModel) -> tuple:
    # More than the id: a rolled-back transaction (tests) can hand an id out again.
    return (model.pk, model.station_id, model.version, model.trained_at)


def _arx_load(models: list[ForecastModel]) -> None:
    """Decode the versions this process has not decoded yet, their coefficients and skill read in one query."""
    missing = {model.pk: model for model in models if _arx_key(model) not in _LOADED}
    if missing:
        for pk, params, skill in ForecastModel.objects.filter(pk__in=list(missing)).values_list("pk", "params", "skill"):
            missing[pk].params, missing[pk].skill = params, skill
            _arx_of(missing[pk])


def _arx_of(model: ForecastModel) -> learn.ArxModel | None:
    """The learned model of a stored version, decoded once per process (versions never change);
    None for a version that cannot be decoded. One damaged version must not stop the refresh of the
    batch's other gauges (it would fail every batch until someone noticed): its gauge gets the
    labelled trend, and the error is logged once per process, until the version is retrained."""
    key = _arx_key(model)
    if key not in _LOADED:
        if len(_LOADED) >= LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        try:
            _LOADED[key] = learn.ArxModel.from_params(model.params, model.skill)
        except (ValueError, KeyError, TypeError) as error:
            logger.error(
                "forecast model %s (station %s, version %s) cannot be decoded: %s; its gauge gets the trend forecast until it is retrained",
                model.pk, model.station_id, model.version, error,
            )
            _LOADED[key] = None
    return _LOADED[key]


def forecast_compute(model: ForecastModel, inputs: learn.Inputs, *, at: float, thresholds) -> predict.Result | None:
    """The forecast of a stored model version at `at`, from readings at or before `at` only."""
    result = None
    arx = _arx_of(model) if model.method == Method.ARX else None
    if arx is not None and arx.current:
        # The model that reads forecast rain where a current issue covers its windows, the other one
        # elsewhere; each only out to the leads whose skill beats persistence.
        result = predict.model_forecast(arx, inputs, at)
    if result is None:
        # No learned model, no shown horizon, or an input missing now: the labelled fallback.
        result = predict.trend_forecast(inputs.own, at, model.step_seconds)
    return predict.annotate(result, thresholds) if result else None


def _thresholds_of(station_ids) -> dict[int, list[predict.ThresholdLine]]:
    from sensors.models import Threshold

    lines: dict[int, list[predict.ThresholdLine]] = {}
    for threshold in Threshold.objects.filter(station_id__in=station_ids, window__isnull=True):
        lines.setdefault(threshold.station_id, []).append(
            predict.ThresholdLine(threshold.name, threshold.label_ja, threshold.label_en, threshold.level, threshold.value)
        )
    return lines


def forecast_at(station: Station, at: datetime) -> predict.Result | None:
    """The forecast the station's current model would have issued at `at` (a reading time), from
    the readings stored up to `at` only: what the no-look-ahead tests and the backtest rely on."""
    model = active_models([station.pk]).get(station.pk)
    if model is None:
        return None
    # Readings after `at` are loaded too: the computation itself must not look at them.
    data = gauge_data(station, model.inputs, since=at - timedelta(days=2), until=at + timedelta(days=1))
    return forecast_compute(model, data.inputs, at=at.timestamp(), thresholds=_thresholds_of([station.pk]).get(station.pk, []))


def station_backtest(station: Station, *, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Backtest a gauge over [since, until] (default: the last quarter of its history), training on
    readings before `since` only (see forecasts.backtest)."""
    from . import backtest

    if since and until and since >= until:
        raise ValueError("'since' must be before 'until'.")
    codes = forecast_inputs(station).as_json()
    data = gauge_data(station, codes, until=until + timedelta(hours=6) if until else None)
    own = data.inputs.own
    if not len(own.times):
        raise ValueError(f"{station.code} has no readings to backtest.")
    start, end = backtest.default_window(own)
    start = since.timestamp() if since else start
    end = until.timestamp() if until else end
    if start >= end:
        raise ValueError("'since' must be before 'until'.")
    report = backtest.backtest(data.inputs, data.step, _thresholds_of([station.pk]).get(station.pk, []), since=start, until=end)
    return {
        "station": station.code,
        "since": _utc(start).isoformat(),
        "until": _utc(end).isoformat(),
        "step_minutes": data.step / 60,
        "inputs": codes,
        **{key: value for key, value in report.items() if key != "trained_on_readings_before"},
    }


# --- forecast rain, as a source posts it ------------------------------------------------------------

RAIN_FORECAST_POSTED = "forecasts.rain_forecast_posted"
MAX_RAIN_FORECASTS = 200  # issues (gauges) per request
MAX_RAIN_FORECAST_VALUES = 15 * 6  # intervals per issue: 15 hours of 10-minute amounts
RAIN_FORECAST_HORIZON = timedelta(hours=15)
RAIN_FORECAST_MAX_AGE = timedelta(days=2)  # an issue older than this is history, not a forecast to post
MAX_TIME_TEXT = 40


class RainForecastError(ValueError):
    """The document is refused as a whole (nothing stored); `errors` say what is wrong, and where."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['where']}: {e['error']}" for e in errors))
        self.errors = errors


def _forecast_time(raw, where: str, errors: list[dict]) -> datetime | None:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TIME_TEXT:
        errors.append({"where": where, "error": "must be an ISO 8601 time with a UTC offset"})
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        errors.append({"where": where, "error": "is not an ISO 8601 time"})
        return None
    if parsed.utcoffset() is None:
        errors.append({"where": where, "error": "has no UTC offset (add e.g. +09:00 or Z)"})
        return None
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        errors.append({"where": where, "error": "is outside the representable range of times"})
        return None


def rain_forecasts_store(*, municipality, document, now: datetime | None = None) -> dict:
    """Store forecast rain posted by a town's gateway for the town's own rain gauges:
    `{"forecasts": [{"station", "issued_at", "values": [{"valid_at", "value"}, ...]}, ...]}`, each
    value the mm forecast to fall since the previous `valid_at` (or `issued_at`). All or nothing: a
    RainForecastError lists every problem with its place. Re-posting an issue replaces it. The
    gauges whose models read these rain gauges are re-forecast from the change log."""
    from sensors.models import PHYSICAL_LIMITS, StationKind
    from sensors.services import ItemError, parse_station_code, parse_value

    from .models import RainForecast

    now = now or timezone.now()
    if not isinstance(document, dict) or not isinstance(document.get("forecasts"), list) or not document["forecasts"]:
        raise RainForecastError([{"where": "forecasts", "error": "must be a non-empty list"}])
    issues = document["forecasts"]
    if len(issues) > MAX_RAIN_FORECASTS:
        raise RainForecastError([{"where": "forecasts", "error": f"at most {MAX_RAIN_FORECASTS} per request"}])
    errors: list[dict] = []
    parsed, claimed = [], []
    for i, issue in enumerate(issues):
        where = f"forecasts[{i}]"
        if not isinstance(issue, dict):
            errors.append({"where": where, "error": "must be an object"})
            continue
        try:
            code = parse_station_code(issue.get("station"))
        except ItemError as error:
            errors.append({"where": f"{where}.station", "error": str(error)})
            code = None
        claimed.append((i, code))
        issued_at = _forecast_time(issue.get("issued_at"), f"{where}.issued_at", errors)
        if issued_at is not None and issued_at > now + timedelta(seconds=300):
            errors.append({"where": f"{where}.issued_at", "error": "is in the future"})
        if issued_at is not None and issued_at < now - RAIN_FORECAST_MAX_AGE:
            errors.append({"where": f"{where}.issued_at", "error": f"is older than {RAIN_FORECAST_MAX_AGE.days} days"})
        values = issue.get("values")
        if not isinstance(values, list) or not values:
            errors.append({"where": f"{where}.values", "error": "must be a non-empty list"})
            continue
        if len(values) > MAX_RAIN_FORECAST_VALUES:
            errors.append({"where": f"{where}.values", "error": f"at most {MAX_RAIN_FORECAST_VALUES} intervals per issue"})
            continue
        intervals, previous = [], issued_at
        low, high = PHYSICAL_LIMITS[StationKind.RAIN]
        for j, item in enumerate(values):
            at = f"{where}.values[{j}]"
            if not isinstance(item, dict):
                errors.append({"where": at, "error": "must be an object with 'valid_at' and 'value'"})
                continue
            valid_at = _forecast_time(item.get("valid_at"), f"{at}.valid_at", errors)
            try:
                value = parse_value(item.get("value"))
            except ItemError as error:
                errors.append({"where": f"{at}.value", "error": str(error)})
                value = None
            if value is not None and not low <= value <= high:
                errors.append({"where": f"{at}.value", "error": f"{value} mm is outside {low:g}–{high:g} mm"})
            if valid_at is not None and previous is not None and valid_at <= previous:
                errors.append({"where": f"{at}.valid_at", "error": "must be after the issue time and the previous interval"})
            if valid_at is not None and issued_at is not None and valid_at > issued_at + RAIN_FORECAST_HORIZON:
                errors.append({"where": f"{at}.valid_at", "error": "is more than 15 hours after the issue time"})
            previous = valid_at or previous
            intervals.append((valid_at, value))
        parsed.append((i, code, issued_at, intervals))
    codes = {code for _, code in claimed if code}
    own = {s.code: s for s in Station.objects.filter(code__in=codes, municipality=municipality, kind=StationKind.RAIN)}
    for i, code in claimed:
        if code and code not in own:
            # The same words whether the code is unknown, another town's or not a rain gauge.
            errors.append({"where": f"forecasts[{i}].station", "error": "is not a rain gauge of this token's town"})
    if errors:
        raise RainForecastError(errors[:50])
    received = timezone.now()
    rows = [
        RainForecast(station=own[code], issued_at=issued_at, valid_at=valid_at, value=value, received_at=received)
        for _, code, issued_at, intervals in parsed
        for valid_at, value in intervals
    ]
    from django.db.models import Q

    from events.services import emit

    with transaction.atomic():
        replaced = Q(pk__in=[])
        for _, code, issued_at, _ in parsed:
            replaced |= Q(station=own[code], issued_at=issued_at)
        RainForecast.objects.filter(replaced).delete()
        RainForecast.objects.bulk_create(rows)
        emit(RAIN_FORECAST_POSTED, {"stations": sorted({own[code].pk for _, code, _, _ in parsed})})
    return {"issues": len(parsed), "intervals": len(rows)}
