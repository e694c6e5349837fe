"""Replaying history with no look-ahead: the model is trained only on readings before `since`,
and each forecast issued at t in [since, until] reads only readings at or before t (the same
`features_at` that serves). Persistence (the level stays) and the linear trend (alerts.evaluation's
straight line through the last hour) are scored side by side. Pure: no database."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np

from alerts.evaluation import linear_trend

from . import learn
from .predict import ThresholdLine

METHODS = ("model", "persistence", "trend")
WARNING_HORIZON_SECONDS = 3 * 3600  # a crossing predicted within this long is a warning
TRAINING_WINDOW_SECONDS = 90 * 86400


def _truncated(inputs: learn.Inputs, until: float) -> learn.Inputs:
    return learn.Inputs(
        inputs.own.until(until), [s.until(until) for s in inputs.upstream], [s.until(until) for s in inputs.rain],
        [f.until(until) for f in inputs.rain_forecast],
        [s.until(until) for s in inputs.tide],
    )


def predictions(inputs: learn.Inputs, step: float, *, since: float, until: float):
    """Issue times in [since, until] and, per method, the predicted level (issues x leads)."""
    model = learn.fit(_truncated(inputs, since), step, since=since - TRAINING_WINDOW_SECONDS, until=since)
    own = inputs.own
    issue = own.times[(own.times >= since) & (own.times <= until)]
    leads = learn.leads_for(step)
    level = learn.level_at(own, issue, step * 0.5)
    predicted = {"persistence": np.repeat(level[:, None], leads, axis=1)}
    predicted["model"] = np.full((len(issue), leads), np.nan)
    # The model that reads forecast rain where a usable issue exists, as served; the other elsewhere.
    for candidate in (model, model.forecast_rain_model) if model is not None else ():
        if candidate is None:
            continue
        x = candidate.features(inputs, issue)
        rows = np.isfinite(x).all(axis=1)
        if not rows.any():
            continue
        change, sigma = candidate.predict(x[rows])
        median = np.column_stack([sigma[:, h] * candidate.quantile(h, 0.5, sigma[:, h]) for h in range(leads)])
        predicted["model"][rows] = level[rows, None] + change + median
    trend = np.full((len(issue), leads), np.nan)
    hours = np.arange(1, leads + 1) * step / 3600
    for row, t in enumerate(issue):
        end = np.searchsorted(own.times, t, side="right")
        start = np.searchsorted(own.times, t - 3600, side="left")
        fit = linear_trend(own.times[start:end], own.values[start:end])
        if fit is not None:
            trend[row] = fit.fitted_now + fit.slope_per_hour * hours
    predicted["trend"] = trend
    observed = np.column_stack([learn.level_at(own, issue + h * step, step * 0.5) for h in range(1, leads + 1)])
    return model, issue, level, predicted, observed


def _events(own: learn.Series, low: float, *, since: float, until: float, gap: float) -> list[tuple[float, float]]:
    """High-water events: runs of readings at or above `low` within [since, until]."""
    inside = (own.times >= since) & (own.times <= until) & (own.values >= low)
    times = own.times[inside]
    if not len(times):
        return []
    breaks = np.flatnonzero(np.diff(times) > gap)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(times) - 1]))
    return [(times[a], times[b]) for a, b in zip(starts, ends)]


def _peak_errors(own, events, target_times, predicted_lead, margin):
    errors, relative, timing = [], [], []
    for start, end in events:
        window = (own.times >= start) & (own.times <= end)
        observed_peak = own.values[window].max()
        observed_at = own.times[window][own.values[window].argmax()]
        near = (target_times >= start - margin) & (target_times <= end + margin) & np.isfinite(predicted_lead)
        if not near.any():
            continue
        index = np.argmax(np.where(near, predicted_lead, -np.inf))
        errors.append(predicted_lead[index] - observed_peak)
        relative.append((predicted_lead[index] - observed_peak) / observed_peak if observed_peak else np.nan)
        timing.append((target_times[index] - observed_at) / 60)
    if not errors:
        return None, None, None
    return float(np.mean(np.abs(errors))), float(np.nanmean(np.abs(relative))), float(np.mean(np.abs(timing)))


def _warnings(level, predicted, step, value):
    within = max(1, int(WARNING_HORIZON_SECONDS // step))
    ahead = np.nanmax(np.where(np.isfinite(predicted[:, :within]), predicted[:, :within], -np.inf), axis=1)
    return (level < value) & (ahead >= value)


def _threshold_scores(own, issue, level, warn, value, step):
    """Hits, misses, false alarms and the median warning lead for one threshold and one method."""
    crossed = np.flatnonzero((own.values[1:] >= value) & (own.values[:-1] < value)) + 1
    crossings = [own.times[i] for i in crossed if issue.size and issue[0] < own.times[i] <= issue[-1] + step]
    hits, misses, leads = 0, 0, []
    for tc in crossings:
        window = (issue >= tc - WARNING_HORIZON_SECONDS) & (issue < tc) & warn
        if window.any():
            hits += 1
            leads.append((tc - issue[window].min()) / 60)
        else:
            misses += 1
    false_alarms = 0
    run_true = None
    for t, flag in zip(issue, warn):
        if flag:
            good = any(t < tc <= t + WARNING_HORIZON_SECONDS for tc in crossings)
            run_true = good if run_true is None else (run_true or good)
        elif run_true is not None:
            false_alarms += not run_true
            run_true = None
    if run_true is not None:
        false_alarms += not run_true
    return {
        "crossings": len(crossings),
        "hits": hits,
        "misses": misses,
        "false_alarms": false_alarms,
        "median_lead_minutes": float(np.median(leads)) if leads else None,
    }


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def backtest(inputs: learn.Inputs, step: float, thresholds: list[ThresholdLine], *, since: float, until: float) -> dict:
    """The backtest report: per lead and method NSE, RMSE, peak error (m and share of the peak) and
    peak timing error (minutes, mean over high-water events), and per threshold hits / misses /
    false alarms and median warning lead time."""
    model, issue, level, predicted, observed = predictions(inputs, step, since=since, until=until)
    own = inputs.own
    levelled = sorted((t for t in thresholds if t.level is not None), key=lambda t: t.value)
    low = levelled[0].value if levelled else float(np.quantile(own.values, 0.95)) if len(own.values) else 0.0
    events = _events(own, low, since=since, until=until, gap=step * 6)
    steps = []
    for h in range(observed.shape[1]):
        entry = {"lead_minutes": round((h + 1) * step / 60)}
        for method in METHODS:
            scores = learn.skill_scores(observed[:, h], predicted[method][:, h])
            peak, peak_relative, timing = _peak_errors(own, events, issue + (h + 1) * step, predicted[method][:, h], step * 6)
            entry[method] = {
                "nse": _clean(scores["nse"]),
                "rmse": _clean(scores["rmse"]),
                "peak_error_m": peak,
                "peak_error_relative": peak_relative,
                "peak_timing_error_minutes": timing,
                "n": scores["n"],
            }
        steps.append(entry)
    threshold_reports = []
    for threshold in levelled:
        report = {"name": threshold.name, "label_ja": threshold.label_ja, "label_en": threshold.label_en,
                  "level": threshold.level, "value": threshold.value}
        for method in METHODS:
            warn = _warnings(level, predicted[method], step, threshold.value)
            report[method] = _threshold_scores(own, issue, level, warn, threshold.value, step)
        threshold_reports.append(report)
    return {
        "trained_on_readings_before": since,
        "model_rows": model.rows if model else 0,
        "model_available": model is not None,
        "events": len(events),
        "steps": steps,
        "thresholds": threshold_reports,
    }


def default_window(own: learn.Series) -> tuple[float, float]:
    """The last quarter of the history (at least a week before its end when it is long enough)."""
    end = float(own.times[-1])
    start = float(own.times[0])
    return max(start, end - max((end - start) * 0.25, timedelta(days=7).total_seconds())), end
