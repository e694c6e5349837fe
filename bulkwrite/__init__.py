"""Bulk UPDATE of many rows with different values, for the hot paths (latest states, alerts), and
bulk loading of rows as instances (`loaded_instances`).

Django's `bulk_update` builds a `CASE WHEN id = … THEN …` per row and field: on a gateway tick or a
drain batch it costs more Python than the rest of the work. On PostgreSQL `update_from_arrays` sends
one `UPDATE … FROM unnest(<one array per field>)` instead; elsewhere (SQLite, the embedded default)
it falls back to `bulk_update`. A plain package, not an app: any app may use it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Iterable, Sequence

from django.db import connections, models, router
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init


def update_from_arrays(model: type[Model], objects: Sequence[Model], fields: Iterable[str], *, batch_size: int = 5000) -> None:
    """Write `fields` of `objects` (saved rows of `model`) to the database, by primary key."""
    objects = list(objects)
    fields = list(fields)
    if not objects or not fields:
        return
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields, batch_size=500)
        return
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = s.{quote(field.column)}" for field in columns)
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in [pk, *columns])
    names = ", ".join(quote(field.column) for field in [pk, *columns])
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM unnest({arrays}) AS s({names}) "
        f"WHERE t.{quote(pk.column)} = s.{quote(pk.column)}"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(objects), batch_size):
            chunk = objects[start : start + batch_size]
            params = [pg_array(_db_values(pk, [obj.pk for obj in chunk], connection))]
            for field in columns:
                params.append(pg_array(_db_values(field, [getattr(obj, field.attname) for obj in chunk], connection)))
            cursor.execute(sql, params)


_INTEGERS = (int,)
# Field classes (exactly these, not subclasses) whose `get_db_prep_save` on PostgreSQL gives back a
# value of these exact types as it is, or, for the integer fields, as the same number wrapped in
# psycopg's Int2/Int4/Int8 (which `pg_array` cannot join, so a drain batch's levels went to the
# driver member by member). None always gives None. tests/test_bulkwrite.py checks each pair.
_UNCHANGED: dict[type, tuple[type, ...]] = {
    models.FloatField: (float,),
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.DateTimeField: (datetime,),  # aware ones only, see `_db_values`
    models.DurationField: (timedelta,),
    models.ForeignKey: _INTEGERS,  # to an integer primary key (checked in `_db_values`)
    **dict.fromkeys(
        (
            models.IntegerField, models.SmallIntegerField, models.BigIntegerField, models.PositiveIntegerField,
            models.PositiveSmallIntegerField, models.PositiveBigIntegerField, models.AutoField,
            models.BigAutoField, models.SmallAutoField,
        ),
        _INTEGERS,
    ),
}  # fmt: skip


def _db_values(field, values: list, connection) -> list:
    """`field.get_db_prep_save(value)` of each value, without the call (a dozen Python frames) where
    it is known to give the value back: an update of a thousand alerts' fourteen fields made 14,000 of
    them per drain batch."""
    unchanged = _UNCHANGED.get(type(field))
    if type(field) is models.ForeignKey and type(field.target_field) not in _UNCHANGED:
        unchanged = None
    if unchanged is None or connection.vendor != "postgresql":
        return [field.get_db_prep_save(value, connection) for value in values]
    prep = field.get_db_prep_save
    return [
        value
        if value is None or (type(value) in unchanged and (type(value) is not datetime or value.tzinfo is not None))
        else prep(value, connection)
        for value in values
    ]


_PLAIN = (int, float)
_PLAIN_KINDS = frozenset(_PLAIN)
_STR_KIND = {str}
_NEEDS_ESCAPE = frozenset('\\"')


def _element(value) -> str:
    if value is None:
        return "NULL"
    kind = type(value)
    if kind in _PLAIN:
        return repr(value)  # the shortest text that reads back as the same double
    if kind is bool:
        return "t" if value else "f"
    if kind is str:
        text = value
    elif kind is datetime:
        text = value.isoformat()
    elif kind is timedelta:
        # Every part signed, as the driver writes one for IntervalStyle sql_standard: exact whatever the style.
        text = f"{value.days:+d} day {value.seconds:+d} second {value.microseconds:+d} microsecond"
    else:
        raise TypeError(kind)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_array(values: Sequence):
    """`values` as one PostgreSQL array literal (text) for a `%s::<type>[]` parameter, when every
    member is None, int, float, bool, str, datetime or timedelta; else the list itself, for the driver.

    Why: the driver's array dumper runs per member in Python (a regular expression on each one's
    text), several times the cost of this join; on an ingest batch or a drain batch the arrays are
    the largest parameters. The literal is one string, which the driver quotes in C."""
    if not isinstance(values, (list, tuple)):
        values = list(values)
    # An ingest batch's arrays are a thousand members of one type: join those at C speed (each
    # member's text is what `_element` writes for it); `_element` per member is for mixed arrays,
    # NULLs, and strings that need escaping.
    kinds = set(map(type, values))
    if kinds and kinds <= _PLAIN_KINDS:
        return "{" + ",".join(map(repr, values)) + "}"
    if kinds == _STR_KIND and _NEEDS_ESCAPE.isdisjoint("".join(values)):
        return '{"' + '","'.join(values) + '"}'
    try:
        return "{" + ",".join(map(_element, values)) + "}"
    except TypeError:
        return list(values)


def filter_ids(queryset, field: str, ids: Sequence[int]):
    """`queryset.filter(<field>__in=ids)` for an integer column (`field`: the model's column name,
    e.g. "id" or "station_id"). On PostgreSQL one `= ANY(<array>)` parameter: an IN list of a
    thousand placeholders made the driver split and convert the statement in Python (a tenth of a
    drain process's time in a storm). Callers chunk for SQLite's parameter limit as before."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return queryset.filter(**{f"{field}__in": list(ids)})
    ops = connection.ops
    column = f"{ops.quote_name(queryset.model._meta.db_table)}.{ops.quote_name(field)}"
    return queryset.extra(where=[f"{column} = ANY(%s::bigint[])"], params=[pg_array(list(ids))])


# Microseconds since the epoch, and back to a timestamp, in SQL: exact (a float epoch would round).
TO_MICROS_SQL = "(extract(epoch FROM {}) * 1000000)::bigint"
FROM_MICROS_SQL = "(timestamptz 'epoch' + {} * interval '1 microsecond')"
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def loaded_instances(queryset, *, micros: Sequence[str] = ()) -> list[Model]:
    """The rows of `queryset` as saved instances of its model, the same as `list(queryset)`, from one
    tuple per row with each instance's attributes set at once instead of `Model.__init__` per row:
    a drain batch loads (and locks) every rule and open alert of a thousand stations, and building
    them field by field was a tenth of a drain process's time in a storm.

    `micros`: DateTimeFields PostgreSQL sends as integer microseconds since the epoch, set on the
    instances as the same aware datetimes: Django's timestamp loader parses each timestamp in Python
    (as much as the rest of loading a rule).

    For querysets of the model's own columns only; anything else (related rows selected, deferred
    fields, annotations, a model with init signal receivers) is iterated as usual."""
    model = queryset.model
    query = queryset.query
    if (
        query.select_related
        or query.deferred_loading[0]
        or query.annotations
        or query.extra_select
        or pre_init.has_listeners(model)
        or post_init.has_listeners(model)
    ):
        return list(queryset)
    attnames = [field.attname for field in model._meta.concrete_fields]
    db = queryset.db
    connection = connections[db]
    # The driver gives UTC datetimes only when the connection's time zone is UTC (Django's default).
    micros = [name for name in micros if name in attnames] if connection.timezone is dt_timezone.utc else []
    if micros and connection.vendor == "postgresql":
        ops = connection.ops
        table = ops.quote_name(model._meta.db_table)
        columns = {name: model._meta.get_field(name).column for name in micros}
        selected = {
            f"_{name}_micros": TO_MICROS_SQL.format(f"{table}.{ops.quote_name(column)}")
            for name, column in columns.items()
        }
        names = [f"_{name}_micros" if name in columns else name for name in attnames]
        rows = queryset.extra(select=selected).values_list(*names)
        positions = [attnames.index(name) for name in micros]
    else:
        rows = queryset.values_list(*attnames)
        positions = []
    new = model.__new__
    epoch, step = _EPOCH, timedelta(microseconds=1)
    instances = []
    for row in rows:
        if positions:
            row = list(row)
            for position in positions:
                if row[position] is not None:
                    row[position] = epoch + row[position] * step
        instance = new(model)
        state = ModelState()
        state.adding, state.db = False, db
        values = instance.__dict__
        values.update(zip(attnames, row))
        values["_state"] = state
        instances.append(instance)
    return instances
