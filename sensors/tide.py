"""The astronomical tide at a tide gauge (天文潮位), from harmonic constants, and the anomaly (潮位偏差)
= observed − predicted that shows a storm surge. Pure: no database, no clock.

The prediction is h(t) = Z0 + Σ Aᵢ cos(ωᵢ (t − epoch) − gᵢ), with each constituent's speed ωᵢ from
the table below, its amplitude Aᵢ (m) and its phase gᵢ (degrees) at the stored epoch. Phases are
relative to that epoch, not Greenwich phase lags (κ), so the nodal factors (f, u) of the 18.6-year
lunar cycle are not applied: constants fitted from a year of the gauge's own readings (`fit`, the
`tide_fit` command) predict within a few centimetres for a few years around the epoch, which is
what a surge anomaly of decimetres needs. Constants from the Japan Meteorological Agency's or the
Coast Guard's tables may be entered the same way once converted to the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

# Speeds in degrees per mean solar hour (Schureman / IHO).
SPEEDS_DEG_PER_HOUR = {
    "M2": 28.9841042, "S2": 30.0, "N2": 28.4397295, "K2": 30.0821373,
    "K1": 15.0410686, "O1": 13.9430356, "P1": 14.9589314, "Q1": 13.3986609,
    "M4": 57.9682084, "MS4": 58.9841042, "Sa": 0.0410686, "Ssa": 0.0821373,
}
# The four principal constituents (about 90 % of the tide on Japan's coasts): what `fit` solves
# for by default; a year of data also separates N2, K2, P1, Q1.
PRINCIPAL = ("M2", "S2", "K1", "O1")
MAX_CONSTITUENTS = len(SPEEDS_DEG_PER_HOUR)
MAX_AMPLITUDE_M = 10.0  # the largest tides on Earth (Bay of Fundy) are about 8 m
MAX_MEAN_LEVEL_M = 15.0


class TideError(ValueError):
    """Harmonic constants that cannot be used; says which field and why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Constituent:
    name: str
    amplitude: float  # m
    phase: float  # degrees at the epoch


@dataclass(frozen=True)
class Harmonics:
    mean_level: float  # Z0, m above the station's datum
    epoch: datetime  # aware
    constituents: tuple[Constituent, ...]

    def as_document(self) -> dict:
        return {
            "mean_level": round(self.mean_level, 4),
            "epoch": self.epoch.isoformat(),
            "constituents": [
                {"name": c.name, "amplitude": round(c.amplitude, 4), "phase": round(c.phase % 360.0, 2)}
                for c in self.constituents
            ],
        }


def _hours(harmonics: Harmonics, times: Sequence[datetime]) -> np.ndarray:
    epoch = harmonics.epoch.timestamp()
    return (np.fromiter((t.timestamp() for t in times), dtype=float, count=len(times)) - epoch) / 3600.0


def predict(harmonics: Harmonics, times: Sequence[datetime]) -> list[float]:
    """The astronomical tide at each (aware) time, m above the datum."""
    hours = _hours(harmonics, times)
    level = np.full(len(hours), harmonics.mean_level)
    for c in harmonics.constituents:
        speed = math.radians(SPEEDS_DEG_PER_HOUR[c.name])
        level += c.amplitude * np.cos(speed * hours - math.radians(c.phase))
    return level.tolist()


def fit(times: Sequence[datetime], values: Sequence[float], *, epoch: datetime,
        names: Sequence[str] = PRINCIPAL) -> Harmonics:
    """Least-squares harmonic constants from readings (at least two days' worth, more than three
    readings per constituent): h = Z0 + Σ aᵢ cos ωᵢt + bᵢ sin ωᵢt, then Aᵢ = √(aᵢ² + bᵢ²), gᵢ = atan2(bᵢ, aᵢ)."""
    unknown = [name for name in names if name not in SPEEDS_DEG_PER_HOUR]
    if unknown:
        raise TideError("constituents", f"unknown constituent(s) {', '.join(unknown)}; known: {', '.join(SPEEDS_DEG_PER_HOUR)}")
    if len(times) != len(values) or len(times) < 6 * len(names) + 1:
        raise TideError("readings", f"{len(times)} readings are too few to fit {len(names)} constituents")
    span_hours = (max(times) - min(times)).total_seconds() / 3600
    if span_hours < 48:
        raise TideError("readings", f"the readings span {span_hours:.0f} h; at least 48 h are needed to separate the tides")
    shell = Harmonics(0.0, epoch, ())
    hours = _hours(shell, times)
    columns = [np.ones(len(hours))]
    for name in names:
        speed = math.radians(SPEEDS_DEG_PER_HOUR[name])
        columns += [np.cos(speed * hours), np.sin(speed * hours)]
    solution, *_ = np.linalg.lstsq(np.column_stack(columns), np.asarray(values, dtype=float), rcond=None)
    constituents = []
    for index, name in enumerate(names):
        a, b = solution[1 + 2 * index], solution[2 + 2 * index]
        constituents.append(Constituent(name, float(math.hypot(a, b)), float(math.degrees(math.atan2(b, a)) % 360.0)))
    return Harmonics(float(solution[0]), epoch, tuple(constituents))


def _number(raw, field: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise TideError(field, "must be a finite number")
    if not low <= raw <= high:
        raise TideError(field, f"must be between {low:g} and {high:g}")
    return float(raw)


def harmonics_from_document(document, *, epoch: datetime | None = None) -> Harmonics:
    """Checked constants from `{"mean_level", "epoch"?, "constituents": [{"name", "amplitude", "phase"}]}`."""
    if not isinstance(document, dict):
        raise TideError("harmonics", "must be a JSON object")
    mean = _number(document.get("mean_level"), "mean_level", -MAX_MEAN_LEVEL_M, MAX_MEAN_LEVEL_M)
    raw_epoch = document.get("epoch")
    if raw_epoch is not None:
        try:
            epoch = datetime.fromisoformat(str(raw_epoch)[:40])
        except ValueError:
            raise TideError("epoch", "must be an ISO 8601 time with a UTC offset") from None
        if epoch.utcoffset() is None:
            raise TideError("epoch", "must be an ISO 8601 time with a UTC offset")
    if epoch is None:
        raise TideError("epoch", "is required")
    raw = document.get("constituents")
    if not isinstance(raw, list) or not raw:
        raise TideError("constituents", "must be a non-empty list")
    if len(raw) > MAX_CONSTITUENTS:
        raise TideError("constituents", f"at most {MAX_CONSTITUENTS}")
    constituents, seen = [], set()
    for index, item in enumerate(raw):
        where = f"constituents[{index}]"
        if not isinstance(item, dict):
            raise TideError(where, "must be an object with name, amplitude and phase")
        name = item.get("name")
        if name not in SPEEDS_DEG_PER_HOUR:
            raise TideError(f"{where}.name", f"unknown constituent {str(name)[:20]!r}; known: {', '.join(SPEEDS_DEG_PER_HOUR)}")
        if name in seen:
            raise TideError(f"{where}.name", f"{name} is given twice")
        seen.add(name)
        constituents.append(Constituent(
            name, _number(item.get("amplitude"), f"{where}.amplitude", 0.0, MAX_AMPLITUDE_M),
            _number(item.get("phase"), f"{where}.phase", -360.0, 720.0),
        ))
    return Harmonics(mean, epoch, tuple(constituents))
