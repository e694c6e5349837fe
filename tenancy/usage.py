"""Usage per town per month, so a shared platform's running cost can be split between towns.

Each metric is a function in the app that owns the data, listed in settings.USAGE_METRICS as
{"name": "dotted.path"}; it takes (month_start, month_end) as aware datetimes and returns
{municipality_id: count}. Tenancy never imports the apps that count.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import ApiUsage, Municipality


@dataclass(frozen=True)
class UsageRow:
    municipality: Municipality
    month: date
    counts: dict[str, int]


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in the site time zone."""
    first = month.replace(day=1)
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    zone = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(first, time.min), zone),
        timezone.make_aware(datetime.combine(following, time.min), zone),
    )


def parse_month(text: str | None) -> date:
    """'2026-11' -> date(2026, 11, 1); empty -> this month. Raises ValueError with the reason."""
    if not text:
        return timezone.localdate().replace(day=1)
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ValueError(f"month must look like 2026-11, got {text[:20]!r}") from None
    return parsed.date()


def api_calls_per_town(start: datetime, end: datetime) -> dict[int, int]:
    month = timezone.localtime(start).date().replace(day=1)
    return dict(ApiUsage.objects.filter(month=month).values_list("municipality_id", "calls"))


def usage_report(month: date, municipality_ids=None) -> list[UsageRow]:
    """One row per town (all towns, or those given), a column per metric in settings.USAGE_METRICS."""
    start, end = month_bounds(month)
    metrics = {name: import_string(path)(start, end) for name, path in settings.USAGE_METRICS.items()}
    towns = Municipality.objects.order_by("code")
    if municipality_ids is not None:
        towns = towns.filter(pk__in=municipality_ids)
    return [
        UsageRow(town, month, {name: values.get(town.pk, 0) for name, values in metrics.items()}) for town in towns
    ]


def usage_csv(rows: list[UsageRow], out) -> None:
    """The report as CSV: month, municipality slug, code, then one column per metric."""
    names = list(rows[0].counts) if rows else list(settings.USAGE_METRICS)
    writer = csv.writer(out)
    writer.writerow(["month", "municipality", "code", *names])
    for row in rows:
        writer.writerow([f"{row.month:%Y-%m}", row.municipality.slug, row.municipality.code,
                         *(row.counts[name] for name in names)])
