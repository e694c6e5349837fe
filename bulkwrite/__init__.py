"""Bulk UPDATE of many rows with different values, for the hot paths (latest states, alerts).

Django's `bulk_update` builds a `CASE WHEN id = … THEN …` per row and field: on a gateway tick or a
drain batch it costs more Python than the rest of the work. On PostgreSQL `update_from_arrays` sends
one `UPDATE … FROM unnest(<one array per field>)` instead; elsewhere (SQLite, the embedded default)
it falls back to `bulk_update`. A plain package, not an app: any app may use it.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from django.db import connections, router
from django.db.models import Model


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
            params = [[pk.get_db_prep_value(obj.pk, connection) for obj in chunk]]
            for field in columns:
                params.append([field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in chunk])
            cursor.execute(sql, params)
