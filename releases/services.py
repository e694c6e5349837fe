"""Writes of dam release notices. Every change goes into the change log (`release.changed`) in the
writer's transaction, with the `ReleaseTransition` it makes: dashboard/live.py tells the maps, and
the `releases.notify` handler (releases.handlers) queues the downstream towns' e-mail and webhooks."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db import transaction
from django.utils import timezone

from events import emit
from geo.models import River
from sensors.models import Station, StationKind
from sensors.parsers import number_from_text
from sensors.services import normalized_text
from tenancy.models import Municipality

from .models import DamRelease, ReleaseTransition

RELEASE_CHANGED = "release.changed"
MAX_DISCHARGE = 100_000.0  # m³/s: beyond any dam's spillway (the largest rivers of Japan peak near 10⁴)
MAX_DISTRICTS = 50
MAX_TIME_DISTANCE = timedelta(days=30)
MAX_DOWNSTREAM = 30
FIELDS = {"dam", "started_at", "ends_at", "planned_discharge", "current_discharge", "reach", "districts",
          "downstream", "river", "message"}


class ReleaseError(ValueError):
    """Bad input: `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{key}: {value}" for key, value in errors.items()))
        self.errors = errors


def _discharge(raw: Any, name: str, errors: dict, *, required: bool) -> float | None:
    if raw is None or raw == "":
        if required:
            errors[name] = "Required, in m³/s."
        return None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, (int, float)):
        value = float(raw) if not isinstance(raw, int) or abs(raw) < 10**18 else math.inf
    elif isinstance(raw, str):
        value = number_from_text(raw)
    else:
        value = None
    if not isinstance(value, float) or not math.isfinite(value):
        errors[name] = "Must be a number of m³/s."
        return None
    if not 0 <= value <= MAX_DISCHARGE:
        errors[name] = f"Must be between 0 and {MAX_DISCHARGE:g} m³/s."
        return None
    return float(value)


def _time(raw: Any, name: str, errors: dict, now: datetime, *, required: bool) -> datetime | None:
    if raw in (None, ""):
        if required:
            errors[name] = "Required: an ISO 8601 time with offset."
        return None
    parsed = None
    if isinstance(raw, str) and len(raw) <= 40:
        try:
            parsed = datetime.fromisoformat(normalized_text(raw))
        except ValueError:
            parsed = None
    if parsed is None or parsed.utcoffset() is None:
        errors[name] = "Must be an ISO 8601 time with a UTC offset, e.g. 2026-11-22T09:00:00+09:00."
        return None
    try:
        parsed = parsed.astimezone(dt_timezone.utc)
    except (OverflowError, ValueError):
        errors[name] = "Outside the representable range of times."
        return None
    if abs(parsed - now) > MAX_TIME_DISTANCE:
        errors[name] = f"Must be within {MAX_TIME_DISTANCE.days} days of now."
        return None
    return parsed


def _text(raw: Any, name: str, errors: dict, *, max_length: int, required: bool = False) -> str:
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        errors[name] = "Must be text."
        return ""
    text = raw.strip()
    if any(ord(char) < 32 and char not in "\n\t" for char in text):
        errors[name] = "Must not contain control characters."
    elif len(text) > max_length:
        errors[name] = f"At most {max_length} characters."
    elif required and not text:
        errors[name] = "Required."
    return text


def release_post(*, municipality: Municipality, document: Any, user=None, now: datetime | None = None) -> DamRelease:
    """A new notice by the dam's town (`municipality`: the token's or the acting town)."""
    now = now or timezone.now()
    if not isinstance(document, dict):
        raise ReleaseError({"detail": "The body must be a JSON object."})
    errors: dict[str, str] = {}
    unknown = sorted(set(document) - FIELDS)
    if unknown:
        errors[unknown[0][:40]] = "Unknown field."
    dam = None
    code = document.get("dam")
    if not isinstance(code, str) or not code:
        errors["dam"] = "Required: the dam's station code."
    else:
        dam = Station.objects.filter(code=code[:40], municipality=municipality, kind=StationKind.RESERVOIR).first()
        if dam is None:  # the same words for another town's dam and none at all
            errors["dam"] = f"No dam (reservoir station) with this code in {municipality.slug}."
    started_at = _time(document.get("started_at"), "started_at", errors, now, required=True)
    ends_at = _time(document.get("ends_at"), "ends_at", errors, now, required=False)
    if started_at and ends_at and ends_at <= started_at:
        errors["ends_at"] = "Must be after started_at."
    planned = _discharge(document.get("planned_discharge"), "planned_discharge", errors, required=True)
    current = _discharge(document.get("current_discharge"), "current_discharge", errors, required=False)
    reach = _text(document.get("reach"), "reach", errors, max_length=200, required=True)
    message = _text(document.get("message"), "message", errors, max_length=1000)
    districts = document.get("districts") or []
    if not isinstance(districts, list) or len(districts) > MAX_DISTRICTS or not all(
        isinstance(d, str) and 0 < len(d.strip()) <= 60 and d.isprintable() for d in districts
    ):
        errors["districts"] = f"At most {MAX_DISTRICTS} district names of 1 to 60 printable characters."
        districts = []
    downstream_slugs = document.get("downstream") or []
    downstream: list[Municipality] = []
    if not isinstance(downstream_slugs, list) or len(downstream_slugs) > MAX_DOWNSTREAM or not all(
        isinstance(s, str) for s in downstream_slugs
    ):
        errors["downstream"] = f"At most {MAX_DOWNSTREAM} town slugs."
    else:
        downstream = list(Municipality.objects.filter(slug__in=downstream_slugs))
        missing = sorted(set(downstream_slugs) - {town.slug for town in downstream})
        if missing:
            errors["downstream"] = f"No such town: {missing[0][:40]}"
    river = None
    if document.get("river") not in (None, ""):
        river_name = document["river"]
        river = River.objects.filter(name_ja=river_name).first() if isinstance(river_name, str) else None
        if river is None:
            errors["river"] = "No river of this Japanese name on the map."
    if errors:
        raise ReleaseError(errors)
    with transaction.atomic():
        release = DamRelease.objects.create(
            municipality=municipality, dam=dam, river=river, reach=reach, districts=[d.strip() for d in districts],
            started_at=started_at, ends_at=ends_at, planned_discharge=planned, current_discharge=current,
            message=message, created_by=user, created_at=now, updated_at=now,
        )
        release.downstream.set({municipality, *downstream})
        _changed(release, ReleaseTransition.Kind.POSTED, now)
    return release


def release_discharge_set(*, release: DamRelease, current_discharge: Any, now: datetime | None = None) -> DamRelease:
    errors: dict[str, str] = {}
    value = _discharge(current_discharge, "current_discharge", errors, required=True)
    if errors:
        raise ReleaseError(errors)
    now = now or timezone.now()
    with transaction.atomic():
        release.current_discharge, release.updated_at = value, now
        release.save(update_fields=["current_discharge", "updated_at"])
        _changed(release, ReleaseTransition.Kind.UPDATED, now)
    return release


def release_end(*, release: DamRelease, user=None, now: datetime | None = None) -> bool:
    """End the notice now; False if it had already ended (a repeat is harmless)."""
    now = now or timezone.now()
    if not release.in_force(now) and release.ended_at is not None:
        return False
    with transaction.atomic():
        release.ended_at, release.ended_by, release.updated_at = now, user, now
        release.save(update_fields=["ended_at", "ended_by", "updated_at"])
        _changed(release, ReleaseTransition.Kind.ENDED, now)
    return True


def _changed(release: DamRelease, kind: str, now: datetime) -> None:
    """Inside the writer's transaction: the transition the HQs are told of, and the change-log event."""
    transition = ReleaseTransition.objects.create(
        release=release, kind=kind, at=now, current_discharge=release.current_discharge
    )
    emit(RELEASE_CHANGED, {"releases": [release.pk], "transitions": [transition.pk]})


def releases_expired_end(*, now: datetime | None = None) -> list[int]:
    """Notices whose `ends_at` has passed end by themselves (read time already shows them ended);
    this records their `ended` transition once, so the downstream HQs are told. Run periodically
    (Celery beat `releases.end_expired`, or `manage.py end_expired_releases --loop`)."""
    now = now or timezone.now()
    ended = []
    due = DamRelease.objects.filter(ended_at__isnull=True, ends_at__lte=now).exclude(
        transitions__kind=ReleaseTransition.Kind.ENDED
    )
    with transaction.atomic():
        for release in due.select_for_update():
            _changed(release, ReleaseTransition.Kind.ENDED, release.ends_at)
            ended.append(release.pk)
    return ended
