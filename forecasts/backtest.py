"""Replaying history with no look-ahead: the model is trained only on readings before `since`,
and each forecast issued at t in [since, until] reads only readings at or before t (the same
`forecasts.predict.model_run` that serves, out to the leads it shows). Persistence (the level stays)
and the linear trend (alerts.evaluation's straight line through the last hour) are scored side by
side, and the warnings of each by the one warning rule (forecasts.predict.warning). Pure: no database."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from . import learn, predict
from .predict import ThresholdLine

METHODS = ("model", "persistence", "trend")
# A warning is judged against this window: it was right when the level crossed within this long of
# a moment it was in force, and a crossing was warned when a warning was in force in this long before.
WARNING_HORIZON_SECONDS = 3 * 3600
EARLY_SECONDS = 30 * 60  # the issue's target: crossings warned at least this long ahead
TRAINING_WINDOW_SECONDS = 90 * 86400


def _truncated(inputs: learn.Inputs, until: float) -> learn.Inputs:
    return learn.Inputs(
        inputs.own.until(until), [s.until(until) for s in inputs.upstream], [s.until(until) for s in inputs.rain],
        [f.until(until) for f in inputs.rain_forecast],
        [s.until(until) for s in inputs.tide],
    )


@dataclass
class Replay:
    """Forecasts replayed at every reading of a gauge in [since, until], per method: the predicted
    level (issues x leads), and what each method gives for P(level >= value) per step."""

    model: learn.ArxModel | None
    step: float
    issue: np.ndarray
    level: np.ndarray
    consecutive: np.ndarray
    predicted: dict[str, np.ndarray]
    observed: np.ndarray
    run: predict.ModelRun | None
    trend_sigma: np.ndarray
    _sustained: dict = field(default_factory=dict, repr=False)

    def exceedance(self, method: str, value: float) -> np.ndarray:
        if method == "model":
            return self.run.exceedance(value) if self.run is not None else np.zeros_like(self.predicted["model"])
        if method == "trend":
            return predict.normal_exceedance(self.predicted["trend"], self.trend_sigma, value)
        return (self.predicted[method] >= value).astype(float)  # persistence: certain of itself

    def sustained(self, method: str, value: float, persistence: int = predict.WARNING_PERSISTENCE) -> np.ndarray:
        """forecasts.predict.sustained_reach of the method's forecasts (issues x steps)."""
        key = (method, value, persistence)
        if key not in self._sustained:
            self._sustained[key] = predict.sustained_reach(self.exceedance(method, value), self.consecutive, persistence)
        return self._sustained[key]

    def warnings(self, method: str, value: float, *, min_probability: float, within_minutes: float,
                 persistence: int = predict.WARNING_PERSISTENCE) -> np.ndarray:
        """Where the warning rule (forecasts.predict.warning) warns of `value`, as the board would."""
        count = predict.steps_within(self.step, within_minutes * 60)
        if not count or not len(self.issue):
            return np.zeros(len(self.issue), dtype=bool)
        sustained = self.sustained(method, value, persistence)
        return predict.warning(sustained[:, min(count, sustained.shape[1]) - 1], self.level, value, min_probability)


def predictions(inputs: learn.Inputs, step: float, *, since: float, until: float, model=None) -> Replay:
    """Forecasts issued at the gauge's readings in [since, until] by the model (trained on readings
    before `since` unless given), persistence and the linear trend; each reads only readings up to
    its own time, through the code that serves (forecasts.predict)."""
    if model is None:
        model = learn.fit(_truncated(inputs, since), step, since=since - TRAINING_WINDOW_SECONDS, until=since)
    own = inputs.own
    issue = own.times[(own.times >= since) & (own.times <= until)]
    leads = learn.leads_for(step)
    level = learn.level_at(own, issue, step * 0.5)
    predicted = {"persistence": np.repeat(level[:, None], leads, axis=1)}
    run = predict.model_run(model, inputs, issue) if model is not None else None
    predicted["model"] = run.quantile(0.5) if run is not None else np.full((len(issue), leads), np.nan)
    predicted["trend"], trend_sigma = learn.trend_lines(own, issue, step, leads)
    observed = np.column_stack([learn.level_at(own, issue + h * step, step * 0.5) for h in range(1, leads + 1)])
    return Replay(model, step, issue, level, predict.consecutive_readings(issue, step), predicted, observed, run, trend_sigma)


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


