"""Monthly range partitions of `sensors_observation` on PostgreSQL: create ahead, detach old ones.

On PostgreSQL the table is partitioned by `observed_at` (migration 0006): one partition per UTC
month, named `sensors_observation_pYYYY_MM`, plus a DEFAULT partition that takes any reading whose
month has no partition yet, so an insert never fails for an odd date. A query for a time range only
reads the partitions of its months, and old months can be detached and archived whole instead of
being deleted row by row.

SQLite keeps the plain table: every function here reports that there is nothing to do there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

PARENT = "sensors_observation"
DEFAULT_PARTITION = f"{PARENT}_default"
_MONTH_NAME = re.compile(rf"^{PARENT}_p(\d{{4}})_(\d{{2}})$")
NOT_PARTITIONED = "observations are a plain table on {vendor}; partitions exist only on PostgreSQL, nothing to do"


class PartitionError(Exception):
    """A partition cannot be created or detached as asked; nothing was changed."""


@dataclass
class PartitionReport:
    created: list[str] = field(default_factory=list)
    # Rows moved out of the DEFAULT partition into the partition of their month, by partition name.
    moved: dict[str, int] = field(default_factory=dict)
    detached: list[str] = field(default_factory=list)
    # Set when there is nothing to do on this database (not PostgreSQL).
    skipped: str = ""


def month_start(value: date | datetime) -> date:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return value.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_p{month.year:04d}_{month.month:02d}"


def parse_month(text: str) -> date:
    """'YYYY-MM' → the first day of that month; a clear error for anything else."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip(), flags=re.ASCII)
    if not match or not 1 <= int(match.group(2)) <= 12:
        shown = text if len(text) <= 20 else f"{text[:20]}…"
        raise ValueError(f"{shown!r} is not a month written as YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def _utc_literal(month: date) -> str:
    # Built from integers only, so it is safe to place in DDL (partition bounds take no parameters).
    return f"'{month.year:04d}-{month.month:02d}-01 00:00:00+00'"


def is_partitioned(connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = %s AND pg_table_is_visible(c.oid))",
            [PARENT],
        )
        return cursor.fetchone()[0]


def attached_months(connection) -> dict[date, str]:
    """The month partitions now attached to the parent, {first day of month: table name}."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s AND pg_table_is_visible(p.oid)",
            [PARENT],
        )
        names = [row[0] for row in cursor.fetchall()]
    months = {}
    for name in names:
        match = _MONTH_NAME.match(name)
        if match:
            months[date(int(match.group(1)), int(match.group(2)), 1)] = name
    return months


def _columns(cursor, table: str) -> list[str]:
    # Read from the catalogue so a column added by a later migration is moved too.
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _table_exists(cursor, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    return cursor.fetchone()[0]


# That a reading's station exists is checked by a statement trigger (sensors migration 0016): the
# parent's fires for every write through it, and each partition has its own for a write made
# straight into it (statement triggers of a partition do not fire for rows routed by the parent).
STATION_CHECK = "sensors_observation_station_check"


def add_station_check(cursor, table: str) -> None:
    """The station check's triggers on `table` (the parent or a partition), once the migration that
    defines the check has run; before it, partitions carry the foreign key's clone instead."""
    cursor.execute("SELECT to_regproc(%s) IS NOT NULL", [STATION_CHECK])
    if not cursor.fetchone()[0]:
        return
    for event in ("INSERT", "UPDATE"):  # a trigger with a transition table takes one event
        cursor.execute(
            f'CREATE TRIGGER observation_station_check_{event.lower()} AFTER {event} ON "{table}" '
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {STATION_CHECK}()"
        )


