"""Inserting many rows fast: one prepared INSERT bound with executemany, for the intake's hot path.

Django's bulk_create compiles every value of every row into SQL text (about two thirds of a batch's time, measured in
issue 13); here the statement is built once per table and the values go straight to the driver. Same values as
bulk_create: each field's pre_save (auto_now, encryption) and get_db_prep_save. Rows need their primary key set
beforehand (UUIDs); a model with an auto-increment key gets its ids back through a unique UUID column."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models


def _fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [f for f in model._meta.local_concrete_fields if not isinstance(f, models.AutoField | models.BigAutoField)]


def _insert_sql(model: type[models.Model], columns: Sequence[str]) -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    # Identifiers come from model metadata (quoted), values are bound parameters: nothing from outside reaches the text.
    return "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(model._meta.db_table), ", ".join(quote(c) for c in columns), ", ".join(["%s"] * len(columns))
    )


class PreparedInsert:
    """An INSERT of ``rows`` with its values computed now (pre_save: timestamps, encryption), executed later: the CPU
    work done before the write transaction opens, only the statement inside it."""

    def __init__(self, model: type[models.Model], rows: Sequence[models.Model]) -> None:
        connection = connections[DEFAULT_DB_ALIAS]  # the thread's connection itself: the proxy costs a lookup per value
        self.model, self.rows = model, rows
        fields = _fields(model)
        self.sql = _insert_sql(model, [str(f.column) for f in fields]) if rows else ""
        self.values = [[f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields] for row in rows]

    def execute(self) -> None:
        if not self.rows:
            return
        connection = connections[DEFAULT_DB_ALIAS]
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, self.values)
        for row in self.rows:
            row._state.adding = False
            row._state.db = connection.alias


def insert(model: type[models.Model], rows: Sequence[models.Model]) -> None:
    """INSERT ``rows`` (instances of ``model`` with their primary key set), signals not sent, like bulk_create."""
    PreparedInsert(model, rows).execute()


def insert_dicts_returning_ids(model: type[models.Model], rows: Sequence[dict[str, Any]], *, by: str) -> list[int]:
    """INSERT rows given as {attname: value} (defaults for the rest), no model instances built (a batch writes thousands
    of audit events); their auto-increment ids, in order, read back through the unique UUID column ``by``."""
    if not rows:
        return []
    connection = connections[DEFAULT_DB_ALIAS]
    fields = _fields(model)
    missing = object()
    values = []
    keys = []
    for row in rows:
        row.setdefault(by, uuid.uuid4())
        keys.append(row[by])
        given = [row.get(f.attname, missing) for f in fields]
        values.append([f.get_db_prep_save(f.get_default() if v is missing else v, connection) for f, v in zip(fields, given, strict=True)])
    with connection.cursor() as cursor:
        cursor.executemany(_insert_sql(model, [str(f.column) for f in fields]), values)
    ids = dict(model._default_manager.filter(**{f"{by}__in": keys}).values_list(by, "pk"))
    if len(ids) != len(keys):
        raise RuntimeError(f"{model._meta.label}: inserted rows not found again")
    return [ids[key] for key in keys]


def insert_values(model: type[models.Model], columns: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
    """INSERT plain tuples already in database form (no model instances): for link tables of plain ids."""
    if not values:
        return
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.executemany(_insert_sql(model, columns), values)