def crossings_of(own: learn.Series, value: float, issue: np.ndarray, step: float) -> list[float]:
    """The times the gauge's readings rose to `value` within the replayed span."""
    crossed = np.flatnonzero((own.values[1:] >= value) & (own.values[:-1] < value)) + 1
    return [own.times[i] for i in crossed if issue.size and issue[0] < own.times[i] <= issue[-1] + step]


def threshold_scores(own: learn.Series, issue: np.ndarray, warn: np.ndarray, value: float, step: float) -> dict:
    """Hits, misses, false alarms and the median warning lead for one threshold and one method.
    A crossing is hit when a warning was in force within WARNING_HORIZON_SECONDS before it (its lead:
    from the earliest such moment), and detected early when that lead is at least EARLY_SECONDS. A
    false alarm is a run of warned readings with no crossing within WARNING_HORIZON_SECONDS of any."""
    crossings = crossings_of(own, value, issue, step)
    hits, misses, early, leads = 0, 0, 0, []
    for tc in crossings:
        window = (issue >= tc - WARNING_HORIZON_SECONDS) & (issue < tc) & warn
        if window.any():
            hits += 1
            lead = tc - issue[window].min()
            leads.append(lead / 60)
            early += lead >= EARLY_SECONDS
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
        "detected_30_min_ahead": early,
        "false_alarms": false_alarms,
        "median_lead_minutes": float(np.median(leads)) if leads else None,
    }


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def backtest(
    inputs: learn.Inputs, step: float, thresholds: list[ThresholdLine], *, since: float, until: float,
    min_probability: float = predict.WARNING_PROBABILITY, within_minutes: float = predict.WARNING_MINUTES,
    replay: Replay | None = None,
) -> dict:
    """The backtest report: per lead and method NSE, RMSE, peak error (m and share of the peak) and
    peak timing error (minutes, mean over high-water events), and per threshold and method hits /
    misses / false alarms and median warning lead time of the warning rule (forecasts.predict.warning)
    at `min_probability` within `within_minutes`."""
    replay = replay or predictions(inputs, step, since=since, until=until)
    issue, predicted, observed = replay.issue, replay.predicted, replay.observed
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
            warn = replay.warnings(method, threshold.value, min_probability=min_probability, within_minutes=within_minutes)
            report[method] = threshold_scores(own, issue, warn, threshold.value, step)
        threshold_reports.append(report)
    return {
        "trained_on_readings_before": since,
        "model_rows": replay.model.rows if replay.model else 0,
        "model_available": replay.model is not None,
        "events": len(events),
        "warning_rule": {"min_probability": min_probability, "within_minutes": within_minutes,
                         "persistence": predict.WARNING_PERSISTENCE,
                         "judged_within_minutes": WARNING_HORIZON_SECONDS // 60},
        "steps": steps,
        "thresholds": threshold_reports,
    }


TABLE_EVERY_MINUTES = 30


def table_steps(report: dict) -> list[dict]:
    """The leads the backtest's table shows (every half hour), on the HQ page and in the command alike."""
    return [step for step in report.get("steps", []) if step["lead_minutes"] % TABLE_EVERY_MINUTES == 0]


def default_window(own: learn.Series) -> tuple[float, float]:
    """The last quarter of the history (at least a week before its end when it is long enough)."""
    end = float(own.times[-1])
    start = float(own.times[0])
    return max(start, end - max((end - start) * 0.25, timedelta(days=7).total_seconds())), end
