"""Bulk UPDATE of many rows with different values, for the hot paths (latest states, alerts), and
bulk loading of rows as instances (`loaded_instances`).

Django's `bulk_update` builds a `CASE WHEN id = … THEN …` per row and field: on a gateway tick or a
drain batch it costs more Python than the rest of the work. On PostgreSQL `update_from_arrays` sends
one `UPDATE … FROM unnest(<one array per field>)` instead; elsewhere (SQLite, the embedded default)
it falls back to `bulk_update`. A plain package, not an app: any app may use it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from django.db import connections, router
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
            params = [pg_array([pk.get_db_prep_value(obj.pk, connection) for obj in chunk])]
            for field in columns:
                params.append(pg_array([field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in chunk]))
            cursor.execute(sql, params)


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
    else:
        raise TypeError(kind)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_array(values: Sequence):
    """`values` as one PostgreSQL array literal (text) for a `%s::<type>[]` parameter, when every
    member is None, int, float, bool, str or datetime; else the list itself, for the driver.

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


def loaded_instances(queryset) -> list[Model]:
    """The rows of `queryset` as saved instances of its model, the same as `list(queryset)`, from one
    tuple per row with each instance's attributes set at once instead of `Model.__init__` per row:
    a drain batch loads (and locks) every rule and open alert of a thousand stations, and building
    them field by field was a tenth of a drain process's time in a storm.

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
    new = model.__new__
    instances = []
    for row in queryset.values_list(*attnames):
        instance = new(model)
        state = ModelState()
        state.adding, state.db = False, db
        values = instance.__dict__
        values.update(zip(attnames, row))
        values["_state"] = state
        instances.append(instance)
    return instances