def create_month_partition(connection, month: date) -> int:
    """Attach the partition for `month`, moving that month's rows out of DEFAULT; returns rows moved.

    PostgreSQL refuses `CREATE TABLE … PARTITION OF` while DEFAULT holds rows of the new range, and
    that statement also locks the whole parent against reads. So, as the PostgreSQL manual suggests
    for loading a partition: build the table on its own, move the rows into it, then ATTACH, which
    only takes a SHARE UPDATE EXCLUSIVE lock on the parent. DEFAULT is locked first so that no
    reading of this month can land there between the move and the attach. The caller's transaction
    makes it all-or-nothing.
    """
    quote = connection.ops.quote_name
    name = partition_name(month)
    start, end = _utc_literal(month), _utc_literal(add_months(month, 1))
    with connection.cursor() as cursor:
        columns = ", ".join(quote(column) for column in _columns(cursor, PARENT))
        if _table_exists(cursor, name):
            raise PartitionError(
                f"table {name} exists but is not attached to {PARENT} (a detached archive?); "
                f"re-attach it or rename it before creating the partition for {month:%Y-%m}"
            )
        # Rows inserted earlier in this transaction leave deferred foreign-key checks pending, and
        # PostgreSQL refuses ALTER TABLE on a table with pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"LOCK TABLE {quote(DEFAULT_PARTITION)} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(PARENT)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {quote(DEFAULT_PARTITION)} "
            f"WHERE observed_at >= {start} AND observed_at < {end} RETURNING {columns}) "
            f"INSERT INTO {quote(name)} ({columns}) SELECT {columns} FROM moved"
        )
        moved = cursor.rowcount
        # A constraint matching the bound lets ATTACH skip scanning the new table.
        bound = quote(f"{name}_bound")
        cursor.execute(
            f"ALTER TABLE {quote(name)} ADD CONSTRAINT {bound} "
            f"CHECK (observed_at IS NOT NULL AND observed_at >= {start} AND observed_at < {end})"
        )
        cursor.execute(f"ALTER TABLE {quote(PARENT)} ATTACH PARTITION {quote(name)} FOR VALUES FROM ({start}) TO ({end})")
        cursor.execute(f"ALTER TABLE {quote(name)} DROP CONSTRAINT {bound}")
        add_station_check(cursor, name)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return max(moved, 0)


def partitions_ensure_ahead(
    *, months_ahead: int, since: date | None = None, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> PartitionReport:
    """Make sure this month and the next `months_ahead` months have partitions (and every month
    from `since` on, to give past months that hold rows in DEFAULT their own). Idempotent."""
    if months_ahead < 0:
        raise ValueError("months_ahead must be 0 or more")
    connection = connections[using]
    report = PartitionReport()
    if not is_partitioned(connection):
        report.skipped = _not_partitioned_reason(connection)
        return report
    current = month_start(now or timezone.now())
    first = min(month_start(since), current) if since else current
    count = (current.year - first.year) * 12 + current.month - first.month + months_ahead + 1
    with transaction.atomic(using=using):
        existing = attached_months(connection)
        for offset in range(count):
            month = add_months(first, offset)
            if month in existing:
                continue
            moved = create_month_partition(connection, month)
            name = partition_name(month)
            report.created.append(name)
            if moved:
                report.moved[name] = moved
    return report


def partitions_detach_before(cutoff: date, *, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS) -> PartitionReport:
    """Detach (never drop) every month partition that ends on or before `cutoff`'s month start.

    A detached partition stays a standalone table with its rows, indexes and name, for the operator
    to dump and drop (docs/operations.md); its readings no longer appear in history reads. Its
    foreign key to stations (or station check) is dropped, so an archive never blocks deleting a
    station. The current month is never detached.
    """
    connection = connections[using]
    report = PartitionReport()
    if not is_partitioned(connection):
        report.skipped = _not_partitioned_reason(connection)
        return report
    cutoff = month_start(cutoff)
    current = month_start(now or timezone.now())
    if cutoff > current:
        raise PartitionError(f"refusing to detach the current month {current:%Y-%m} or later (cutoff {cutoff:%Y-%m})")
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for month, name in sorted(attached_months(connection).items()):
            if month >= cutoff:
                continue
            cursor.execute(f"ALTER TABLE {quote(PARENT)} DETACH PARTITION {quote(name)}")
            cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'", [name])
            for (constraint,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE {quote(name)} DROP CONSTRAINT {quote(constraint)}")
            for event in ("insert", "update"):  # nor the station check's triggers (add_station_check)
                cursor.execute(f"DROP TRIGGER IF EXISTS observation_station_check_{event} ON {quote(name)}")
            report.detached.append(name)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return report


def _not_partitioned_reason(connection) -> str:
    if connection.vendor == "postgresql":
        raise PartitionError(f"{PARENT} is not partitioned: run `manage.py migrate sensors` first")
    return NOT_PARTITIONED.format(vendor=connection.vendor)
