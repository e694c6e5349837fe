"""PostgreSQL must vacuum the tables the hot path updates: a deploy check, and a stand-in for benchmarks.

Every reading moves its station's row in sensors_stationstate; the drain updates alert rules and
alerts, deletes what it handled from the change log and appends to the live log. Each UPDATE or
DELETE leaves a dead row version behind, and only VACUUM makes its space reusable. With
`autovacuum = off` these few-thousand-row tables grow to hundreds of thousands of dead versions
within minutes, and every state lookup walks them (docs/deployment.md, "Autovacuum").
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from django.core.checks import Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

# The tables updated or deleted from for every batch of readings (above: why).
HOT_TABLES = (
    "sensors_stationstate",
    "alerts_alertrule",
    "alerts_alert",
    "events_outboxevent",
    "livelog_livestream",
    "livelog_livemessage",
)
# PostgreSQL's defaults: autovacuum_vacuum_threshold and autovacuum_vacuum_scale_factor.
AUTOVACUUM_THRESHOLD = 50
AUTOVACUUM_SCALE_FACTOR = 0.2


def autovacuum_setting(cursor) -> str:
    """The server's `autovacuum` setting ("on" or "off"), through any DB-API cursor (Django's or psycopg's)."""
    cursor.execute("SHOW autovacuum")
    return cursor.fetchone()[0]


def vacuum_due(live: int, dead: int) -> bool:
    """Whether autovacuum, at its default settings, would vacuum a table with these tuple counts."""
    return dead > AUTOVACUUM_THRESHOLD + AUTOVACUUM_SCALE_FACTOR * live


def autovacuum_state(alias: str = DEFAULT_DB_ALIAS) -> str | None:
    """The `autovacuum` setting of PostgreSQL behind `alias`; None on another database (SQLite has no
    such thing, and no query is made) or when the database does not answer."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return None
    try:
        with connection.cursor() as cursor:
            return autovacuum_setting(cursor)
    except DatabaseError:
        return None


@register(Tags.database, deploy=True)
def autovacuum_check(app_configs=None, databases=None, **kwargs):
    """Warns when PostgreSQL runs with autovacuum off. Silent on SQLite and when the database cannot
    be reached: a deploy check must not fail because the database is elsewhere or down."""
    warnings = []
    for alias in databases or [DEFAULT_DB_ALIAS]:
        setting = autovacuum_state(alias)
        if setting not in (None, "on"):
            warnings.append(
                Warning(
                    f"PostgreSQL (database {alias!r}) runs with autovacuum = {setting}: the tables every reading "
                    f"updates ({', '.join(HOT_TABLES)}) fill with dead rows and ingestion and the drain slow "
                    "down by the minute.",
                    hint="Set autovacuum = on in postgresql.conf (the default) and reload; see docs/deployment.md, "
                    "\"Autovacuum\".",
                    id="events.W001",
                )
            )
    return warnings


class VacuumWorker(threading.Thread):
    """Does what autovacuum would on HOT_TABLES, for a benchmark against a server where it is off:
    every `interval` seconds reads the tuple counts from pg_stat_user_tables and runs
    `VACUUM (ANALYZE)` on each table past autovacuum's default threshold. Its own connection, in
    autocommit (VACUUM cannot run inside a transaction)."""

    def __init__(self, dsn: str, *, interval: float = 5.0, tables: tuple[str, ...] = HOT_TABLES):
        super().__init__(name="vacuum worker", daemon=True)
        self.dsn, self.interval, self.tables = dsn, interval, tables
        self.vacuums: Counter[str] = Counter()
        self.seconds = 0.0
        self.error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                while not self._stop_event.is_set():
                    counts = conn.execute(
                        "SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                        [list(self.tables)],
                    ).fetchall()
                    for table, live, dead in counts:
                        if vacuum_due(live, dead) and not self._stop_event.is_set():
                            started = time.monotonic()
                            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
                            self.seconds += time.monotonic() - started
                            self.vacuums[table] += 1
                    self._stop_event.wait(self.interval)
        except psycopg.Error as exc:  # the benchmark goes on; its report says the worker stopped
            self.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"

    def stop(self, timeout: float = 60) -> None:
        self._stop_event.set()
        self.join(timeout)

    def summary(self) -> str:
        each = ", ".join(f"{table} {count}" for table, count in self.vacuums.most_common()) or "none due"
        stopped = f"; stopped early: {self.error}" if self.error else ""
        return (f"{sum(self.vacuums.values())} VACUUM (ANALYZE) in {self.seconds:.1f} s ({each}), checked every "
                f"{self.interval:g} s{stopped}")
